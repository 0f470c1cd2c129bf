/// Rectified linear unit, y = max(x, 0).
public final class ReLU: Layer {
    private var output: Tensor?

    public init() {}

    // x: any shape -> y: same shape and layout
    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        let y = Tensor.uninitialized(like: x)
        let (xp, yp) = (x.data, y.data)
        let chunks = elementChunks(x.count)
        Parallel.forEach(chunks.count) { r in
            for i in chunks[r] { yp[i] = max(xp[i], 0) }
        }
        output = y
        return y
    }

    // dy -> dx = dy where the output was positive
    public func backward(_ dy: Tensor) -> Tensor {
        guard let y = output else { preconditionFailure("ReLU.backward before forward") }
        let dy = dy.inLayout(blocked: y.blocked)
        let dx = Tensor.uninitialized(like: y)
        let (yp, dyp, dxp) = (y.data, dy.data, dx.data)
        let chunks = elementChunks(dy.count)
        Parallel.forEach(chunks.count) { r in
            for i in chunks[r] { dxp[i] = yp[i] > 0 ? dyp[i] : 0 }
        }
        return dx
    }
}

/// Fixed 64k-element ranges for elementwise kernels.
@inline(__always) func elementChunks(_ count: Int) -> [Range<Int>] {
    Parallel.ranges(count, grain: 1 << 16)
}

/// Reshapes (N, ...) to (N, features) for a linear layer.
public final class Flatten: Layer {
    private var inputShape: [Int] = []
    private var inputBlocked = false

    public init() {}

    // x: (N, C, H, W) -> y: (N, C·H·W), in NCHW order whatever x's layout
    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        (inputShape, inputBlocked) = (x.shape, x.blocked)
        return x.reshaped([x.shape[0], x.count / max(x.shape[0], 1)])
    }

    public func backward(_ dy: Tensor) -> Tensor { dy.reshaped(inputShape).inLayout(blocked: inputBlocked) }
}

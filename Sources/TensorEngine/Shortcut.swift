/// The CIFAR ResNet "option A" shortcut: subsample by `stride` and zero-pad channels equally on
/// both sides, so the identity path needs no parameters when a stage widens.
public final class PaddedIdentity: Layer {
    public let inChannels: Int
    public let outChannels: Int
    public let stride: Int
    private var inputShape: [Int] = []

    public init(_ inChannels: Int, _ outChannels: Int, stride: Int) {
        precondition((outChannels - inChannels) % 2 == 0 && outChannels >= inChannels,
                     "option-A shortcut pads channels evenly: \(inChannels) -> \(outChannels)")
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.stride = stride
    }

    private var padBefore: Int { (outChannels - inChannels) / 2 }

    // x: (N, C, H, W) -> y: (N, C', ceil(H/s), ceil(W/s)), y[:, pad + c] = x[:, c, ::s, ::s]
    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        inputShape = x.shape
        let (n, h, w) = (x.shape[0], x.shape[2], x.shape[3])
        let ho = (h + stride - 1) / stride, wo = (w + stride - 1) / stride
        let y = Tensor(shape: [n, outChannels, ho, wo])
        for b in 0..<n {
            for c in 0..<inChannels {
                let src = x.data + (b * inChannels + c) * h * w
                let dst = y.data + (b * outChannels + c + padBefore) * ho * wo
                for oy in 0..<ho { for ox in 0..<wo { dst[oy * wo + ox] = src[oy * stride * w + ox * stride] } }
            }
        }
        return y
    }

    // dy: (N, C', Ho, Wo) -> dx: (N, C, H, W), zero where the subsampling skipped
    public func backward(_ dy: Tensor) -> Tensor {
        let dx = Tensor(shape: inputShape)
        let (n, h, w) = (inputShape[0], inputShape[2], inputShape[3])
        let (ho, wo) = (dy.shape[2], dy.shape[3])
        for b in 0..<n {
            for c in 0..<inChannels {
                let src = dy.data + (b * outChannels + c + padBefore) * ho * wo
                let dst = dx.data + (b * inChannels + c) * h * w
                for oy in 0..<ho { for ox in 0..<wo { dst[oy * stride * w + ox * stride] = src[oy * wo + ox] } }
            }
        }
        return dx
    }
}

/// Elementwise sum of two equal-shaped tensors (the residual join); its backward is the identity
/// on both inputs, so callers route `dy` to both branches themselves.
public func add(_ a: Tensor, _ b: Tensor) -> Tensor {
    precondition(a.shape == b.shape, "add: \(a.shape) vs \(b.shape)")
    let y = Tensor.uninitialized(a.shape)
    let (ap, bp, yp) = (a.data, b.data, y.data)
    let chunks = elementChunks(a.count)
    Parallel.forEach(chunks.count) { r in
        for i in chunks[r] { yp[i] = ap[i] + bp[i] }
    }
    return y
}

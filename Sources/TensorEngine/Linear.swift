/// Fully connected layer, y = x · Wᵀ + b, with PyTorch's (out, in) weight layout.
/// Inputs of higher rank are flattened to (N, in). Under a gang (`GangShard`) every member
/// gathers the whole batch's inputs and output gradients and computes what one process would:
/// these layers are small next to the convolutions, and BLAS's sum over the batch stays whole.
public final class Linear: Layer {
    public let inFeatures: Int
    public let outFeatures: Int
    public let weight: Parameter
    public let bias: Parameter?
    /// False for a network's first layer: nothing reads the gradient of its input (the images),
    /// so backward skips that product and returns zeros.
    public var computesInputGradient = true
    private var input: Tensor?
    private var inputShape: [Int] = []

    public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true, rng: inout RandomSource) {
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        weight = Parameter(Initializer.heNormal(shape: [outFeatures, inFeatures], fanIn: inFeatures, rng: &rng))
        self.bias = bias ? Parameter(Tensor(shape: [outFeatures])) : nil
    }

    public var localParameters: [(String, Parameter)] {
        [("weight", weight)] + (bias.map { [("bias", $0)] } ?? [])
    }

    // x: (N, in) -> y: (N, out)
    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        let x = x.plain
        guard let shard = GangShard.current else { return forwardBatch(x) }
        return shard.localRows(forwardBatch(shard.gatherRows(x)))
    }

    // dy: (N, out) -> dx: (N, in); accumulates dW (out, in) and db (out)
    public func backward(_ dy: Tensor) -> Tensor {
        guard let shard = GangShard.current else { return backwardBatch(dy) }
        return shard.localRows(backwardBatch(shard.gatherRows(dy)))
    }

    private func forwardBatch(_ x: Tensor) -> Tensor {
        let n = x.shape[0]
        precondition(x.count == n * inFeatures, "Linear expects (N, \(inFeatures)), got \(x.shape)")
        inputShape = x.shape
        input = x
        return Linear.affine(x, weights: weight.value.data, bias: bias.map { UnsafePointer($0.value.data) },
                             outFeatures: outFeatures, relu: false)
    }

    /// y = relu?(x · Wᵀ + b) for x (N, in) and W (out, in). Work is split by output features, in
    /// fixed 256-wide ranges: every range reads all of x but only its own rows of W, so the
    /// weights are packed for BLAS once per call instead of once per chunk of images.
    static func affine(_ x: Tensor, weights wp: UnsafePointer<Float>, bias bp: UnsafePointer<Float>?,
                       outFeatures fout: Int, relu: Bool) -> Tensor {
        let n = x.shape[0]
        let fin = x.count / max(n, 1)
        let y = Tensor.uninitialized([n, fout])
        let (xp, yp) = (x.data, y.data)
        let columns = Parallel.ranges(fout, grain: 256)
        Parallel.forEach(columns.count) { r in
            let o = columns[r]
            gemm(transB: true, m: n, n: o.count, k: fin, a: xp, lda: fin, b: wp + o.lowerBound * fin, ldb: fin,
                 c: yp + o.lowerBound, ldc: fout)
            guard bp != nil || relu else { return }
            for i in 0..<n {
                let row = yp + i * fout
                for j in o {
                    let v = row[j] + (bp?[j] ?? 0)
                    row[j] = relu ? max(v, 0) : v
                }
            }
        }
        return y
    }

    private func backwardBatch(_ dy: Tensor) -> Tensor {
        guard let x = input else { preconditionFailure("Linear.backward before forward") }
        let n = x.shape[0]
        let dx = Tensor.uninitialized(inputShape)
        let (xp, dyp, dxp, wp) = (x.data, dy.data, dx.data, weight.value.data)
        let (gw, gb) = (weight.grad.data, bias?.grad.data)
        let (fin, fout) = (inFeatures, outFeatures)
        // dW[o0..<o1, :] += dy[:, o0..<o1]ᵀ · x: each chunk owns its rows of dW.
        let outRows = Parallel.ranges(fout, grain: 64)
        Parallel.forEach(outRows.count) { r in
            let o = outRows[r]
            gemm(transA: true, m: o.count, n: fin, k: n, a: dyp + o.lowerBound, lda: fout,
                 b: xp, ldb: fin, beta: 1, c: gw + o.lowerBound * fin, ldc: fin)
            if let gb {
                for j in o {
                    var s: Float = 0
                    for i in 0..<n { s += dyp[i * fout + j] }
                    gb[j] += s
                }
            }
        }
        guard computesInputGradient else { return Tensor.zeros(inputShape, blocked: false) }
        // dx = dy · W, split by input features like the forward pass.
        let columns = Parallel.ranges(fin, grain: 256)
        Parallel.forEach(columns.count) { r in
            let j = columns[r]
            gemm(m: n, n: j.count, k: fout, a: dyp, lda: fout, b: wp + j.lowerBound, ldb: fin,
                 c: dxp + j.lowerBound, ldc: fin)
        }
        return dx
    }
}

/// Batch normalisation over dimension 1 of (N, C) or (N, C, H, W) tensors: BatchNorm1d and
/// BatchNorm2d in one type, with PyTorch's semantics (biased variance to normalise, unbiased
/// variance in the running estimate, `momentum` weight on the new batch).
public final class BatchNorm: Layer {
    public let channels: Int
    public let epsilon: Float
    /// Weight of the current batch in the running statistics; nil means a cumulative average
    /// (used to re-estimate statistics after a mask).
    public var momentum: Float?
    public let gamma: Parameter
    public let beta: Parameter
    public let runningMean: Tensor
    public let runningVar: Tensor
    /// Batches seen since the running statistics were last reset (for the cumulative average).
    public private(set) var batchesTracked = 0

    private var cache: (input: Tensor, normalised: Tensor?, invStd: [Float], training: Bool)?

    public init(_ channels: Int, epsilon: Float = 1e-5, momentum: Float? = 0.1) {
        self.channels = channels
        self.epsilon = epsilon
        self.momentum = momentum
        let ones = Tensor(shape: [channels]); ones.fill(1)
        gamma = Parameter(ones)
        beta = Parameter(Tensor(shape: [channels]))
        runningMean = Tensor(shape: [channels])
        runningVar = Tensor(shape: [channels]); runningVar.fill(1)
    }

    public var localParameters: [(String, Parameter)] { [("weight", gamma), ("bias", beta)] }
    public var localBuffers: [(String, Tensor)] { [("running_mean", runningMean), ("running_var", runningVar)] }

    /// Forgets the running statistics (mean 0, variance 1, no batches seen).
    public func resetRunningStatistics() {
        runningMean.fill(0)
        runningVar.fill(1)
        batchesTracked = 0
    }

    // x: (N, C, *) -> y: (N, C, *)
    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        precondition(x.rank >= 2 && x.shape[1] == channels, "BatchNorm expects (N, \(channels), ...), got \(x.shape)")
        let n = x.shape[0]
        let spatial = x.count / max(n * channels, 1)
        let m = n * spatial
        let y = Tensor(shape: x.shape)
        let (xp, yp, g, b) = (x.data, y.data, gamma.value.data, beta.value.data)
        var invStd = [Float](repeating: 0, count: channels)
        if training {
            precondition(m > 1, "BatchNorm in training mode needs more than one value per channel")
            let xhat = Tensor(shape: x.shape)
            let hp = xhat.data
            let (rm, rv) = (runningMean.data, runningVar.data)
            let weight: Float = momentum ?? 1 / Float(batchesTracked + 1)
            invStd.withUnsafeMutableBufferPointer { inv in
                let invp = inv.baseAddress!
                Parallel.forEach(channels) { c in
                    var sum = 0.0
                    for i in 0..<n {
                        let row = xp + (i * channels + c) * spatial
                        var s: Float = 0
                        for j in 0..<spatial { s += row[j] }
                        sum += Double(s)
                    }
                    let mean = Float(sum / Double(m))
                    var sq = 0.0
                    for i in 0..<n {
                        let row = xp + (i * channels + c) * spatial
                        var s: Float = 0
                        for j in 0..<spatial { let d = row[j] - mean; s += d * d }
                        sq += Double(s)
                    }
                    let variance = Float(sq / Double(m))
                    let istd = 1 / (variance + epsilon).squareRoot()
                    invp[c] = istd
                    let (gc, bc) = (g[c], b[c])
                    for i in 0..<n {
                        let off = (i * channels + c) * spatial
                        let (row, hrow, yrow) = (xp + off, hp + off, yp + off)
                        for j in 0..<spatial {
                            let h = (row[j] - mean) * istd
                            hrow[j] = h
                            yrow[j] = h * gc + bc
                        }
                    }
                    let unbiased = Float(sq / Double(m - 1))
                    rm[c] = (1 - weight) * rm[c] + weight * mean
                    rv[c] = (1 - weight) * rv[c] + weight * unbiased
                }
            }
            batchesTracked += 1
            cache = (x, xhat, invStd, true)
        } else {
            let (rm, rv) = (runningMean.data, runningVar.data)
            for c in 0..<channels { invStd[c] = 1 / (rv[c] + epsilon).squareRoot() }
            invStd.withUnsafeBufferPointer { inv in
                let invp = inv.baseAddress!
                Parallel.forEach(channels) { c in
                    let scale = g[c] * invp[c]
                    let shift = b[c] - rm[c] * scale
                    for i in 0..<n {
                        let off = (i * channels + c) * spatial
                        let (row, yrow) = (xp + off, yp + off)
                        for j in 0..<spatial { yrow[j] = row[j] * scale + shift }
                    }
                }
            }
            cache = (x, nil, invStd, false)
        }
        return y
    }

    // dy: (N, C, *) -> dx: (N, C, *); accumulates dgamma, dbeta
    public func backward(_ dy: Tensor) -> Tensor {
        guard let cache else { preconditionFailure("BatchNorm.backward before forward") }
        let x = cache.input
        let n = x.shape[0]
        let spatial = x.count / max(n * channels, 1)
        let m = Float(n * spatial)
        let dx = Tensor(shape: x.shape)
        let (dyp, dxp, g) = (dy.data, dx.data, gamma.value.data)
        let (dg, db) = (gamma.grad.data, beta.grad.data)
        let xp = x.data
        let hp = cache.normalised?.data
        let rm = runningMean.data
        let training = cache.training
        cache.invStd.withUnsafeBufferPointer { inv in
            let invp = inv.baseAddress!
            Parallel.forEach(channels) { c in
                let istd = invp[c]
                let mean = rm[c]
                // xhat is cached in training mode and recomputed from running statistics in eval mode.
                @inline(__always) func xhat(_ off: Int, _ j: Int) -> Float {
                    if let hp { return hp[off + j] }
                    return (xp[off + j] - mean) * istd
                }
                var sumDy = 0.0, sumDyXhat = 0.0
                for i in 0..<n {
                    let off = (i * channels + c) * spatial
                    var s: Float = 0, sx: Float = 0
                    for j in 0..<spatial { let d = dyp[off + j]; s += d; sx += d * xhat(off, j) }
                    sumDy += Double(s); sumDyXhat += Double(sx)
                }
                dg[c] += Float(sumDyXhat)
                db[c] += Float(sumDy)
                let scale = g[c] * istd
                if training {
                    let (mdb, mdg) = (Float(sumDy) / m, Float(sumDyXhat) / m)
                    for i in 0..<n {
                        let off = (i * channels + c) * spatial
                        for j in 0..<spatial {
                            dxp[off + j] = scale * (dyp[off + j] - mdb - xhat(off, j) * mdg)
                        }
                    }
                } else {
                    for i in 0..<n {
                        let off = (i * channels + c) * spatial
                        for j in 0..<spatial { dxp[off + j] = scale * dyp[off + j] }
                    }
                }
            }
        }
        return dx
    }
}

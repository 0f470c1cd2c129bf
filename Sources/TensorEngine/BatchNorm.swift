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

    /// What backward needs: the input, the statistics used to normalise it, and the mode.
    /// The normalised input is recomputed from these rather than stored (one buffer fewer).
    private var cache: (input: Tensor, mean: [Float], invStd: [Float], training: Bool)?

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
        let y = Tensor.uninitialized(x.shape)
        let (xp, yp, g, b) = (x.data, y.data, gamma.value.data, beta.value.data)
        var mean = [Float](repeating: 0, count: channels)
        var invStd = [Float](repeating: 0, count: channels)
        if training {
            precondition(m > 1, "BatchNorm in training mode needs more than one value per channel")
            let (rm, rv) = (runningMean.data, runningVar.data)
            let weight: Float = momentum ?? 1 / Float(batchesTracked + 1)
            mean.withUnsafeMutableBufferPointer { meanBuffer in
                invStd.withUnsafeMutableBufferPointer { invBuffer in
                    let (meanp, invp) = (meanBuffer.baseAddress!, invBuffer.baseAddress!)
                    Parallel.forEach(channels) { c in
                        // One pass for both moments, shifted by the channel's first value.
                        let shift = xp[c * spatial]
                        var sum = 0.0, squares = 0.0
                        for i in 0..<n {
                            let (s, q) = VectorMath.shiftedMoments(xp + (i * channels + c) * spatial, spatial, shift: shift)
                            sum += Double(s)
                            squares += Double(q)
                        }
                        let shiftedMean = sum / Double(m)
                        let varianceD = max(squares / Double(m) - shiftedMean * shiftedMean, 0)
                        let mu = Float(shiftedMean + Double(shift))
                        let variance = Float(varianceD)
                        let istd = 1 / (variance + epsilon).squareRoot()
                        meanp[c] = mu
                        invp[c] = istd
                        let scale = g[c] * istd
                        let offset = b[c] - mu * scale
                        for i in 0..<n {
                            let off = (i * channels + c) * spatial
                            let (row, yrow) = (xp + off, yp + off)
                            for j in 0..<spatial { yrow[j] = row[j] * scale + offset }
                        }
                        let unbiased = Float(varianceD * Double(m) / Double(m - 1))
                        rm[c] = (1 - weight) * rm[c] + weight * mu
                        rv[c] = (1 - weight) * rv[c] + weight * unbiased
                    }
                }
            }
            batchesTracked += 1
        } else {
            let (rm, rv) = (runningMean.data, runningVar.data)
            for c in 0..<channels { mean[c] = rm[c]; invStd[c] = 1 / (rv[c] + epsilon).squareRoot() }
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
        }
        cache = (x, mean, invStd, training)
        return y
    }

    // dy: (N, C, *) -> dx: (N, C, *); accumulates dgamma, dbeta
    public func backward(_ dy: Tensor) -> Tensor {
        guard let cache else { preconditionFailure("BatchNorm.backward before forward") }
        let x = cache.input
        let n = x.shape[0]
        let spatial = x.count / max(n * channels, 1)
        let m = Float(n * spatial)
        let dx = Tensor.uninitialized(x.shape)
        let (xp, dyp, dxp, g) = (x.data, dy.data, dx.data, gamma.value.data)
        let (dg, db) = (gamma.grad.data, beta.grad.data)
        let training = cache.training
        cache.mean.withUnsafeBufferPointer { meanBuffer in
            cache.invStd.withUnsafeBufferPointer { invBuffer in
                let (meanp, invp) = (meanBuffer.baseAddress!, invBuffer.baseAddress!)
                Parallel.forEach(channels) { c in
                    let (mu, istd) = (meanp[c], invp[c])
                    // Σ dy and Σ dy·x give Σ dy·x̂ = istd · (Σ dy·x − μ Σ dy).
                    var sumDy = 0.0, sumDyX = 0.0
                    for i in 0..<n {
                        let off = (i * channels + c) * spatial
                        let (s, d) = VectorMath.sumAndDot(dyp + off, xp + off, spatial)
                        sumDy += Double(s)
                        sumDyX += Double(d)
                    }
                    let sumDyXhat = Double(istd) * (sumDyX - Double(mu) * sumDy)
                    dg[c] += Float(sumDyXhat)
                    db[c] += Float(sumDy)
                    let scale = g[c] * istd
                    if training {
                        // dx = scale · (dy − mean(dy) − x̂ · mean(dy·x̂)), expanded in x.
                        let (mdb, mdg) = (Float(sumDy) / m, Float(sumDyXhat) / m)
                        let a = scale * istd * mdg
                        let constant = scale * (-mdb + mu * istd * mdg)
                        for i in 0..<n {
                            let off = (i * channels + c) * spatial
                            let (dyrow, xrow, dxrow) = (dyp + off, xp + off, dxp + off)
                            for j in 0..<spatial { dxrow[j] = scale * dyrow[j] - a * xrow[j] + constant }
                        }
                    } else {
                        for i in 0..<n {
                            let off = (i * channels + c) * spatial
                            let (dyrow, dxrow) = (dyp + off, dxp + off)
                            for j in 0..<spatial { dxrow[j] = scale * dyrow[j] }
                        }
                    }
                }
            }
        }
        return dx
    }
}

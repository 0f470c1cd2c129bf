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
    /// The output, when forward applied a ReLU after the normalisation (backward's mask).
    private var rectifiedOutput: Tensor?

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

    /// What inference mode applies per channel, y = x·scale + shift, from the running statistics:
    /// scale = γ / √(σ² + ε), shift = β − μ·scale (and invStd = 1 / √(σ² + ε)). Evaluation plans
    /// fold the same numbers into the layer before (`foldBatchNorm`).
    public var inferenceAffine: (scale: [Float], shift: [Float], invStd: [Float]) {
        let (g, b, rm, rv) = (gamma.value.data, beta.value.data, runningMean.data, runningVar.data)
        let invStd = (0..<channels).map { 1 / (rv[$0] + epsilon).squareRoot() }
        let scale = (0..<channels).map { g[$0] * invStd[$0] }
        return (scale, (0..<channels).map { b[$0] - rm[$0] * scale[$0] }, invStd)
    }

    /// Forgets the running statistics (mean 0, variance 1, no batches seen).
    public func resetRunningStatistics() {
        runningMean.fill(0)
        runningVar.fill(1)
        batchesTracked = 0
    }

    // x: (N, C, *) -> y: (N, C, *)
    public func forward(_ x: Tensor, training: Bool) -> Tensor { forward(x, training: training, adding: nil, relu: false) }

    /// relu?(BN(x) + skip): a residual block's join in the normalisation's own pass over the
    /// output (blocked tensors; plain ones take one more pass). `backwardJoined` undoes it.
    public func forward(_ x: Tensor, training: Bool, adding skip: Tensor?, relu: Bool) -> Tensor {
        precondition(x.rank >= 2 && x.shape[1] == channels, "BatchNorm expects (N, \(channels), ...), got \(x.shape)")
        let skip = skip?.inLayout(blocked: x.blocked)
        if let skip { precondition(skip.shape == x.shape, "BatchNorm adds \(skip.shape) to \(x.shape)") }
        let sp = skip.map { UnsafePointer($0.data) }
        let n = x.shape[0]
        let spatial = x.shape.dropFirst(2).reduce(1, *)
        let y = Tensor.uninitialized(like: x)
        let (xp, yp) = (x.data, y.data)
        let blocked = x.blocked
        // Per-channel y = x·scale + offset, applied after the statistics when blocked.
        let scaleOffset = UnsafeMutablePointer<Float>.allocate(capacity: 2 * channels)
        defer { scaleOffset.deallocate() }
        var mean = [Float](repeating: 0, count: channels)
        var invStd = [Float](repeating: 0, count: channels)
        if training && spatial == 1 {
            forwardFlat(xp, yp, images: n, mean: &mean, invStd: &invStd)
        } else if training {
            normalizeWithBatchStatistics(xp, yp, images: n, spatial: spatial, blocked: blocked,
                                         scaleOffset: scaleOffset, mean: &mean, invStd: &invStd)
        } else {
            let affine = inferenceAffine
            (mean, invStd) = (runningMean.array, affine.invStd)
            scaleOffset.update(from: affine.scale, count: channels)
            (scaleOffset + channels).update(from: affine.shift, count: channels)
            if !blocked { applyAffine(xp, yp, images: n, spatial: spatial, scale: scaleOffset, shift: scaleOffset + channels) }
        }
        if blocked && !(training && spatial == 1) {
            BlockedBatchNorm.affine(xp, yp, images: n, channels: channels, spatial: spatial,
                                    scale: scaleOffset, shift: scaleOffset + channels, adding: sp, relu: relu)
        } else if sp != nil || relu {
            // The plain layouts' join: one more pass over the output.
            let chunks = elementChunks(y.count)
            Parallel.forEach(chunks.count) { r in
                for i in chunks[r] {
                    let v = sp.map { yp[i] + $0[i] } ?? yp[i]
                    yp[i] = relu ? max(v, 0) : v
                }
            }
        }
        cache = (x, mean, invStd, training)
        rectifiedOutput = relu ? y : nil
        return y
    }

    /// Training on maps: the batch's mean and variance per channel, folded into the running
    /// statistics, and each channel's scale and offset into `scaleOffset` (applied here to a
    /// plain tensor; a blocked one is left to the caller's blocked pass).
    private func normalizeWithBatchStatistics(_ xp: UnsafeMutablePointer<Float>, _ yp: UnsafeMutablePointer<Float>,
                                              images n: Int, spatial: Int, blocked: Bool, scaleOffset: UnsafeMutablePointer<Float>,
                                              mean: inout [Float], invStd: inout [Float]) {
        let channels = channels, epsilon = epsilon
        let (g, b) = (gamma.value.data, beta.value.data)
        let shard = GangShard.current
        let batch = shard?.batchCount ?? n
        let m = batch * spatial
        precondition(m > 1, "BatchNorm in training mode needs more than one value per channel")
        let (rm, rv) = (runningMean.data, runningVar.data)
        let weight: Float = momentum ?? 1 / Float(batchesTracked + 1)
        // Per image and channel: the mean and the sum of squared deviations, each image's
        // moments shifted by its own first value. Images are combined in batch order
        // (Chan et al.'s pairwise update), after a gang has gathered every member's images.
        GangShard.perImage(shard, images: n, values: channels * 2, fill: { lp in
            if blocked { BlockedBatchNorm.moments(xp, images: n, channels: channels, spatial: spatial, into: lp); return }
            Parallel.forEach(channels) { c in
                for i in 0..<n {
                    let row = xp + (i * channels + c) * spatial
                    let (s, q) = VectorMath.shiftedMoments(row, spatial, shift: row[0])
                    let (sd, count) = (Double(s), Double(spatial))
                    lp[(i * channels + c) * 2] = Double(row[0]) + sd / count
                    lp[(i * channels + c) * 2 + 1] = max(Double(q) - sd * sd / count, 0)
                }
            }
        }) { ap in
            mean.withUnsafeMutableBufferPointer { meanBuffer in
                invStd.withUnsafeMutableBufferPointer { invBuffer in
                    let (meanp, invp) = (meanBuffer.baseAddress!, invBuffer.baseAddress!)
                    Parallel.forEach(channels) { c in
                        var mu = 0.0, squares = 0.0, seen = 0.0
                        let count = Double(spatial)
                        for i in 0..<batch {
                            let (imageMean, imageSquares) = (ap[(i * channels + c) * 2], ap[(i * channels + c) * 2 + 1])
                            let delta = imageMean - mu
                            let total = seen + count
                            mu += delta * count / total
                            squares += imageSquares + delta * delta * seen * count / total
                            seen = total
                        }
                        let varianceD = squares / Double(m)
                        let mean = Float(mu)
                        let istd = 1 / (Float(varianceD) + epsilon).squareRoot()
                        meanp[c] = mean
                        invp[c] = istd
                        let scale = g[c] * istd
                        let offset = b[c] - mean * scale
                        (scaleOffset[c], scaleOffset[channels + c]) = (scale, offset)
                        for i in 0..<n where !blocked {
                            let off = (i * channels + c) * spatial
                            let (row, yrow) = (xp + off, yp + off)
                            for j in 0..<spatial { yrow[j] = row[j] * scale + offset }
                        }
                        let unbiased = Float(squares / Double(m - 1))
                        rm[c] = (1 - weight) * rm[c] + weight * mean
                        rv[c] = (1 - weight) * rv[c] + weight * unbiased
                    }
                }
            }
        }
        batchesTracked += 1
    }

    /// y = x·scale + shift per channel, plain (N, C, spatial) layout.
    private func applyAffine(_ xp: UnsafeMutablePointer<Float>, _ yp: UnsafeMutablePointer<Float>, images n: Int, spatial: Int,
                             scale sp: UnsafeMutablePointer<Float>, shift tp: UnsafeMutablePointer<Float>) {
        let channels = channels
        Parallel.forEach(channels) { c in
            for i in 0..<n {
                let off = (i * channels + c) * spatial
                let (row, yrow) = (xp + off, yp + off)
                for j in 0..<spatial { yrow[j] = row[j] * sp[c] + tp[c] }
            }
        }
    }

    // dy: (N, C, *) -> dx: (N, C, *); accumulates dgamma, dbeta
    public func backward(_ dy: Tensor) -> Tensor { backwardJoined(dy).dx }

    /// The input gradient, and the gradient at the join (what a skip added in forward receives):
    /// dy where a fused ReLU passed its input, zero elsewhere; dy itself without a ReLU.
    public func backwardJoined(_ dy: Tensor) -> (dx: Tensor, joined: Tensor) {
        guard let cache else { preconditionFailure("BatchNorm.backward before forward") }
        let x = cache.input
        let n = x.shape[0]
        let spatial = x.shape.dropFirst(2).reduce(1, *)
        let blocked = x.blocked
        let fusedMask = blocked && spatial > 1 && cache.training
        let incoming = dy.inLayout(blocked: x.blocked)
        let dy = gradientThroughReLU(incoming, like: x, fused: fusedMask)
        let mask = fusedMask ? rectifiedOutput.map { (UnsafePointer($0.data), incoming.data) } : nil
        let dx = Tensor.uninitialized(like: x)
        let (xp, dyp, dxp) = (x.data, dy.data, dx.data)
        if cache.training && spatial == 1 {
            backwardFlat(xp, dyp, dxp, images: n, mean: cache.mean, invStd: cache.invStd)
            return (dx, dy)
        }
        // Per-channel dx = scale·dy − a·x + constant, applied after the sums when blocked.
        let coefficients = UnsafeMutablePointer<Float>.allocate(capacity: 3 * channels)
        defer { coefficients.deallocate() }
        accumulateGradients(xp, dyp, dxp, images: n, spatial: spatial, blocked: blocked, mask: mask,
                            cache: cache, coefficients: coefficients)
        if blocked {
            BlockedBatchNorm.backwardAffine(dyp, xp, dxp, images: n, channels: channels, spatial: spatial,
                                            scale: coefficients, a: coefficients + channels,
                                            constant: coefficients + 2 * channels)
        }
        return (dx, dy)
    }

    /// The gradient below a fused ReLU: dy where the output was positive, zero elsewhere.
    /// Blocked training masks dy while summing it (`fused`), so it only gets the buffer here.
    private func gradientThroughReLU(_ incoming: Tensor, like x: Tensor, fused: Bool) -> Tensor {
        guard let y = rectifiedOutput else { return incoming }
        let dy = Tensor.uninitialized(like: x)
        if !fused {
            let (yp, gp, ip) = (y.data, dy.data, incoming.data)
            let chunks = elementChunks(y.count)
            Parallel.forEach(chunks.count) { r in
                for i in chunks[r] { gp[i] = yp[i] > 0 ? ip[i] : 0 }
            }
        }
        return dy
    }

    /// Σ dy and Σ dy·x per image and channel, summed in batch order (a gang gathers every
    /// member's images first); Σ dy·x̂ = istd · (Σ dy·x − μ Σ dy). Accumulates dgamma and dbeta,
    /// and writes each channel's dx = scale·dy − a·x + constant into `coefficients` (scale, a,
    /// constant), applying it here to a plain tensor.
    private func accumulateGradients(_ xp: UnsafeMutablePointer<Float>, _ dyp: UnsafeMutablePointer<Float>,
                                     _ dxp: UnsafeMutablePointer<Float>, images n: Int, spatial: Int, blocked: Bool,
                                     mask: (UnsafePointer<Float>, UnsafeMutablePointer<Float>)?,
                                     cache: (input: Tensor, mean: [Float], invStd: [Float], training: Bool),
                                     coefficients: UnsafeMutablePointer<Float>) {
        let channels = channels
        let (g, dg, db) = (gamma.value.data, gamma.grad.data, beta.grad.data)
        let training = cache.training
        let shard = training ? GangShard.current : nil
        let m = Float((shard?.batchCount ?? n) * spatial)
        let batch = shard?.batchCount ?? n
        GangShard.perImage(shard, images: n, values: channels * 2, fill: { lp in
            if blocked {
                BlockedBatchNorm.sums(dyp, xp, images: n, channels: channels, spatial: spatial, into: lp, masking: mask)
                return
            }
            Parallel.forEach(channels) { c in
                for i in 0..<n {
                    let off = (i * channels + c) * spatial
                    let (s, d) = VectorMath.sumAndDot(dyp + off, xp + off, spatial)
                    lp[(i * channels + c) * 2] = Double(s)
                    lp[(i * channels + c) * 2 + 1] = Double(d)
                }
            }
        }) { ap in
            cache.mean.withUnsafeBufferPointer { meanBuffer in
                cache.invStd.withUnsafeBufferPointer { invBuffer in
                    let (meanp, invp) = (meanBuffer.baseAddress!, invBuffer.baseAddress!)
                    Parallel.forEach(channels) { c in
                        let (mu, istd) = (meanp[c], invp[c])
                        var sumDy = 0.0, sumDyX = 0.0
                        for i in 0..<batch {
                            sumDy += ap[(i * channels + c) * 2]
                            sumDyX += ap[(i * channels + c) * 2 + 1]
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
                            (coefficients[c], coefficients[channels + c], coefficients[2 * channels + c]) = (scale, a, constant)
                            for i in 0..<n where !blocked {
                                let off = (i * channels + c) * spatial
                                let (dyrow, xrow, dxrow) = (dyp + off, xp + off, dxp + off)
                                for j in 0..<spatial { dxrow[j] = scale * dyrow[j] - a * xrow[j] + constant }
                            }
                        } else {
                            (coefficients[c], coefficients[channels + c], coefficients[2 * channels + c]) = (scale, 0, 0)
                            for i in 0..<n where !blocked {
                                let off = (i * channels + c) * spatial
                                let (dyrow, dxrow) = (dyp + off, dxp + off)
                                for j in 0..<spatial { dxrow[j] = scale * dyrow[j] }
                            }
                        }
                    }
                }
            }
        }
    }

    // MARK: - One value per channel and image (BatchNorm1d after a linear layer)

    /// Fixed 64-channel ranges: the unit of parallel work of the flat kernels.
    private var channelChunks: [Range<Int>] { Parallel.ranges(channels, grain: 64) }

    /// Training-mode forward for (N, C) inputs: the same arithmetic as the general path, channel
    /// by channel in the same order (so the same bits), with the channel loop innermost where the
    /// general path would make a call per value.
    private func forwardFlat(_ xp: UnsafeMutablePointer<Float>, _ yp: UnsafeMutablePointer<Float>, images n: Int,
                             mean: inout [Float], invStd: inout [Float]) {
        let shard = GangShard.current
        let batch = shard?.batchCount ?? n
        let m = batch
        precondition(m > 1, "BatchNorm in training mode needs more than one value per channel")
        let (g, b, rm, rv, channels) = (gamma.value.data, beta.value.data, runningMean.data, runningVar.data, channels)
        let weight: Float = momentum ?? 1 / Float(batchesTracked + 1)
        let chunks = channelChunks
        GangShard.perImage(shard, images: n, values: channels * 2, fill: { lp in
            // Each image's moments shifted by its own (only) value, as shiftedMoments computes them.
            Parallel.forEach(chunks.count) { r in
                for i in 0..<n {
                    for c in chunks[r] {
                        let v = xp[i * channels + c]
                        let d = v - v
                        let (sd, q) = (Double(d), Double(d * d))
                        lp[(i * channels + c) * 2] = Double(v) + sd / 1
                        lp[(i * channels + c) * 2 + 1] = max(q - sd * sd / 1, 0)
                    }
                }
            }
        }) { ap in
            mean.withUnsafeMutableBufferPointer { meanBuffer in
                invStd.withUnsafeMutableBufferPointer { invBuffer in
                    let (meanp, invp) = (meanBuffer.baseAddress!, invBuffer.baseAddress!)
                    Parallel.forEach(chunks.count) { r in
                        let range = chunks[r]
                        var mu = [Double](repeating: 0, count: range.count), squares = mu
                        var seen = 0.0
                        for i in 0..<batch {
                            let total = seen + 1
                            for (j, c) in range.enumerated() {
                                let (imageMean, imageSquares) = (ap[(i * channels + c) * 2], ap[(i * channels + c) * 2 + 1])
                                let delta = imageMean - mu[j]
                                mu[j] += delta * 1 / total
                                squares[j] += imageSquares + delta * delta * seen * 1 / total
                            }
                            seen = total
                        }
                        var scale = [Float](repeating: 0, count: range.count), offset = scale
                        for (j, c) in range.enumerated() {
                            let mean = Float(mu[j])
                            let istd = 1 / (Float(squares[j] / Double(m)) + epsilon).squareRoot()
                            (meanp[c], invp[c]) = (mean, istd)
                            scale[j] = g[c] * istd
                            offset[j] = b[c] - mean * scale[j]
                            let unbiased = Float(squares[j] / Double(m - 1))
                            rm[c] = (1 - weight) * rm[c] + weight * mean
                            rv[c] = (1 - weight) * rv[c] + weight * unbiased
                        }
                        for i in 0..<n {
                            for (j, c) in range.enumerated() { yp[i * channels + c] = xp[i * channels + c] * scale[j] + offset[j] }
                        }
                    }
                }
            }
        }
        batchesTracked += 1
    }

    /// Training-mode backward for (N, C) inputs, with the general path's arithmetic per channel.
    private func backwardFlat(_ xp: UnsafeMutablePointer<Float>, _ dyp: UnsafeMutablePointer<Float>,
                              _ dxp: UnsafeMutablePointer<Float>, images n: Int, mean: [Float], invStd: [Float]) {
        let shard = GangShard.current
        let batch = shard?.batchCount ?? n
        let m = Float(batch)
        let (g, dg, db, channels) = (gamma.value.data, gamma.grad.data, beta.grad.data, channels)
        let chunks = channelChunks
        GangShard.perImage(shard, images: n, values: channels * 2, fill: { lp in
            Parallel.forEach(chunks.count) { r in
                for i in 0..<n {
                    for c in chunks[r] {
                        let (dy, x) = (dyp[i * channels + c], xp[i * channels + c])
                        lp[(i * channels + c) * 2] = Double(0 + dy)
                        lp[(i * channels + c) * 2 + 1] = Double(0 + dy * x)
                    }
                }
            }
        }) { ap in
            Parallel.forEach(chunks.count) { r in
                let range = chunks[r]
                var sumDy = [Double](repeating: 0, count: range.count), sumDyX = sumDy
                for i in 0..<batch {
                    for (j, c) in range.enumerated() {
                        sumDy[j] += ap[(i * channels + c) * 2]
                        sumDyX[j] += ap[(i * channels + c) * 2 + 1]
                    }
                }
                var scale = [Float](repeating: 0, count: range.count), a = scale, constant = scale
                for (j, c) in range.enumerated() {
                    let (mu, istd) = (mean[c], invStd[c])
                    let sumDyXhat = Double(istd) * (sumDyX[j] - Double(mu) * sumDy[j])
                    dg[c] += Float(sumDyXhat)
                    db[c] += Float(sumDy[j])
                    scale[j] = g[c] * istd
                    let (mdb, mdg) = (Float(sumDy[j]) / m, Float(sumDyXhat) / m)
                    a[j] = scale[j] * istd * mdg
                    constant[j] = scale[j] * (-mdb + mu * istd * mdg)
                }
                for i in 0..<n {
                    for (j, c) in range.enumerated() {
                        let at = i * channels + c
                        dxp[at] = scale[j] * dyp[at] - a[j] * xp[at] + constant[j]
                    }
                }
            }
        }
    }
}

/// BatchNorm's per-image passes over channel-blocked (N, C, H, W) tensors: a block's B channels
/// sit in adjacent lanes at every position, so each pass runs B channels at once, with the same
/// per-(image, channel) figures the plain passes hand on (each lane's sums run over positions in
/// order, so they differ from the plain path's only in rounding).
enum BlockedBatchNorm {
    /// Each pass runs a whole block's lanes in one vector type (two AVX2 registers for blocks
    /// of 16), so that a block's sums form independent chains that overlap; every lane's
    /// arithmetic is the same whatever the type.
    static func moments(_ x: UnsafePointer<Float>, images n: Int, channels: Int, spatial: Int,
                        into lp: UnsafeMutablePointer<Double>) {
        if BlockedLayout.block == 16 {
            BlockedPasses<Lanes16>.moments(x, images: n, channels: channels, spatial: spatial, into: lp)
        } else {
            BlockedPasses<Lanes8>.moments(x, images: n, channels: channels, spatial: spatial, into: lp)
        }
    }

    static func sums(_ dy: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, images n: Int, channels: Int, spatial: Int,
                     into lp: UnsafeMutablePointer<Double>,
                     masking: (output: UnsafePointer<Float>, incoming: UnsafeMutablePointer<Float>)? = nil) {
        if BlockedLayout.block == 16 {
            BlockedPasses<Lanes16>.sums(dy, x, images: n, channels: channels, spatial: spatial, into: lp, masking: masking)
        } else {
            BlockedPasses<Lanes8>.sums(dy, x, images: n, channels: channels, spatial: spatial, into: lp, masking: masking)
        }
    }

    static func affine(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, images n: Int, channels: Int,
                       spatial: Int, scale: UnsafePointer<Float>, shift: UnsafePointer<Float>,
                       adding skip: UnsafePointer<Float>? = nil, relu: Bool = false) {
        if BlockedLayout.block == 16 {
            BlockedPasses<Lanes16>.affine(x, y, images: n, channels: channels, spatial: spatial, scale: scale, shift: shift,
                                                adding: skip, relu: relu)
        } else {
            BlockedPasses<Lanes8>.affine(x, y, images: n, channels: channels, spatial: spatial, scale: scale, shift: shift,
                                               adding: skip, relu: relu)
        }
    }

    static func backwardAffine(_ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>,
                               images n: Int, channels: Int, spatial: Int, scale: UnsafePointer<Float>,
                               a: UnsafePointer<Float>, constant: UnsafePointer<Float>) {
        if BlockedLayout.block == 16 {
            BlockedPasses<Lanes16>.backwardAffine(dy, x, dx, images: n, channels: channels, spatial: spatial, scale: scale,
                                                        a: a, constant: constant)
        } else {
            BlockedPasses<Lanes8>.backwardAffine(dy, x, dx, images: n, channels: channels, spatial: spatial, scale: scale,
                                                       a: a, constant: constant)
        }
    }
}

/// A vector type for `BlockedPasses`, with the two masked operations the passes need written
/// on concrete 8-lane vectors: generic SIMD masks compile to a loop per lane.
protocol LaneVector {
    associatedtype Lanes: SIMD where Lanes.Scalar == Float
    /// max(v, 0) lane by lane, with the bits of Swift's `max(v, 0)` (+0 for −0, NaN kept).
    static func rectified(_ v: Lanes) -> Lanes
    /// `gradient` where `output` > 0, else 0 (ReLU's backward).
    static func passed(_ gradient: Lanes, where output: Lanes) -> Lanes
}

enum Lanes8: LaneVector {
    typealias Lanes = SIMD8<Float>
    // `pointwiseMax` compiles to a slow generic loop.
    @inline(__always) static func rectified(_ v: Lanes) -> Lanes { v.replacing(with: 0, where: v .<= 0) }
    @inline(__always) static func passed(_ gradient: Lanes, where output: Lanes) -> Lanes {
        gradient.replacing(with: 0, where: .!(output .> 0))
    }
}

enum Lanes16: LaneVector {
    typealias Lanes = SIMD16<Float>
    @inline(__always) static func rectified(_ v: Lanes) -> Lanes {
        Lanes(lowHalf: Lanes8.rectified(v.lowHalf), highHalf: Lanes8.rectified(v.highHalf))
    }
    @inline(__always) static func passed(_ gradient: Lanes, where output: Lanes) -> Lanes {
        Lanes(lowHalf: Lanes8.passed(gradient.lowHalf, where: output.lowHalf),
              highHalf: Lanes8.passed(gradient.highHalf, where: output.highHalf))
    }
}

/// `BlockedBatchNorm`'s passes for one vector type of `Lanes.scalarCount` lanes (8 or 16).
struct BlockedPasses<Vector: LaneVector> {
    typealias Lanes = Vector.Lanes

    /// Visits every (image, channel block, group of `Lanes.scalarCount` lanes) as (first channel,
    /// offset of its lanes at position 0), in parallel over images and blocks; positions are B
    /// floats apart.
    @inline(__always)
    private static func forEachLanes(images n: Int, channels: Int, spatial: Int,
                                     _ body: (_ channel: Int, _ offset: Int) -> Void) {
        let b = BlockedLayout.block
        let blocks = channels / b
        Parallel.forEach(n * blocks) { t in
            let (i, cb) = (t / blocks, t % blocks)
            for half in stride(from: 0, to: b, by: Lanes.scalarCount) {
                body(i * channels + cb * b + half, (i * channels + cb * b) * spatial + half)
            }
        }
    }

    @inline(__always) private static func load(_ p: UnsafePointer<Float>, _ at: Int) -> Lanes {
        UnsafeRawPointer(p + at).loadUnaligned(as: Lanes.self)
    }

    @inline(__always) private static func store(_ v: Lanes, _ p: UnsafeMutablePointer<Float>, _ at: Int) {
        UnsafeMutableRawPointer(p + at).storeBytes(of: v, as: Lanes.self)
    }

    /// lp[(i·C + c)·2 ...] = (mean, Σ squared deviations) of image i's channel c, each lane's
    /// values shifted by its first value as `VectorMath.shiftedMoments` does.
    static func moments(_ x: UnsafePointer<Float>, images n: Int, channels: Int, spatial: Int,
                        into lp: UnsafeMutablePointer<Double>) {
        let b = BlockedLayout.block
        forEachLanes(images: n, channels: channels, spatial: spatial) { c, base in
            let shift = load(x, base)
            var (s, q) = (Lanes(), Lanes())
            for p in 0..<spatial {
                let d = load(x, base + p * b) - shift
                s += d
                q += d * d
            }
            let count = Double(spatial)
            for l in 0..<Lanes.scalarCount {
                let sd = Double(s[l])
                lp[(c + l) * 2] = Double(shift[l]) + sd / count
                lp[(c + l) * 2 + 1] = max(Double(q[l]) - sd * sd / count, 0)
            }
        }
    }

    /// lp[(i·C + c)·2 ...] = (Σ dy, Σ dy·x) over image i's channel c. With `masking` (a fused
    /// ReLU's output and the gradient arriving at it), dy is first computed, and written, as
    /// that gradient where the output is positive and zero elsewhere.
    static func sums(_ dy: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, images n: Int, channels: Int, spatial: Int,
                     into lp: UnsafeMutablePointer<Double>,
                     masking: (output: UnsafePointer<Float>, incoming: UnsafeMutablePointer<Float>)? = nil) {
        let b = BlockedLayout.block
        forEachLanes(images: n, channels: channels, spatial: spatial) { c, base in
            var (s, d) = (Lanes(), Lanes())
            for p in 0..<spatial {
                let at = base + p * b
                var g: Lanes
                if let masking {
                    // ReLU's backward: the incoming gradient where the output is > 0, else 0.
                    g = Vector.passed(load(masking.incoming, at), where: load(masking.output, at))
                    store(g, dy, at)
                } else {
                    g = load(dy, at)
                }
                s += g
                d += g * load(x, at)
            }
            for l in 0..<Lanes.scalarCount {
                lp[(c + l) * 2] = Double(s[l])
                lp[(c + l) * 2 + 1] = Double(d[l])
            }
        }
    }

    /// y = relu?(x·scale[c] + shift[c] [+ skip]).
    static func affine(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, images n: Int, channels: Int,
                       spatial: Int, scale: UnsafePointer<Float>, shift: UnsafePointer<Float>,
                       adding skip: UnsafePointer<Float>? = nil, relu: Bool = false) {
        let b = BlockedLayout.block
        forEachLanes(images: n, channels: channels, spatial: spatial) { c, base in
            let k = c % channels
            let (sc, sh) = (load(scale, k), load(shift, k))
            switch (skip, relu) {
            case (nil, false):
                for p in 0..<spatial { store(load(x, base + p * b) * sc + sh, y, base + p * b) }
            case (nil, true):
                for p in 0..<spatial { store(Vector.rectified(load(x, base + p * b) * sc + sh), y, base + p * b) }
            case let (skip?, false):
                for p in 0..<spatial { store(load(x, base + p * b) * sc + sh + load(skip, base + p * b), y, base + p * b) }
            case let (skip?, true):
                for p in 0..<spatial {
                    store(Vector.rectified(load(x, base + p * b) * sc + sh + load(skip, base + p * b)), y, base + p * b)
                }
            }
        }
    }

    /// dx = scale[c]·dy − a[c]·x + constant[c].
    static func backwardAffine(_ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>,
                               images n: Int, channels: Int, spatial: Int, scale: UnsafePointer<Float>,
                               a: UnsafePointer<Float>, constant: UnsafePointer<Float>) {
        let b = BlockedLayout.block
        forEachLanes(images: n, channels: channels, spatial: spatial) { c, base in
            let k = c % channels
            let (sc, av, cv) = (load(scale, k), load(a, k), load(constant, k))
            for p in 0..<spatial {
                let at = base + p * b
                store(sc * load(dy, at) - av * load(x, at) + cv, dx, at)
            }
        }
    }
}

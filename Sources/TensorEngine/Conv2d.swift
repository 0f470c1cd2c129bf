/// 2-D convolution over NCHW tensors, run by oneDNN, by the Winograd kernels (3x3 stride-1
/// layers on blocked maps) or by im2col + GEMM (`ConvolutionKernel`).
///
/// Images are processed in at most 16 fixed groups, one single-threaded kernel call each; weight
/// gradients are summed per group and the groups combined in order, so results do not depend on
/// the thread count, nor on how a gang splits the batch (`GangShard`).
public final class Conv2d: Layer {
    public let inChannels: Int
    public let outChannels: Int
    public let kernelSize: Int
    public let stride: Int
    public let padding: Int
    /// (outChannels, inChannels, kernelSize, kernelSize), PyTorch's layout.
    public let weight: Parameter
    public let bias: Parameter?
    /// Emit the output (and take its gradient) in `BlockedLayout`'s order when oneDNN runs and
    /// the output channels fill whole blocks: set by network builders whose next layers all take
    /// blocked tensors, so that no convolution converts layouts twice per call.
    public var emitsBlocked = false
    /// False for a network's first layer: nothing reads the gradient of its input (the images),
    /// so backward skips the backward-data convolution and returns zeros.
    public var computesInputGradient = true
    private var input: Tensor?
    private var outputBlocked = false
    /// oneDNN primitives by (chunk size, height, width, input blocked, output blocked), created
    /// on first use.
    private var dnnlPlans: [[Int]: DNNLConvolution] = [:]

    public init(_ inChannels: Int, _ outChannels: Int, kernelSize: Int, stride: Int = 1,
                padding: Int = 0, bias: Bool = false, rng: inout RandomSource) {
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.kernelSize = kernelSize
        self.stride = stride
        self.padding = padding
        let fanIn = inChannels * kernelSize * kernelSize
        weight = Parameter(Initializer.heNormal(
            shape: [outChannels, inChannels, kernelSize, kernelSize], fanIn: fanIn, rng: &rng))
        self.bias = bias ? Parameter(Tensor(shape: [outChannels])) : nil
    }

    public var localParameters: [(String, Parameter)] {
        [("weight", weight)] + (bias.map { [("bias", $0)] } ?? [])
    }

    /// Output spatial size for an input of `size`.
    public func outputSize(_ size: Int) -> Int { (size + 2 * padding - kernelSize) / stride + 1 }

    /// The shape of the last input seen by `forward` (for cost estimates).
    public var lastInputShape: [Int]? { input?.shape }

    private var isPointwise: Bool { kernelSize == 1 && stride == 1 && padding == 0 }

    // x: (N, C, H, W) -> y: (N, K, Ho, Wo)
    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        precondition(x.rank == 4 && x.shape[1] == inChannels, "Conv2d expects (N, \(inChannels), H, W), got \(x.shape)")
        input = x
        outputBlocked = emitsBlocked && BlockedLayout.holds(channels: outChannels)
        if let y = forwardDNNL(x) { return y }
        outputBlocked = false
        return forwardReference(x.plain)
    }

    // dy: (N, K, Ho, Wo) -> dx: (N, C, H, W); accumulates dW (K, C, k, k) and db (K)
    public func backward(_ dy: Tensor) -> Tensor { backward(dy, adding: nil) }

    /// The input gradient plus `other` (the gradient another path sends to the same input, as a
    /// residual block's shortcut does): on the Winograd kernels the sum is taken in their output
    /// pass, saving a pass over both tensors.
    public func backward(_ dy: Tensor, adding other: Tensor?) -> Tensor {
        guard let x = input else { preconditionFailure("Conv2d.backward before forward") }
        let dy = dy.inLayout(blocked: outputBlocked)
        if let (dx, added) = backwardDNNL(x, dy, adding: other) { return added || other == nil ? dx : add(dx, other!) }
        let dx = backwardReference(x.plain, dy)
        let laid = computesInputGradient ? dx.inLayout(blocked: x.blocked) : Tensor.zeros(x.shape, blocked: x.blocked)
        return other.map { add(laid, $0) } ?? laid
    }

    // MARK: - oneDNN

    /// The primitives for every chunk size of a batch of `n`, with the current weights loaded;
    /// nil when the reference kernel is selected or oneDNN cannot handle the shape.
    private func plans(_ n: Int, _ h: Int, _ w: Int, inputBlocked: Bool, loadWeights: Bool) -> [Int: DNNLConvolution]? {
        guard ConvolutionKernel.current == .oneDNN else { return nil }
        var out: [Int: DNNLConvolution] = [:]
        for size in Set(GangShard.groups(n).map(\.count)) {
            let key = [size, h, w, inputBlocked ? 1 : 0, outputBlocked ? 1 : 0]
            if dnnlPlans[key] == nil {
                guard let plan = DNNLConvolution(batch: size, inChannels: inChannels, height: h, width: w, outChannels: outChannels,
                                                 kernel: kernelSize, stride: stride, padding: padding, bias: bias != nil,
                                                 inputBlocked: inputBlocked, outputBlocked: outputBlocked) else { return nil }
                dnnlPlans[key] = plan
            }
            let plan = dnnlPlans[key]!
            if loadWeights { plan.setWeights(weight.value.data, bias: bias.map { UnsafePointer($0.value.data) }) }
            out[size] = plan
        }
        return out
    }

    private func forwardDNNL(_ x: Tensor) -> Tensor? {
        let (n, h, w) = (x.shape[0], x.shape[2], x.shape[3])
        // oneDNN's copies of the weights serve its forward and backward-data passes only.
        let winograd = runsWinograd(x)
        guard let plans = plans(n, h, w, inputBlocked: x.blocked, loadWeights: !winograd) else { return nil }
        let y = Tensor.uninitialized([n, outChannels, outputSize(h), outputSize(w)], blocked: outputBlocked)
        let groups = GangShard.groups(n)
        if winograd {
            Winograd.forward(groups: groups, inChannels: inChannels, outChannels: outChannels, height: h, width: w, source: x.data,
                             weights: Winograd.transform(weight.value.array, inChannels: inChannels, outChannels: outChannels),
                             bias: bias?.value.array ?? [Float](repeating: 0, count: outChannels), skip: nil, relu: false,
                             destination: y.data)
            return y
        }
        let (xp, yp, inSize, outSize) = (x.data, y.data, inChannels * h * w, y.count / max(n, 1))
        Parallel.forEach(groups.count) { g in
            let r = groups[g]
            plans[r.count]!.forward(xp + r.lowerBound * inSize, yp + r.lowerBound * outSize)
        }
        return y
    }

    /// The input gradient, and whether `other` was added into it already.
    private func backwardDNNL(_ x: Tensor, _ dy: Tensor, adding other: Tensor?) -> (Tensor, Bool)? {
        let (n, h, w) = (x.shape[0], x.shape[2], x.shape[3])
        // The weights were loaded by the forward pass (unless Winograd runs, which needs none of
        // oneDNN's copies) and have not changed since.
        guard let plans = plans(n, h, w, inputBlocked: x.blocked, loadWeights: false) else { return nil }
        let wantsDx = computesInputGradient
        let dx = wantsDx ? Tensor.uninitialized(like: x) : Tensor.zeros(x.shape, blocked: x.blocked)
        let groups = GangShard.groups(n)
        let partialW = (0..<groups.count).map { _ in Tensor(shape: weight.value.shape) }
        let partialB = (0..<groups.count).map { _ in Tensor(shape: [outChannels]) }
        let (xp, dyp, dxp, inSize, outSize) = (x.data, dy.data, dx.data, inChannels * h * w, dy.count / max(n, 1))
        let hasBias = bias != nil
        // The input gradient of a 3x3 stride-1 pad-1 convolution is the same convolution of dy
        // with each kernel turned 180° and the channel roles swapped.
        let dataOnWinograd = wantsDx && runsWinograd(x)
        let skip = dataOnWinograd ? other?.inLayout(blocked: x.blocked) : nil
        if dataOnWinograd {
            Winograd.forward(groups: groups, inChannels: outChannels, outChannels: inChannels, height: h, width: w, source: dy.data,
                             weights: Winograd.transform(rotatedWeights, inChannels: outChannels, outChannels: inChannels),
                             bias: [Float](repeating: 0, count: inChannels), skip: skip.map { UnsafePointer($0.data) }, relu: false,
                             destination: dx.data)
        }
        let weightsOnWinograd = !hasBias && runsWinograd(x)
        let (cin, cout) = (inChannels, outChannels)
        Parallel.forEach(groups.count) { g in
            let r = groups[g]
            let plan = plans[r.count]!
            if weightsOnWinograd {
                Winograd.weightGradient(images: r.count, inChannels: cin, outChannels: cout, height: h, width: w,
                                        source: xp + r.lowerBound * inSize, gradient: dyp + r.lowerBound * outSize,
                                        destination: partialW[g].data)
            } else {
                plan.backwardWeights(xp + r.lowerBound * inSize, dyp + r.lowerBound * outSize, partialW[g].data,
                                     hasBias ? partialB[g].data : nil)
            }
            if wantsDx && !dataOnWinograd { plan.backwardData(dyp + r.lowerBound * outSize, dxp + r.lowerBound * inSize) }
        }
        accumulate(partialW, partialB)
        return (dx, skip != nil)
    }

    // MARK: - Winograd (3x3, stride 1, blocked activations)

    /// Whether forward, backward-data and (without a bias) backward-weights run on the Winograd
    /// kernels: a 3x3 stride-1 pad-1 layer whose input and output are both blocked (and
    /// `LAYERSWEEP_CONV` does not say otherwise), on maps of at least 7x7. ResNet-20's 64-channel
    /// 7x7 layer, the smallest it has (four tiles of 16 outputs for 49), ran a training step
    /// 1.4-1.5x faster than oneDNN's direct kernel (`sweep bench --convolutions`).
    private func runsWinograd(_ x: Tensor) -> Bool {
        x.blocked && outputBlocked && x.shape[2] >= 7 && x.shape[3] >= 7
            && Winograd.applies(inChannels: inChannels, outChannels: outChannels, kernelSize: kernelSize, stride: stride, padding: padding)
    }

    /// The weights as the input gradient's convolution sees them: (C, K, 3, 3), each kernel
    /// turned 180°.
    private var rotatedWeights: [Float] {
        let (k, c, taps) = (outChannels, inChannels, kernelSize * kernelSize)
        let wp = weight.value.data
        return [Float](unsafeUninitializedCapacity: k * c * taps) { out, count in
            for o in 0..<k {
                for i in 0..<c {
                    for t in 0..<taps { out[(i * k + o) * taps + taps - 1 - t] = wp[(o * c + i) * taps + t] }
                }
            }
            count = k * c * taps
        }
    }

    /// Adds per-group gradients into the parameters' gradients, in group order (under a gang,
    /// along the chain of members).
    private func accumulate(_ partialW: [Tensor], _ partialB: [Tensor]) {
        GangShard.accumulate(partialW, into: weight.grad)
        if let bias { GangShard.accumulate(partialB, into: bias.grad) }
    }

    // MARK: - im2col + GEMM reference

    private func forwardReference(_ x: Tensor) -> Tensor {
        let (n, h, w) = (x.shape[0], x.shape[2], x.shape[3])
        let (ho, wo) = (outputSize(h), outputSize(w))
        let y = Tensor(shape: [n, outChannels, ho, wo])
        let geometry = ConvGeometry(channels: inChannels, height: h, width: w, kernel: kernelSize,
                                    stride: stride, padding: padding, outHeight: ho, outWidth: wo)
        let (ckk, hw, k) = (geometry.rows, ho * wo, outChannels)
        let groups = GangShard.groups(n)
        let (xp, yp, wp) = (x.data, y.data, weight.value.data)
        let bp = bias?.value.data
        let pointwise = isPointwise
        Parallel.forEach(groups.count) { g in
            let cols = pointwise ? nil : UnsafeMutablePointer<Float>.allocate(capacity: ckk * hw)
            defer { cols?.deallocate() }
            for b in groups[g] {
                let xb = xp + b * inChannels * h * w
                let yb = yp + b * k * hw
                var source = UnsafePointer(xb)
                if let cols {
                    geometry.im2col(xb, cols)
                    source = UnsafePointer(cols)
                }
                gemm(m: k, n: hw, k: ckk, a: wp, lda: ckk, b: source, ldb: hw, c: yb, ldc: hw)
                if let bp {
                    for o in 0..<k {
                        let row = yb + o * hw
                        let v = bp[o]
                        for i in 0..<hw { row[i] += v }
                    }
                }
            }
        }
        return y
    }

    private func backwardReference(_ x: Tensor, _ dy: Tensor) -> Tensor {
        let (n, h, w) = (x.shape[0], x.shape[2], x.shape[3])
        let (ho, wo) = (dy.shape[2], dy.shape[3])
        let geometry = ConvGeometry(channels: inChannels, height: h, width: w, kernel: kernelSize,
                                    stride: stride, padding: padding, outHeight: ho, outWidth: wo)
        let (ckk, hw, k) = (geometry.rows, ho * wo, outChannels)
        let dx = Tensor(shape: x.shape)
        let groups = GangShard.groups(n)
        let partialW = (0..<groups.count).map { _ in Tensor(shape: [k, ckk]) }
        let partialB = (0..<groups.count).map { _ in Tensor(shape: [k]) }
        let (xp, dyp, dxp, wp) = (x.data, dy.data, dx.data, weight.value.data)
        let pointwise = isPointwise
        let hasBias = bias != nil
        Parallel.forEach(groups.count) { g in
            let cols = pointwise ? nil : UnsafeMutablePointer<Float>.allocate(capacity: ckk * hw)
            let dcols = pointwise ? nil : UnsafeMutablePointer<Float>.allocate(capacity: ckk * hw)
            defer { cols?.deallocate(); dcols?.deallocate() }
            let dW = partialW[g].data
            let dB = partialB[g].data
            for (i, b) in groups[g].enumerated() {
                let xb = xp + b * inChannels * h * w
                let dyb = UnsafePointer(dyp + b * k * hw)
                let dxb = dxp + b * inChannels * h * w
                var source = UnsafePointer(xb)
                if let cols {
                    geometry.im2col(xb, cols)
                    source = UnsafePointer(cols)
                }
                // dW += dy_b (K × HW) · cols_bᵀ (HW × CKK)
                gemm(transB: true, m: k, n: ckk, k: hw, a: dyb, lda: hw, b: source, ldb: hw,
                     beta: i == 0 ? 0 : 1, c: dW, ldc: ckk)
                // dcols = Wᵀ (CKK × K) · dy_b (K × HW), then scattered back onto the image
                if let dcols {
                    gemm(transA: true, m: ckk, n: hw, k: k, a: wp, lda: ckk, b: dyb, ldb: hw, c: dcols, ldc: hw)
                    geometry.col2im(dcols, dxb)
                } else {
                    gemm(transA: true, m: ckk, n: hw, k: k, a: wp, lda: ckk, b: dyb, ldb: hw, c: dxb, ldc: hw)
                }
                if hasBias {
                    for o in 0..<k {
                        let row = dyb + o * hw
                        var s: Float = 0
                        for j in 0..<hw { s += row[j] }
                        dB[o] += s
                    }
                }
            }
        }
        accumulate(partialW, partialB)
        return dx
    }
}

/// The shape bookkeeping of one convolution, and the im2col / col2im lowering it implies.
struct ConvGeometry {
    let channels, height, width, kernel, stride, padding, outHeight, outWidth: Int
    var rows: Int { channels * kernel * kernel }

    // x: (C, H, W) -> cols: (C·k·k, Ho·Wo)
    func im2col(_ x: UnsafePointer<Float>, _ cols: UnsafeMutablePointer<Float>) {
        let plane = outHeight * outWidth
        var row = 0
        for c in 0..<channels {
            let xc = x + c * height * width
            for ki in 0..<kernel {
                for kj in 0..<kernel {
                    let dst = cols + row * plane
                    row += 1
                    for oy in 0..<outHeight {
                        let d = dst + oy * outWidth
                        let iy = oy * stride - padding + ki
                        if iy < 0 || iy >= height {
                            d.update(repeating: 0, count: outWidth)
                            continue
                        }
                        let src = xc + iy * width
                        if stride == 1 {
                            let lo = min(outWidth, max(0, padding - kj))
                            let hi = max(lo, min(outWidth, width + padding - kj))
                            for ox in 0..<lo { d[ox] = 0 }
                            if hi > lo { (d + lo).update(from: src + (lo - padding + kj), count: hi - lo) }
                            for ox in hi..<outWidth { d[ox] = 0 }
                        } else {
                            for ox in 0..<outWidth {
                                let ix = ox * stride - padding + kj
                                d[ox] = (ix >= 0 && ix < width) ? src[ix] : 0
                            }
                        }
                    }
                }
            }
        }
    }

    // cols: (C·k·k, Ho·Wo) -> dx: (C, H, W), overwriting dx
    func col2im(_ cols: UnsafePointer<Float>, _ x: UnsafeMutablePointer<Float>) {
        x.update(repeating: 0, count: channels * height * width)
        let plane = outHeight * outWidth
        var row = 0
        for c in 0..<channels {
            let xc = x + c * height * width
            for ki in 0..<kernel {
                for kj in 0..<kernel {
                    let src = cols + row * plane
                    row += 1
                    for oy in 0..<outHeight {
                        let iy = oy * stride - padding + ki
                        if iy < 0 || iy >= height { continue }
                        let s = src + oy * outWidth
                        let d = xc + iy * width
                        if stride == 1 {
                            let lo = min(outWidth, max(0, padding - kj))
                            let hi = max(lo, min(outWidth, width + padding - kj))
                            let dd = d + (kj - padding)
                            for ox in lo..<hi { dd[ox] += s[ox] }
                        } else {
                            for ox in 0..<outWidth {
                                let ix = ox * stride - padding + kj
                                if ix >= 0 && ix < width { d[ix] += s[ox] }
                            }
                        }
                    }
                }
            }
        }
    }
}

import CWinograd
import EngineTestSupport
import TensorEngine
import XCTest

/// The Winograd F(4x4, 3x3) kernels (evaluation's fused forward pass, training's weight
/// gradient) against exact arithmetic, with error bounds derived from the transforms, on every
/// 3x3 stride-1 layer shape of the CIFAR ResNets.
final class WinogradTests: XCTestCase {
    override func setUp() { Parallel.configure(threads: 2) }
    override func tearDown() {
        Parallel.configure(threads: 2)
        Winograd.enabled = true
    }

    // Bᵀ, G and Aᵀ of F(4x4, 3x3) with the points 0, ±1, ±2 (Lavin & Gray 2016).
    static let bT: [[Double]] = [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                                 [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]
    static let g: [[Double]] = [[1.0 / 4, 0, 0], [-1.0 / 6, -1.0 / 6, -1.0 / 6], [-1.0 / 6, 1.0 / 6, -1.0 / 6],
                                [1.0 / 24, 1.0 / 12, 1.0 / 6], [1.0 / 24, -1.0 / 12, 1.0 / 6], [0, 0, 1]]
    static let aT: [[Double]] = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]

    /// Every 3x3 stride-1 shape of ResNet-20/32/56 (depth repeats blocks, so they share them) at
    /// 28x28 and 32x32 inputs, and odd ones: 7x7 and 9x9 maps, batches of 1 and 3, a batch that
    /// splits into uneven groups.
    static let shapes: [(n: Int, c: Int, k: Int, size: Int)] = [
        (4, 16, 16, 28), (4, 16, 16, 32), (4, 32, 32, 14), (4, 32, 32, 16), (4, 64, 64, 7), (4, 64, 64, 8),
        (1, 16, 16, 7), (3, 32, 32, 7), (37, 16, 16, 9), (3, 16, 32, 5), (2, 64, 16, 6),
    ]

    /// The bound. Each output is Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A + bias (+ skip), where every float
    /// operation rounds by at most u = 2⁻²⁴ relative: the input transform is 2 roundings deep per
    /// dimension, the channel sum C (one fused multiply-add per channel), the stored G g Gᵀ one,
    /// the output transform 3 per dimension, the bias and the residual one each: k = C + 13.
    /// Expanding the output into its monomials (a product of transform constants, one
    /// transformed weight and one input), each carries at most k factors (1 + δ), so
    /// |computed − exact| ≤ γ(k) · ỹ with γ(k) = k·u / (1 − k·u) and ỹ the same formula over
    /// absolute values: |Aᵀ|[|G g Gᵀ| ⊙ (|Bᵀ| |d| |B|)]|A| + |bias| + |skip|. The ReLU only shrinks
    /// the difference.
    static func gamma(channels: Int) -> Double { gamma(depth: channels + 13) }

    /// γ(k) = k·u / (1 − k·u): the relative bound of k roundings of u = 2⁻²⁴ each.
    static func gamma(depth: Int) -> Double {
        let u = 0x1p-24, k = Double(depth)
        return k * u / (1 - k * u)
    }

    /// Exact outputs (double) of the fused layer's own folded weights and bias, and ỹ.
    static func exactAndMagnitude(x: Tensor, weights: [Float], bias: [Float], skip: Tensor?, c: Int, k: Int,
                                  size: Int, relu: Bool) -> (exact: [Double], magnitude: [Double]) {
        let n = x.shape[0], plane = size * size
        var exact = [Double](repeating: 0, count: n * k * plane), magnitude = exact
        // |G g Gᵀ| per (o, ci), 36 each.
        var u = [Double](repeating: 0, count: k * c * 36)
        for o in 0..<k { for ci in 0..<c {
            let w = (0..<9).map { Double(weights[(o * c + ci) * 9 + $0]) }
            for a in 0..<6 { for b in 0..<6 {
                var s = 0.0
                for p in 0..<3 { for q in 0..<3 { s += g[a][p] * w[p * 3 + q] * g[b][q] } }
                u[(o * c + ci) * 36 + a * 6 + b] = abs(s)
            } }
        } }
        for img in 0..<n { for o in 0..<k { for y in 0..<size { for xx in 0..<size {
            var e = Double(bias[o])
            for ci in 0..<c { for ki in 0..<3 { for kj in 0..<3 {
                let iy = y - 1 + ki, ix = xx - 1 + kj
                guard iy >= 0, iy < size, ix >= 0, ix < size else { continue }
                e += Double(x.data[((img * c + ci) * size + iy) * size + ix]) * Double(weights[((o * c + ci) * 3 + ki) * 3 + kj])
            } } }
            let at = (img * k + o) * plane + y * size + xx
            e += Double(skip?.data[at] ?? 0)
            exact[at] = relu ? max(e, 0) : e
        } } } }
        // ỹ tile by tile.
        let tiles = (size + 3) / 4
        for img in 0..<n { for ty in 0..<tiles { for tx in 0..<tiles {
            var d = [Double](repeating: 0, count: c * 36)   // |Bᵀ| |d| |B| per input channel
            for ci in 0..<c {
                var patch = [Double](repeating: 0, count: 36)
                for r in 0..<6 { for q in 0..<6 {
                    let iy = ty * 4 - 1 + r, ix = tx * 4 - 1 + q
                    if iy >= 0, iy < size, ix >= 0, ix < size { patch[r * 6 + q] = abs(Double(x.data[((img * c + ci) * size + iy) * size + ix])) }
                } }
                for a in 0..<6 { for b in 0..<6 {
                    var s = 0.0
                    for r in 0..<6 { for q in 0..<6 { s += abs(bT[a][r]) * patch[r * 6 + q] * abs(bT[b][q]) } }
                    d[ci * 36 + a * 6 + b] = s
                } }
            }
            for o in 0..<k {
                var m = [Double](repeating: 0, count: 36)
                for xi in 0..<36 { for ci in 0..<c { m[xi] += u[(o * c + ci) * 36 + xi] * d[ci * 36 + xi] } }
                for i in 0..<4 { for j in 0..<4 {
                    let y = ty * 4 + i, xx = tx * 4 + j
                    guard y < size, xx < size else { continue }
                    var s = 0.0
                    for a in 0..<6 { for b in 0..<6 { s += abs(aT[i][a]) * m[a * 6 + b] * abs(aT[j][b]) } }
                    let at = (img * k + o) * plane + y * size + xx
                    magnitude[at] = s + abs(Double(bias[o])) + abs(Double(skip?.data[at] ?? 0))
                } }
            }
        } } }
        return (exact, magnitude)
    }

    func testWinogradIsWithinItsDerivedBoundOnEveryResNetShape() throws {
        try XCTSkipIf(!Winograd.applies(inChannels: 16, outChannels: 16, kernelSize: 3, stride: 1, padding: 1),
                      "no Winograd kernels for this CPU's blocked layout")
        var rng = RandomSource(seed: 60)
        var worst = 0.0, worstRelative = 0.0
        for (index, s) in Self.shapes.enumerated() {
            let conv = Conv2d(s.c, s.k, kernelSize: 3, stride: 1, padding: 1, rng: &rng)
            let bn = skewedBatchNorm(s.k, seed: UInt64(index))
            let x = randomTensor([s.n, s.c, s.size, s.size], seed: UInt64(200 + index))
            for (relu, residual) in [(true, false), (false, false), (true, true)] {
                let fused = try XCTUnwrap(FusedConvolution(conv, batchNorm: bn, relu: relu))
                let skip = residual ? randomTensor([s.n, s.k, s.size, s.size], seed: 8) : nil
                let y = fused.forward(LayoutTensor.blocked(from: x), adding: skip.map(LayoutTensor.blocked(from:))).plain
                let (exact, magnitude) = Self.exactAndMagnitude(x: x, weights: fused.weights, bias: fused.bias, skip: skip,
                                                                c: s.c, k: s.k, size: s.size, relu: relu)
                let gamma = Self.gamma(channels: s.c)
                for at in 0..<y.count {
                    let error = abs(Double(y.data[at]) - exact[at]), allowed = gamma * magnitude[at]
                    worst = max(worst, error / allowed)
                    worstRelative = max(worstRelative, error / max(magnitude[at], 1e-30))
                    if error > allowed {
                        return XCTFail("\(s) relu \(relu) residual \(residual) at \(at): \(y.data[at]) vs \(exact[at]), bound \(allowed)")
                    }
                }
            }
        }
        print("winograd: worst error \(String(format: "%.3f", worst)) of the derived bound, \(worstRelative) of ỹ")
    }

    /// The weight gradient's bound. Each result is Gᵀ[Σ_t (A dY_t Aᵀ) ⊙ (Bᵀ d_t B)]G over the T
    /// tiles of the call: the output-gradient transform is 2 roundings deep per dimension, the
    /// input transform 2, the tile sum one fused multiply-add per tile (T), the last transform 3
    /// per dimension with integer coefficients, then one multiplication by 1 / (c_p c_q), itself
    /// rounded: k = T + 16, and |computed − exact| ≤ γ(k) · ỹ with ỹ the same formula over
    /// absolute values.
    func testWeightGradientIsWithinItsDerivedBoundOnEveryResNetShape() throws {
        let block = BlockedLayout.block
        try XCTSkipIf(block == 0 || winograd_available(Int32(block)) == 0, "no Winograd kernels for this CPU's blocked layout")
        var worst = 0.0
        for (index, s) in Self.shapes.enumerated() {
            let (n, c, k, size, plane) = (s.n, s.c, s.k, s.size, s.size * s.size)
            let x = randomTensor([n, c, size, size], seed: UInt64(300 + index))
            let dy = randomTensor([n, k, size, size], seed: UInt64(400 + index))
            var dw = [Float](repeating: .nan, count: k * c * 9)
            XCTAssertEqual(winograd_weight_gradient(Int32(block), Int32(n), Int32(c), Int32(k), Int32(size), Int32(size),
                                                    Self.blocked(x, block: block), Self.blocked(dy, block: block), &dw), 0)
            // Exact, in double.
            var exact = [Double](repeating: 0, count: k * c * 9)
            for img in 0..<n { for o in 0..<k { for i in 0..<c { for ky in 0..<3 { for kx in 0..<3 {
                var e = 0.0
                for y in 0..<size { for xx in 0..<size {
                    let iy = y - 1 + ky, ix = xx - 1 + kx
                    guard iy >= 0, iy < size, ix >= 0, ix < size else { continue }
                    e += Double(dy.data[(img * k + o) * plane + y * size + xx]) * Double(x.data[(img * c + i) * plane + iy * size + ix])
                } }
                exact[((o * c + i) * 3 + ky) * 3 + kx] += e
            } } } } }
            // ỹ: per tile, |A| |dY| |Aᵀ| per output channel and |Bᵀ| |d| |B| per input channel.
            let tiles = (size + 3) / 4, count = n * tiles * tiles
            var gradients = [Double](repeating: 0, count: count * k * 36), inputs = [Double](repeating: 0, count: count * c * 36)
            for img in 0..<n { for ty in 0..<tiles { for tx in 0..<tiles {
                let t = (img * tiles + ty) * tiles + tx
                for o in 0..<k {
                    for a in 0..<6 { for b in 0..<6 {
                        var sum = 0.0
                        for r in 0..<4 { for q in 0..<4 {
                            let y = ty * 4 + r, xx = tx * 4 + q
                            guard y < size, xx < size else { continue }
                            sum += abs(Self.aT[r][a]) * abs(Double(dy.data[(img * k + o) * plane + y * size + xx])) * abs(Self.aT[q][b])
                        } }
                        gradients[(t * k + o) * 36 + a * 6 + b] = sum
                    } }
                }
                for i in 0..<c {
                    for a in 0..<6 { for b in 0..<6 {
                        var sum = 0.0
                        for r in 0..<6 { for q in 0..<6 {
                            let iy = ty * 4 - 1 + r, ix = tx * 4 - 1 + q
                            guard iy >= 0, iy < size, ix >= 0, ix < size else { continue }
                            sum += abs(Self.bT[a][r]) * abs(Double(x.data[(img * c + i) * plane + iy * size + ix])) * abs(Self.bT[b][q])
                        } }
                        inputs[(t * c + i) * 36 + a * 6 + b] = sum
                    } }
                }
            } } }
            let gamma = Self.gamma(depth: count + 16)
            for o in 0..<k { for i in 0..<c {
                var sums = [Double](repeating: 0, count: 36)
                for t in 0..<count { for xi in 0..<36 { sums[xi] += gradients[(t * k + o) * 36 + xi] * inputs[(t * c + i) * 36 + xi] } }
                for p in 0..<3 { for q in 0..<3 {
                    var magnitude = 0.0
                    for a in 0..<6 { for b in 0..<6 { magnitude += abs(Self.g[a][p]) * sums[a * 6 + b] * abs(Self.g[b][q]) } }
                    let at = ((o * c + i) * 3 + p) * 3 + q
                    let error = abs(Double(dw[at]) - exact[at]), allowed = gamma * magnitude
                    worst = max(worst, error / allowed)
                    if !(error <= allowed) {
                        return XCTFail("\(s) weight gradient at \(at): \(dw[at]) vs \(exact[at]), bound \(allowed)")
                    }
                } }
            } }
        }
        print("winograd weight gradient: worst error \(String(format: "%.3f", worst)) of the derived bound")
    }

    /// Both widths' weight gradients are the same bits: the same operations in the same order
    /// per lane, the tile sum in tile order.
    func testBothVectorWidthsGiveTheSameWeightGradient() throws {
        try XCTSkipIf(winograd_available(16) == 0 || winograd_available(8) == 0, "this CPU lacks one of the two widths")
        let (n, c, k, h) = (3, 32, 16, 9)
        let x = randomTensor([n, c, h, h], seed: 67), dy = randomTensor([n, k, h, h], seed: 68)
        let outputs = [8, 16].map { block -> [UInt32] in
            var dw = [Float](repeating: .nan, count: k * c * 9)
            XCTAssertEqual(winograd_weight_gradient(Int32(block), Int32(n), Int32(c), Int32(k), Int32(h), Int32(h),
                                                    Self.blocked(x, block: block), Self.blocked(dy, block: block), &dw), 0)
            return dw.map(\.bitPattern)
        }
        XCTAssertEqual(outputs[0], outputs[1])
        XCTAssertFalse(outputs[0].contains { Float(bitPattern: $0).isNaN }, "every weight written")
    }

    /// The AVX2 (blocks of 8) and AVX-512 (blocks of 16) kernels give the same bits: the
    /// operation sequence is shared, and the channel sum runs in channel order in both.
    func testBothVectorWidthsGiveTheSameBits() throws {
        try XCTSkipIf(winograd_available(16) == 0 || winograd_available(8) == 0, "this CPU lacks one of the two widths")
        let (n, c, k, h) = (3, 32, 32, 9)
        let x = randomTensor([n, c, h, h], seed: 61), w = randomTensor([k, c, 3, 3], seed: 62, scale: 0.2)
        let bias = randomTensor([k], seed: 63).array, skip = randomTensor([n, k, h, h], seed: 64)
        var outputs: [[Float]] = []
        for block in [8, 16] {
            var u = [Float](repeating: 0, count: winograd_weights_count(Int32(c), Int32(k)))
            winograd_transform_weights(Int32(block), Int32(c), Int32(k), w.array, &u)
            let (src, res) = (Self.blocked(x, block: block), Self.blocked(skip, block: block))
            var dst = [Float](repeating: .nan, count: n * k * h * h)
            XCTAssertEqual(winograd_forward(Int32(block), Int32(n), Int32(c), Int32(k), Int32(h), Int32(h), src, u, bias, res, 1, &dst), 0)
            outputs.append(Self.plain(dst, shape: [n, k, h, h], block: block))
        }
        XCTAssertEqual(outputs[0].map(\.bitPattern), outputs[1].map(\.bitPattern))
        XCTAssertFalse(outputs[0].contains { $0.isNaN }, "every output written")
    }

    /// The small-map kernel's AVX2 (blocks of 8, tiles of 6 images) and AVX-512 (blocks of 16,
    /// tiles of 12) widths give the same bits: each output's products are summed in (tap,
    /// channel) order in both. 13 images leave a short tile in both; 48 output channels leave
    /// AVX-512 a half-empty panel.
    func testBothVectorWidthsOfTheSmallMapKernelGiveTheSameBits() throws {
        try XCTSkipIf(winograd_available(16) == 0 || winograd_available(8) == 0, "this CPU lacks one of the two widths")
        let (n, c, k, h) = (13, 32, 48, 2)
        let x = randomTensor([n, c, h, h], seed: 71), w = randomTensor([k, c, 3, 3], seed: 72, scale: 0.2)
        let bias = randomTensor([k], seed: 73).array, skip = randomTensor([n, k, h, h], seed: 74)
        var outputs: [[Float]] = []
        for block in [8, 16] {
            let (src, res) = (Self.blocked(x, block: block), Self.blocked(skip, block: block))
            var dst = [Float](repeating: .nan, count: n * k * h * h)
            for oy in 0..<h { for ox in 0..<h {
                let taps = (0..<9).filter { t in (0..<h).contains(oy - 1 + t / 3) && (0..<h).contains(ox - 1 + t % 3) }
                var packed = [Float](repeating: 0, count: tapgemm_packed_count(Int32(block), Int32(c), Int32(k), Int32(taps.count)))
                tapgemm_pack(Int32(block), Int32(c), Int32(k), 3, 3, Int32(taps.count), taps.map(Int32.init), w.array, &packed)
                let offsets = taps.map { Int32($0 / 3 * h + $0 % 3) }, base = Int32((oy - 1) * h + ox - 1)
                for panel in 0..<((k / block + 1) / 2) {
                    XCTAssertEqual(tapgemm_forward(Int32(block), Int32(c), Int32(k), Int32(h * h), Int32(h * h), Int32(taps.count), offsets, base,
                                                   Int32(oy * h + ox), src, packed, bias, res, 0, .infinity, &dst, Int32(panel), 0, Int32(n)), 0)
                }
            } }
            outputs.append(Self.plain(dst, shape: [n, k, h, h], block: block))
        }
        XCTAssertEqual(outputs[0].map(\.bitPattern), outputs[1].map(\.bitPattern))
        XCTAssertFalse(outputs[0].contains { $0.isNaN }, "every output written")
        // A tap outside the map is refused.
        var dst = [Float](repeating: 0, count: n * k)
        XCTAssertEqual(tapgemm_forward(16, Int32(c), Int32(k), 1, 1, 1, [1], 0, 0, Self.blocked(x, block: 16), [Float](repeating: 0, count: 4096),
                                       bias, nil, 0, 1, &dst, 0, 0, 1), -1)
    }

    /// The Winograd path gives the same bits for 1, 2 or 5 threads.
    func testWinogradIsIdenticalForAnyThreadCount() throws {
        try XCTSkipIf(!Winograd.applies(inChannels: 16, outChannels: 32, kernelSize: 3, stride: 1, padding: 1), "no Winograd kernels here")
        var rng = RandomSource(seed: 65)
        let fused = try XCTUnwrap(FusedConvolution(Conv2d(16, 32, kernelSize: 3, padding: 1, rng: &rng), batchNorm: nil, relu: true))
        let x = LayoutTensor.blocked(from: randomTensor([37, 16, 9, 9], seed: 66))
        let outputs = valuesWithThreads([1, 2, 5]) { fused.forward(x).plain.array }
        XCTAssertEqual(outputs[0], outputs[1])
        XCTAssertEqual(outputs[0], outputs[2])
    }

    /// Only 3x3 stride-1 padding-1 layers of whole blocks run on it, and `LAYERSWEEP_CONV=direct`
    /// (`Winograd.enabled = false`) turns it off.
    func testWinogradAppliesToItsShapesOnly() throws {
        let b = max(BlockedLayout.block, 8)
        try XCTSkipIf(!Winograd.applies(inChannels: b, outChannels: b, kernelSize: 3, stride: 1, padding: 1), "no Winograd kernels here")
        XCTAssertFalse(Winograd.applies(inChannels: b, outChannels: b, kernelSize: 3, stride: 2, padding: 1))
        XCTAssertFalse(Winograd.applies(inChannels: b, outChannels: b, kernelSize: 1, stride: 1, padding: 0))
        XCTAssertFalse(Winograd.applies(inChannels: 3, outChannels: b, kernelSize: 3, stride: 1, padding: 1))
        Winograd.enabled = false
        XCTAssertFalse(Winograd.applies(inChannels: b, outChannels: b, kernelSize: 3, stride: 1, padding: 1))
    }

    /// (n, c, h, w) into blocks of `block` channels, and back.
    static func blocked(_ t: Tensor, block: Int) -> [Float] {
        let (n, c, plane) = (t.shape[0], t.shape[1], t.shape[2] * t.shape[3])
        var out = [Float](repeating: 0, count: t.count)
        for i in 0..<n { for ch in 0..<c { for p in 0..<plane {
            out[((i * (c / block) + ch / block) * plane + p) * block + ch % block] = t.data[(i * c + ch) * plane + p]
        } } }
        return out
    }

    static func plain(_ values: [Float], shape: [Int], block: Int) -> [Float] {
        let (n, c, plane) = (shape[0], shape[1], shape[2] * shape[3])
        var out = [Float](repeating: 0, count: values.count)
        for i in 0..<n { for ch in 0..<c { for p in 0..<plane {
            out[(i * c + ch) * plane + p] = values[((i * (c / block) + ch / block) * plane + p) * block + ch % block]
        } } }
        return out
    }
}

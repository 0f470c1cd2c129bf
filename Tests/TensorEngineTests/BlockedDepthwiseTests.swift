import CWinograd
import TensorEngine
import XCTest

/// The blocked depthwise kernel against a direct double-precision depthwise convolution, over
/// kernel sizes, strides, pads, dilations and maps down to 1x1, with and without a clamp; and
/// its bits do not depend on the thread count.
final class BlockedDepthwiseTests: XCTestCase {
    /// y[n, c, oy, ox] = clamp(b[c] + Σ w[c, ky, kx] · x[n, c, oy·s − p + ky·d, ox·s − p + kx·d]).
    func direct(_ x: Tensor, _ w: [Float], _ b: [Float], kernel: [Int], strides: [Int], pads: [Int], dilations: [Int],
                clamp: (Float, Float), out: (Int, Int)) -> [Float] {
        let (n, c, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        var y = [Float](repeating: 0, count: n * c * out.0 * out.1)
        for i in 0..<n {
            for ch in 0..<c {
                for oy in 0..<out.0 {
                    for ox in 0..<out.1 {
                        var acc = Double(b[ch])
                        for ky in 0..<kernel[0] {
                            for kx in 0..<kernel[1] {
                                let iy = oy * strides[0] - pads[0] + ky * dilations[0], ix = ox * strides[1] - pads[1] + kx * dilations[1]
                                guard (0..<h).contains(iy), (0..<wd).contains(ix) else { continue }
                                acc += Double(w[(ch * kernel[0] + ky) * kernel[1] + kx]) * Double(x.data[((i * c + ch) * h + iy) * wd + ix])
                            }
                        }
                        y[((i * c + ch) * out.0 + oy) * out.1 + ox] = min(max(Float(acc), clamp.0), clamp.1)
                    }
                }
            }
        }
        return y
    }

    func testMatchesTheDirectConvolutionOnEveryShape() throws {
        try XCTSkipIf(BlockedLayout.block == 0, "no blocked kernels on this CPU")
        let c = 2 * BlockedLayout.block
        var rng = RandomSource(seed: 5)
        let cases: [(map: [Int], kernel: [Int], strides: [Int], pads: [Int], dilations: [Int], clamp: (Float, Float))] = [
            ([14, 14], [3, 3], [1, 1], [1, 1], [1, 1], (0, 6)),
            ([14, 13], [3, 3], [2, 2], [1, 1], [1, 1], (0, .infinity)),
            ([7, 7], [5, 5], [1, 1], [2, 2], [1, 1], (-.infinity, .infinity)),
            ([2, 2], [3, 3], [1, 1], [1, 1], [1, 1], (0, 6)),
            ([1, 1], [3, 3], [2, 2], [1, 1], [1, 1], (0, 6)),
            ([9, 8], [3, 1], [1, 2], [0, 0], [2, 1], (-1, 1)),
            ([6, 6], [3, 3], [1, 1], [2, 2], [2, 2], (-.infinity, .infinity)),
        ]
        for t in cases {
            let x = Tensor(shape: [5, c] + t.map, values: (0..<(5 * c * t.map[0] * t.map[1])).map { _ in rng.nextNormal() })
            let w = (0..<(c * t.kernel[0] * t.kernel[1])).map { _ in rng.nextNormal() * 0.5 }
            let b = (0..<c).map { _ in rng.nextNormal() }
            let dw = try XCTUnwrap(BlockedDepthwise(channels: c, kernel: t.kernel, strides: t.strides, pads: t.pads, dilations: t.dilations,
                                                    weights: w, bias: b, clamp: t.clamp))
            let out = dw.outputSize(t.map[0], t.map[1])
            let y = dw.forward(LayoutTensor(plain: x))
            XCTAssertTrue(y.blocked)
            XCTAssertEqual(y.shape, [5, c, out.0, out.1])
            let expected = direct(x, w, b, kernel: t.kernel, strides: t.strides, pads: t.pads, dilations: t.dilations, clamp: t.clamp, out: out)
            let got = y.plain.array
            for i in expected.indices { XCTAssertEqual(got[i], expected[i], accuracy: 1e-5 * max(1, abs(expected[i])), "\(t.map) \(t.kernel) at \(i)") }
            // The same bits from a blocked input, and on one thread as on two.
            Parallel.configure(threads: 1)
            let serial = dw.forward(LayoutTensor.blocked(from: x)).plain.array
            Parallel.configure(threads: 2)
            XCTAssertEqual(serial, got)
        }
    }

    /// The 3x3 kernels (taps in vectors, four images at a time) give the bits of the
    /// defining order: the bias, then each tap inside the image in (ky, kx) order as one fused
    /// multiply-add, then the clamp; at every border, stride and pad.
    func testThreeByThreeKernelsGiveTheBitsOfTheDefiningOrder() throws {
        try XCTSkipIf(BlockedLayout.block == 0, "no blocked kernels on this CPU")
        let c = BlockedLayout.block
        var rng = RandomSource(seed: 6)
        for (h, w, stride, pad) in [(14, 13, 1, 1), (9, 20, 1, 0), (14, 14, 2, 1), (7, 7, 2, 0), (5, 11, 1, 2), (2, 2, 1, 1), (3, 17, 2, 2)] {
            let n = 6  // a group of four images and two alone
            let x = (0..<(n * c * h * w)).map { _ in rng.nextNormal() }
            let weights = (0..<(c * 9)).map { _ in rng.nextNormal() }, bias = (0..<c).map { _ in rng.nextNormal() }
            let dw = try XCTUnwrap(BlockedDepthwise(channels: c, kernel: [3, 3], strides: [stride, stride], pads: [pad, pad], dilations: [1, 1],
                                                    weights: weights, bias: bias, clamp: (-1, 2)))
            let (oh, ow) = dw.outputSize(h, w)
            let got = dw.forward(LayoutTensor(plain: Tensor(shape: [n, c, h, w], values: x))).plain.array
            var expected = [Float](repeating: 0, count: n * c * oh * ow)
            for i in 0..<n { for ch in 0..<c { for oy in 0..<oh { for ox in 0..<ow {
                var acc = bias[ch]
                for ky in 0..<3 { for kx in 0..<3 {
                    let (iy, ix) = (oy * stride - pad + ky, ox * stride - pad + kx)
                    guard (0..<h).contains(iy), (0..<w).contains(ix) else { continue }
                    acc = acc.addingProduct(x[((i * c + ch) * h + iy) * w + ix], weights[ch * 9 + ky * 3 + kx])
                } }
                expected[((i * c + ch) * oh + oy) * ow + ox] = min(max(acc, -1), 2)
            } } } }
            XCTAssertEqual(got.map(\.bitPattern), expected.map(\.bitPattern), "\(h)x\(w) stride \(stride) pad \(pad)")
        }
    }

    /// AVX2's blocks of 8 and AVX-512's of 16 give the same bits (where this CPU has both).
    func testBothVectorWidthsGiveTheSameBits() throws {
        try XCTSkipIf(winograd_available(16) != 1 || winograd_available(8) != 1, "needs AVX-512 and AVX2")
        let (n, c, h, w) = (3, 32, 9, 7)
        var rng = RandomSource(seed: 9)
        let x = (0..<(n * c * h * w)).map { _ in rng.nextNormal() }
        let weights = (0..<(c * 9)).map { _ in rng.nextNormal() }, bias = (0..<c).map { _ in rng.nextNormal() }
        func run(_ block: Int) -> [Float] {
            func index(_ i: Int, _ ch: Int, _ y: Int, _ x: Int, _ hh: Int, _ ww: Int) -> Int {
                (((i * (c / block) + ch / block) * hh + y) * ww + x) * block + ch % block
            }
            var src = [Float](repeating: 0, count: x.count)
            for i in 0..<n { for ch in 0..<c { for y in 0..<h { for xx in 0..<w { src[index(i, ch, y, xx, h, w)] = x[((i * c + ch) * h + y) * w + xx] } } } }
            let (oh, ow) = ((h + 2 - 3) / 2 + 1, (w + 2 - 3) / 2 + 1)
            var dst = [Float](repeating: 0, count: n * c * oh * ow)
            var packed = [Float](repeating: 0, count: weights.count)
            depthwise_blocked_pack(Int32(block), Int32(c), 9, weights, &packed)
            XCTAssertEqual(depthwise_blocked_forward(Int32(block), Int32(n), Int32(c), Int32(h), Int32(w), 3, 3, 2, 2, 1, 1, 1, 1,
                                                     src, packed, bias, 0, 6, &dst), 0)
            var plain = dst
            for i in 0..<n { for ch in 0..<c { for y in 0..<oh { for xx in 0..<ow { plain[((i * c + ch) * oh + y) * ow + xx] = dst[index(i, ch, y, xx, oh, ow)] } } } }
            return plain
        }
        XCTAssertEqual(run(8), run(16))
    }

    /// Blocked max pooling against the direct definition, with pads and a window that runs past
    /// the image (ceil mode's last column).
    func testMaxPoolingMatchesTheDirectDefinition() throws {
        try XCTSkipIf(BlockedLayout.block == 0, "no blocked kernels on this CPU")
        let (n, c, h, w) = (3, BlockedLayout.block, 9, 8)
        var rng = RandomSource(seed: 2)
        let x = Tensor(shape: [n, c, h, w], values: (0..<(n * c * h * w)).map { _ in rng.nextNormal() })
        for (kernel, strides, pads, output) in [([3, 3], [2, 2], [1, 1], [5, 4]), ([2, 2], [2, 2], [0, 0], [5, 4]), ([3, 2], [1, 3], [0, 1], [7, 3])] {
            let y = try XCTUnwrap(LayoutTensor.blocked(from: x).maxPooled(kernel: kernel, strides: strides, pads: pads, output: output)).plain
            for i in 0..<n { for ch in 0..<c { for oy in 0..<output[0] { for ox in 0..<output[1] {
                var m = -Float.infinity
                for ky in 0..<kernel[0] { for kx in 0..<kernel[1] {
                    let (iy, ix) = (oy * strides[0] - pads[0] + ky, ox * strides[1] - pads[1] + kx)
                    if (0..<h).contains(iy), (0..<w).contains(ix) { m = max(m, x.data[((i * c + ch) * h + iy) * w + ix]) }
                } }
                XCTAssertEqual(y.data[((i * c + ch) * output[0] + oy) * output[1] + ox], m, "\(kernel) \(strides) at \(oy),\(ox)")
            } } } }
        }
    }

    /// A global average gives the same bits from either layout (each channel summed in index order).
    func testSpatialMeansAreTheSameBitsInBothLayouts() throws {
        try XCTSkipIf(BlockedLayout.block == 0, "no blocked kernels on this CPU")
        var rng = RandomSource(seed: 4)
        let x = Tensor(shape: [3, 2 * BlockedLayout.block, 5, 3], values: (0..<(3 * 2 * BlockedLayout.block * 15)).map { _ in rng.nextNormal() })
        let plain = LayoutTensor(plain: x).spatialMeans(), blocked = LayoutTensor.blocked(from: x).spatialMeans()
        XCTAssertEqual(plain.shape, [3, 2 * BlockedLayout.block])
        XCTAssertEqual(plain.array, blocked.array)
        XCTAssertEqual(Double(plain.data[0]), (0..<15).reduce(0.0) { $0 + Double(x.data[$1]) } / 15, accuracy: 1e-5)
    }
}

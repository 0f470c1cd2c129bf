import EngineTestSupport
@testable import TensorEngine
import XCTest

/// The evaluation path's fused convolution (BN folded in, ReLU and residual sum inside) against
/// exact arithmetic, with a stated error bound, and its blocked-layout helpers.
final class FusedConvolutionTests: XCTestCase {
    override func setUp() { Parallel.configure(threads: 2) }
    override func tearDown() {
        Parallel.configure(threads: 2)
        Winograd.enabled = true
    }

    /// Every 3x3 layer shape of the CIFAR ResNets (ResNet-20, 32 and 56 share them: depth only
    /// repeats blocks) at 28x28 and 32x32 inputs, the option-B projection, and odd shapes: one
    /// input channel, 7x7 maps, batches of 1 and 3, a batch that splits into uneven groups.
    static let shapes: [(n: Int, c: Int, k: Int, size: Int, kernel: Int, stride: Int, pad: Int)] = [
        (8, 1, 16, 28, 3, 1, 1), (8, 3, 16, 32, 3, 1, 1),
        (8, 16, 16, 28, 3, 1, 1), (8, 16, 16, 32, 3, 1, 1), (8, 16, 32, 28, 3, 2, 1), (8, 16, 32, 32, 3, 2, 1),
        (8, 32, 32, 14, 3, 1, 1), (8, 32, 32, 16, 3, 1, 1), (8, 32, 64, 14, 3, 2, 1), (8, 32, 64, 16, 3, 2, 1),
        (8, 64, 64, 7, 3, 1, 1), (8, 64, 64, 8, 3, 1, 1), (8, 16, 32, 28, 1, 2, 0),
        (1, 16, 16, 7, 3, 1, 1), (3, 32, 32, 7, 3, 1, 1), (37, 16, 16, 9, 3, 1, 1), (3, 1, 16, 5, 3, 1, 1),
    ]

    /// The bound: with u = 2⁻²⁴ and K = C·k·k terms, a float dot product in any summation order
    /// is within γ(K) = K·u / (1 − K·u) of Σ|terms|; folding rounds each weight·scale once (u
    /// per term), the bias, the residual sum and the ReLU add at most three more roundings. So
    /// |fused − exact| ≤ γ(K + 4) · (Σ|w·s·x| + |β − μ·s| + |skip|).
    static func bound(terms: Int, magnitude: Double) -> Double {
        let u = 0x1p-24, n = Double(terms + 4)
        return n * u / (1 - n * u) * magnitude
    }

    /// oneDNN's direct kernels (the Winograd ones have their own bound: `WinogradTests`).
    func testFusedConvolutionIsWithinTheStatedBoundOfExactArithmeticOnEveryShape() throws {
        try XCTSkipIf(BlockedLayout.block == 0, "oneDNN has no blocked kernels on this CPU")
        Winograd.enabled = false
        var rng = RandomSource(seed: 50)
        var worst = 0.0
        for (index, s) in Self.shapes.enumerated() {
            let conv = Conv2d(s.c, s.k, kernelSize: s.kernel, stride: s.stride, padding: s.pad, rng: &rng)
            let bn = skewedBatchNorm(s.k, seed: UInt64(index))
            let x = randomTensor([s.n, s.c, s.size, s.size], seed: UInt64(100 + index))
            for (relu, residual) in [(true, false), (false, false), (true, true)] {
                guard let fused = FusedConvolution(conv, batchNorm: bn, relu: relu) else { return XCTFail("no fused path for \(s)") }
                let (ho, wo) = (conv.outputSize(s.size), conv.outputSize(s.size))
                let skipPlain = residual ? randomTensor([s.n, s.k, ho, wo], seed: 7) : nil
                let input = BlockedLayout.holds(channels: s.c) ? LayoutTensor.blocked(from: x) : LayoutTensor(plain: x)
                let y = fused.forward(input, adding: skipPlain.map(LayoutTensor.blocked(from:))).plain
                XCTAssertEqual(y.shape, [s.n, s.k, ho, wo])
                let error = try Self.errorAgainstExact(y, conv: conv, bn: bn, x: x, skip: skipPlain, relu: relu, what: "\(s) relu \(relu) residual \(residual)")
                worst = max(worst, error)
            }
        }
        print("fused convolution: worst error \(String(format: "%.3f", worst)) of the stated bound")
    }

    /// The largest error of the fused output `y` against exact arithmetic, as a fraction of the
    /// stated bound; throws naming the first value beyond it.
    static func errorAgainstExact(_ y: Tensor, conv: Conv2d, bn: BatchNorm?, x: Tensor, skip: Tensor?, relu: Bool, what: String) throws -> Double {
        let (n, c, k, size, kernel) = (x.shape[0], conv.inChannels, conv.outChannels, x.shape[2], conv.kernelSize)
        let (stride, pad) = (conv.stride, conv.padding)
        let (ho, wo) = (conv.outputSize(size), conv.outputSize(size))
        XCTAssertEqual(y.shape, [n, k, ho, wo])
        let (scale, shift) = FusedConvolution.fold(bn, channels: k)
        let terms = c * kernel * kernel
        var worst = 0.0
        for b in 0..<n { for o in 0..<k { for oy in 0..<ho { for ox in 0..<wo {
            var exact = 0.0, magnitude = 0.0
            for ci in 0..<c { for ki in 0..<kernel { for kj in 0..<kernel {
                let iy = oy * stride - pad + ki, ix = ox * stride - pad + kj
                guard iy >= 0, iy < size, ix >= 0, ix < size else { continue }
                let term = Double(x.data[((b * c + ci) * size + iy) * size + ix])
                    * Double(conv.weight.value.data[((o * c + ci) * kernel + ki) * kernel + kj]) * Double(scale[o])
                exact += term
                magnitude += abs(term)
            } } }
            let at = ((b * k + o) * ho + oy) * wo + ox
            exact += Double(shift[o]) + Double(skip?.data[at] ?? 0)
            magnitude += abs(Double(shift[o])) + abs(Double(skip?.data[at] ?? 0))
            if relu { exact = max(exact, 0) }
            let error = abs(Double(y.data[at]) - exact), allowed = bound(terms: terms, magnitude: magnitude)
            worst = max(worst, error / allowed)
            if error > allowed { throw BoundExceeded(description: "\(what) at \(at): \(y.data[at]) vs \(exact), bound \(allowed)") }
        } } } }
        return worst
    }

    struct BoundExceeded: Error, CustomStringConvertible { let description: String }

    /// Channels that do not fill whole blocks (20: neither 16s nor 8s) stay blocked with a
    /// zero-padded last block when the layer pads: in, out, with a residual sum, after a ReLU6;
    /// the padding stays zero, the values keep the bound, and the layout's helpers (round trip,
    /// image groups, compaction, spatial means, a clamp that would move the zeros) read it right.
    func testChannelsThatDoNotFillBlocksArePaddedWithZeros() throws {
        try XCTSkipIf(BlockedLayout.block == 0, "oneDNN has no blocked kernels on this CPU")
        Winograd.enabled = false
        let b = BlockedLayout.block
        XCTAssertTrue(BlockedLayout.pads(channels: 20))
        XCTAssertFalse(BlockedLayout.pads(channels: 2 * b))
        XCTAssertFalse(BlockedLayout.pads(channels: b / 2), "less than a block stays plain")
        var rng = RandomSource(seed: 53)
        let shapes: [(n: Int, c: Int, k: Int, size: Int, kernel: Int, stride: Int, pad: Int)] = [
            (8, 20, 20, 7, 3, 1, 1), (8, 2 * b, 20, 7, 1, 1, 0), (5, 20, 40, 9, 1, 1, 0), (3, 20, 2 * b, 9, 3, 2, 1), (37, 20, 20, 5, 3, 1, 1)]
        for (index, s) in shapes.enumerated() {
            let conv = Conv2d(s.c, s.k, kernelSize: s.kernel, stride: s.stride, padding: s.pad, rng: &rng)
            let bn = skewedBatchNorm(s.k, seed: UInt64(index))
            XCTAssertEqual(FusedConvolution(conv, batchNorm: bn, relu: true) == nil, s.k % b != 0, "without padsChannels")
            let x = randomTensor([s.n, s.c, s.size, s.size], seed: UInt64(200 + index))
            let input = LayoutTensor.blocked(from: x)
            XCTAssertEqual(input.padded, s.c % b != 0)
            XCTAssertEqual(input.plain.array, x.array, "round trip")
            Self.assertPaddingIsZero(input, "the blocked input of \(s)")
            let (ho, wo) = (conv.outputSize(s.size), conv.outputSize(s.size))
            for (relu, relu6, residual) in [(true, false, false), (false, false, true), (true, true, false), (true, false, true)] {
                let fused = try XCTUnwrap(FusedConvolution(conv, batchNorm: bn, relu: relu, relu6: relu6, padsChannels: true))
                let skipPlain = residual ? randomTensor([s.n, s.k, ho, wo], seed: 8) : nil
                for given in [input, LayoutTensor(plain: x)] {
                    let y = fused.forward(given, adding: skipPlain.map(LayoutTensor.blocked(from:)))
                    XCTAssertTrue(y.blocked)
                    XCTAssertEqual(y.padded, s.k % b != 0)
                    Self.assertPaddingIsZero(y, "\(s)")
                    var plain = y.plain
                    if relu6 {  // the bound is for the ReLU: clip the exact side's comparison too
                        let unclipped = try XCTUnwrap(FusedConvolution(conv, batchNorm: bn, relu: true, padsChannels: true)).forward(given).plain
                        XCTAssertEqual(plain.array, unclipped.array.map { min($0, 6) })
                        plain = unclipped
                    }
                    _ = try Self.errorAgainstExact(plain, conv: conv, bn: bn, x: x, skip: skipPlain, relu: relu, what: "\(s) padded")
                }
            }
            // The layout's helpers on a padded activation.
            guard input.padded else { continue }
            let groups = LayoutTensor.uninitialized(images: s.n, like: input.images(0..<1))
            for i in 0..<s.n { groups.write(input.images(i..<(i + 1)), at: i) }
            XCTAssertEqual(groups.storage.array.map(\.bitPattern), input.storage.array.map(\.bitPattern))
            let again = CompactActivation(input).expanded
            XCTAssertEqual(again.storage.array.map(\.bitPattern), input.storage.array.map(\.bitPattern))
            XCTAssertEqual(CompactActivation(input).storedValues.map(\.bitPattern), input.storage.array.map(\.bitPattern))
            XCTAssertEqual(again.plain.array, x.array)
            XCTAssertEqual(input.spatialMeans().array, LayoutTensor(plain: x).spatialMeans().array)
            let shifted = input.clamped(0.5, 6)
            XCTAssertFalse(shifted.blocked, "a clamp that moves zero leaves the padded layout")
            XCTAssertEqual(shifted.plain.array, x.array.map { min(max($0, 0.5), 6) })
            XCTAssertEqual(input.clamped(0, 6).plain.array, x.array.map { min(max($0, 0), 6) })
            XCTAssertNil(input.spatialSlice(begin: (0, 0), step: (2, 2), count: (2, 2)))
            XCTAssertNil(input.channelsPadded(before: 2, after: 2, value: 0))
        }
    }

    /// Output maps of at most four positions (a network's last stages on small images) take the
    /// tap kernel (`SmallMapConvolution`): within the stated bound of exact arithmetic, with
    /// the ReLU, ReLU6 and residual, channels that do not fill blocks, an odd number of output
    /// blocks, strides and a kernel as large as the map; and an image gets the same bits alone,
    /// in any batch and with any thread count.
    func testSmallMapsAreWithinTheBoundAndGiveEachImageTheSameBitsInAnyBatch() throws {
        try XCTSkipIf(BlockedLayout.block == 0, "no blocked kernels on this CPU")
        Winograd.enabled = false
        let b = BlockedLayout.block
        var rng = RandomSource(seed: 57)
        let shapes: [(n: Int, c: Int, k: Int, size: Int, kernel: Int, stride: Int, pad: Int)] = [
            (37, 2 * b, 2 * b, 1, 3, 1, 1), (13, 2 * b, 3 * b, 2, 3, 1, 1), (9, 2 * b, 2 * b, 4, 3, 2, 1), (5, 20, 40, 2, 1, 1, 0),
            (7, 20, 20, 3, 3, 2, 1), (8, 4 * b, 4 * b, 1, 1, 1, 0), (1, b, b, 2, 3, 1, 1), (3, 2 * b, b, 7, 7, 1, 0), (30, 2 * b, 2 * b, 2, 3, 2, 1),
        ]
        for (index, s) in shapes.enumerated() {
            XCTAssertTrue(SmallMapConvolution.applies(kernelSize: s.kernel, stride: s.stride, padding: s.pad, height: s.size, width: s.size), "\(s)")
            let conv = Conv2d(s.c, s.k, kernelSize: s.kernel, stride: s.stride, padding: s.pad, rng: &rng)
            let bn = skewedBatchNorm(s.k, seed: UInt64(index))
            let x = randomTensor([s.n, s.c, s.size, s.size], seed: UInt64(300 + index))
            let input = LayoutTensor.blocked(from: x)
            let (ho, wo) = (conv.outputSize(s.size), conv.outputSize(s.size))
            for (relu, relu6, residual) in [(true, false, false), (false, false, true), (true, true, false), (true, false, true)] {
                let fused = try XCTUnwrap(FusedConvolution(conv, batchNorm: bn, relu: relu, relu6: relu6, padsChannels: true))
                let skipPlain = residual ? randomTensor([s.n, s.k, ho, wo], seed: 9) : nil
                let skip = skipPlain.map(LayoutTensor.blocked(from:))
                let y = fused.forward(input, adding: skip)
                XCTAssertTrue(y.blocked)
                Self.assertPaddingIsZero(y, "\(s)")
                var plain = y.plain
                if relu6 {
                    let unclipped = try XCTUnwrap(FusedConvolution(conv, batchNorm: bn, relu: true, padsChannels: true)).forward(input).plain
                    XCTAssertEqual(plain.array, unclipped.array.map { min($0, 6) })
                    plain = unclipped
                }
                _ = try Self.errorAgainstExact(plain, conv: conv, bn: bn, x: x, skip: skipPlain, relu: relu, what: "\(s) small map")
                // Each image alone, and the batch with 1 and 5 threads: the same bits.
                let bits = y.storage.array.map(\.bitPattern)
                let perImage = bits.count / s.n
                for i in Set([0, s.n / 2, s.n - 1]) {
                    let alone = fused.forward(input.images(i..<(i + 1)), adding: skip?.images(i..<(i + 1))).storage.array.map(\.bitPattern)
                    XCTAssertEqual(alone, Array(bits[(i * perImage)..<((i + 1) * perImage)]), "\(s): image \(i) alone")
                }
                for other in valuesWithThreads([1, 5], { fused.forward(input, adding: skip).storage.array }) {
                    XCTAssertEqual(other.map(\.bitPattern), bits, "\(s): thread counts")
                }
                Parallel.configure(threads: 2)
            }
        }
    }

    /// Every padding channel of a blocked activation holds +0.
    static func assertPaddingIsZero(_ y: LayoutTensor, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        let (n, c, plane, b) = (y.shape[0], y.shape[1], y.shape[2] * y.shape[3], BlockedLayout.block)
        let stored = y.storage.shape[1]
        var bad = 0
        for i in 0..<n { for channel in c..<stored { for p in 0..<plane {
            let at = (i * stored + channel / b * b) * plane + p * b + channel % b
            if y.storage.data[at].bitPattern != 0 { bad += 1 }
        } } }
        XCTAssertEqual(bad, 0, "\(what): padding values that are not +0", file: file, line: line)
    }

    /// The fused convolution on oneDNN's direct kernels gives the same bits with 1, 2 or 5 threads.
    func testFusedConvolutionIsIdenticalForAnyThreadCount() throws {
        try XCTSkipIf(BlockedLayout.block == 0, "oneDNN has no blocked kernels on this CPU")
        Winograd.enabled = false
        var rng = RandomSource(seed: 51)
        let conv = Conv2d(16, 32, kernelSize: 3, stride: 1, padding: 1, rng: &rng)
        let fused = try XCTUnwrap(FusedConvolution(conv, batchNorm: skewedBatchNorm(32, seed: 3), relu: true))
        let x = LayoutTensor.blocked(from: randomTensor([37, 16, 9, 9], seed: 5))
        let outputs = valuesWithThreads([1, 2, 5]) { fused.forward(x).plain.array }
        XCTAssertEqual(outputs[0], outputs[1])
        XCTAssertEqual(outputs[0], outputs[2])
    }

    /// Blocked layout helpers are exact: a round trip, the option-A shortcut and the pool agree
    /// bit for bit with the plain layers.
    func testBlockedHelpersMatchThePlainLayersExactly() throws {
        try XCTSkipIf(BlockedLayout.block == 0, "oneDNN has no blocked kernels on this CPU")
        let b = BlockedLayout.block
        let x = randomTensor([3, 2 * b, 7, 7], seed: 9)
        let blocked = LayoutTensor.blocked(from: x)
        XCTAssertEqual(blocked.plain.array, x.array)
        XCTAssertNotEqual(blocked.storage.array, x.array, "blocked storage is reordered")
        for stride in [1, 2] {
            let plain = PaddedIdentity(2 * b, 4 * b, stride: stride).forward(x, training: false)
            XCTAssertEqual(BlockedLayout.paddedIdentity(blocked, outChannels: 4 * b, stride: stride).plain.array, plain.array)
        }
        // Padding by half a block (16 -> 32 channels with blocks of 16) moves channels across blocks.
        let narrow = randomTensor([2, b, 6, 6], seed: 10)
        XCTAssertEqual(BlockedLayout.paddedIdentity(LayoutTensor.blocked(from: narrow), outChannels: 2 * b, stride: 2).plain.array,
                       PaddedIdentity(b, 2 * b, stride: 2).forward(narrow, training: false).array)
        // Slices along one axis at a time (how exporters write x[:, :, ::2, ::2]), or offset ones.
        for (begin, step, count) in [((0, 0), (2, 1), (4, 7)), ((0, 0), (1, 2), (7, 4)), ((1, 2), (3, 2), (2, 3)), ((6, 0), (-2, 1), (3, 5))] {
            let sliced = try XCTUnwrap(blocked.spatialSlice(begin: begin, step: step, count: count)).plain
            var expected: [Float] = []
            for i in 0..<3 { for c in 0..<(2 * b) { for oy in 0..<count.0 { for ox in 0..<count.1 {
                expected.append(x.array[((i * 2 * b + c) * 7 + begin.0 + oy * step.0) * 7 + begin.1 + ox * step.1])
            } } } }
            XCTAssertEqual(sliced.shape, [3, 2 * b, count.0, count.1])
            XCTAssertEqual(sliced.array, expected, "slice \(begin) \(step) \(count)")
        }
        XCTAssertEqual(BlockedLayout.globalAveragePool(blocked).array, GlobalAvgPool().forward(x, training: false).array)
        XCTAssertEqual(BlockedLayout.relu(blocked).plain.array, x.array.map { max($0, 0) })
    }

    /// A compact activation gives back every value's bits (negative zeros, denormals and odd
    /// lengths included), plain or blocked, and holds a sparse one in fewer bytes.
    func testCompactActivationsRoundTripBitForBit() throws {
        let x = randomTensor([3, 5, 7, 7], seed: 11)   // 735 values: not a whole number of 64-bit words
        for i in 0..<x.count where i % 3 != 0 { x.data[i] = 0 }
        (x.data[1], x.data[4], x.data[7]) = (-0.0, .leastNonzeroMagnitude, -.infinity)
        let compact = CompactActivation(LayoutTensor(plain: x))
        let back = compact.expanded
        XCTAssertFalse(back.blocked)
        XCTAssertEqual(back.shape, x.shape)
        XCTAssertEqual(back.storage.array.map(\.bitPattern), x.array.map(\.bitPattern))
        XCTAssertEqual(compact.storedValues.map(\.bitPattern), x.array.map(\.bitPattern))
        XCTAssertLessThan(compact.bytes, x.count * 4 / 2, "a third of the values stored, plus a bit each")
        if BlockedLayout.block > 0 {
            let blocked = LayoutTensor.blocked(from: BlockedLayout.relu(LayoutTensor.blocked(from: randomTensor([2, BlockedLayout.block, 6, 6], seed: 12))).plain)
            let again = CompactActivation(blocked).expanded
            XCTAssertTrue(again.blocked)
            XCTAssertEqual(again.storage.array.map(\.bitPattern), blocked.storage.array.map(\.bitPattern))
            XCTAssertEqual(again.plain.array, blocked.plain.array)
        }
    }

    /// `LAYERSWEEP_CONV=reference` (the plain path) turns the fused path off.
    func testTheReferenceKernelTurnsTheFusedPathOff() {
        defer { ConvolutionKernel.current = .oneDNN }
        var rng = RandomSource(seed: 52)
        let conv = Conv2d(16, 16, kernelSize: 3, padding: 1, rng: &rng)
        ConvolutionKernel.current = .reference
        XCTAssertNil(FusedConvolution(conv, batchNorm: nil, relu: true))
        XCTAssertFalse(BlockedLayout.holds(channels: 16))
    }
}

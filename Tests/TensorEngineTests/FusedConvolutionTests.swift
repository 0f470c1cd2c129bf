import EngineTestSupport
import TensorEngine
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
                let (scale, shift) = FusedConvolution.fold(bn, channels: s.k)
                let terms = s.c * s.kernel * s.kernel
                for b in 0..<s.n { for o in 0..<s.k { for oy in 0..<ho { for ox in 0..<wo {
                    var exact = 0.0, magnitude = 0.0
                    for ci in 0..<s.c { for ki in 0..<s.kernel { for kj in 0..<s.kernel {
                        let iy = oy * s.stride - s.pad + ki, ix = ox * s.stride - s.pad + kj
                        guard iy >= 0, iy < s.size, ix >= 0, ix < s.size else { continue }
                        let term = Double(x.data[((b * s.c + ci) * s.size + iy) * s.size + ix])
                            * Double(conv.weight.value.data[((o * s.c + ci) * s.kernel + ki) * s.kernel + kj]) * Double(scale[o])
                        exact += term
                        magnitude += abs(term)
                    } } }
                    let at = ((b * s.k + o) * ho + oy) * wo + ox
                    exact += Double(shift[o]) + Double(skipPlain?.data[at] ?? 0)
                    magnitude += abs(Double(shift[o])) + abs(Double(skipPlain?.data[at] ?? 0))
                    if relu { exact = max(exact, 0) }
                    let error = abs(Double(y.data[at]) - exact), allowed = Self.bound(terms: terms, magnitude: magnitude)
                    worst = max(worst, error / allowed)
                    if error > allowed {
                        return XCTFail("\(s) relu \(relu) residual \(residual) at \(at): \(y.data[at]) vs \(exact), bound \(allowed)")
                    }
                } } } }
            }
        }
        print("fused convolution: worst error \(String(format: "%.3f", worst)) of the stated bound")
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

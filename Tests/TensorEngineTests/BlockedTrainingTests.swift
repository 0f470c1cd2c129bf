import CWinograd
import EngineTestSupport
import TensorEngine
import XCTest

/// Training on channel-blocked activations (what a ResNet's layers pass each other) against the
/// same layers on NCHW: the same values up to rounding, gradients that pass finite differences,
/// and the same bits for any thread count.
final class BlockedTrainingTests: XCTestCase {
    let check = GradientCheck()
    /// The smallest channel count that fills whole blocks on this CPU.
    var width: Int { BlockedLayout.block }

    override func setUp() { Parallel.configure(threads: 2) }

    override func tearDown() { ConvolutionKernel.current = .oneDNN }

    func blocked(_ x: Tensor) -> Tensor { x.inLayout(blocked: true) }

    func assertClose(_ a: Tensor, _ b: Tensor, tolerance: Float = 1e-5, _ what: String,
                     file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.shape, b.shape, what, file: file, line: line)
        let (pa, pb) = (a.plain, b.plain)
        var worst: Float = 0
        for i in 0..<pa.count { worst = max(worst, abs(pa[i] - pb[i]) / max(1, abs(pb[i]))) }
        XCTAssertLessThanOrEqual(worst, tolerance, what, file: file, line: line)
    }

    func testLayoutConversionsRoundTrip() throws {
        try XCTSkipIf(width == 0, "no blocked layout on this CPU")
        let x = randomTensor([3, 2 * width, 5, 7], seed: 1)
        let b = blocked(x)
        XCTAssertTrue(b.blocked)
        XCTAssertNotEqual(b.array, x.array)
        XCTAssertEqual(b.plain.array, x.array)
        XCTAssertEqual(b.reshaped([3, 2 * width * 35]).array, x.array)
        XCTAssertTrue(b.copy().blocked)
    }

    /// Each layer on a blocked input gives the plain layer's output and gradients.
    func testEveryLayerMatchesItsPlainTwin() throws {
        try XCTSkipIf(width == 0, "no blocked layout on this CPU")
        let c = width
        let x = randomTensor([3, c, 7, 6], seed: 2, scale: 2)
        let makers: [(String, () -> Layer)] = [
            ("conv", { var rng = RandomSource(seed: 3); return Conv2d(c, c, kernelSize: 3, padding: 1, rng: &rng) }),
            ("strided conv", { var rng = RandomSource(seed: 4); return Conv2d(c, 2 * c, kernelSize: 3, stride: 2, padding: 1, rng: &rng) }),
            ("projection", { var rng = RandomSource(seed: 5); return Conv2d(c, 2 * c, kernelSize: 1, stride: 2, rng: &rng) }),
            ("batch norm", { skewedBatchNorm(c, seed: 6) }),
            ("relu", { ReLU() }),
            ("padded identity", { PaddedIdentity(c, 2 * c, stride: 2) }),
            ("global pool", { GlobalAvgPool() }),
        ]
        for (name, make) in makers {
            for training in [true, false] {
                let (plainLayer, blockedLayer) = (make(), make())
                if let conv = blockedLayer as? Conv2d { conv.emitsBlocked = true }
                let y = plainLayer.forward(x, training: training)
                let yb = blockedLayer.forward(blocked(x), training: training)
                XCTAssertEqual(yb.blocked, !(blockedLayer is GlobalAvgPool), "\(name) keeps the layout")
                assertClose(yb, y, "\(name) forward")
                let dy = randomTensor(y.shape, seed: 7)
                let dx = plainLayer.backward(dy)
                let dxb = blockedLayer.backward(yb.blocked ? blocked(dy) : dy)
                XCTAssertTrue(dxb.blocked, "\(name) returns its input's layout")
                assertClose(dxb, dx, tolerance: 1e-4, "\(name) input gradient")
                for ((p, a), (_, b)) in zip(plainLayer.namedParameters(), blockedLayer.namedParameters()) {
                    assertClose(b.grad, a.grad, tolerance: 1e-4, "\(name) \(p) gradient")
                }
            }
        }
    }

    func testBlockedGradientsPassFiniteDifferences() throws {
        try XCTSkipIf(width == 0, "no blocked layout on this CPU")
        let c = width
        var rng = RandomSource(seed: 8)
        let conv = Conv2d(c, c, kernelSize: 3, padding: 1, rng: &rng)
        conv.emitsBlocked = true
        let chain = Sequential([("conv", conv), ("bn", skewedBatchNorm(c, seed: 9)), ("relu", ReLU())])
        check.check(chain, input: blocked(randomTensor([2, c, 5, 4], seed: 10)), training: true)
        check.check(PaddedIdentity(c, 2 * c, stride: 2), input: blocked(randomTensor([2, c, 5, 5], seed: 11)), training: true)
    }

    /// The reference kernel takes blocked inputs too (it converts them).
    func testReferenceKernelAcceptsBlockedInputs() throws {
        try XCTSkipIf(width == 0, "no blocked layout on this CPU")
        var rng = RandomSource(seed: 12)
        let conv = Conv2d(width, width, kernelSize: 3, padding: 1, rng: &rng)
        conv.emitsBlocked = true
        let x = randomTensor([2, width, 6, 6], seed: 13)
        let direct = conv.forward(blocked(x), training: true)
        ConvolutionKernel.current = .reference
        let reference = conv.forward(blocked(x), training: true)
        XCTAssertFalse(reference.blocked)
        assertClose(reference, direct, tolerance: 1e-4, "reference on a blocked input")
        let dx = conv.backward(randomTensor(reference.shape, seed: 14))
        XCTAssertTrue(dx.blocked)
    }

    func testBlockedTrainingIsBitIdenticalAcrossThreadCounts() throws {
        try XCTSkipIf(width == 0, "no blocked layout on this CPU")
        let c = width
        let values = valuesWithThreads([1, 2, 3]) { () -> [Float] in
            var rng = RandomSource(seed: 15)
            let conv = Conv2d(c, c, kernelSize: 3, padding: 1, rng: &rng)
            conv.emitsBlocked = true
            let net = Sequential([("conv", conv), ("bn", BatchNorm(c)), ("relu", ReLU()), ("pool", GlobalAvgPool())])
            let y = net.forward(blocked(randomTensor([37, c, 8, 8], seed: 16)), training: true)   // 8x8: Winograd
            let dx = net.backward(randomTensor(y.shape, seed: 17))
            return ([y.array, dx.array] + net.namedParameters().map { $0.1.grad.array }).flatMap { $0 }
        }
        XCTAssertEqual(values[0], values[1])
        XCTAssertEqual(values[0], values[2])
    }

    /// Training's 3x3 stride-1 layers on blocked maps of 7x7 and more run forward, backward-data
    /// and backward-weights on the Winograd kernels: within rounding of the direct kernel
    /// (relative to the largest value; `WinogradTests` states the exact bounds), and through
    /// finite differences.
    func testWinogradTrainingMatchesTheDirectKernel() throws {
        try XCTSkipIf(width == 0 || !Winograd.applies(inChannels: width, outChannels: width, kernelSize: 3, stride: 1, padding: 1),
                      "no Winograd kernels on this CPU")
        let enabled = Winograd.enabled
        defer { Winograd.enabled = enabled }
        for (c, k, size, n) in [(width, width, 8, 3), (width, 2 * width, 9, 1), (2 * width, width, 10, 5), (width, width, 7, 2)] {
            let x = blocked(randomTensor([n, c, size, size + 1], seed: 20))
            let dy = blocked(randomTensor([n, k, size, size + 1], seed: 21))
            var outputs: [Bool: (Tensor, Tensor, [Float])] = [:]
            for winograd in [false, true] {
                Winograd.enabled = winograd
                var rng = RandomSource(seed: 22)
                let conv = Conv2d(c, k, kernelSize: 3, padding: 1, rng: &rng)
                conv.emitsBlocked = true
                let y = conv.forward(x, training: true)
                outputs[winograd] = (y, conv.backward(dy), conv.weight.grad.array)
            }
            let (direct, winograd) = (outputs[false]!, outputs[true]!)
            XCTAssertNotEqual(winograd.0.array, direct.0.array, "the Winograd kernels ran")
            XCTAssertNotEqual(winograd.2, direct.2, "the Winograd weight gradient ran")
            for (name, a, b) in [("forward", winograd.0.array, direct.0.array), ("input gradient", winograd.1.array, direct.1.array),
                                 ("weight gradient", winograd.2, direct.2)] {
                let scale = b.map(abs).max() ?? 1
                let worst = zip(a, b).map { abs($0 - $1) }.max() ?? 0
                XCTAssertLessThanOrEqual(worst, 1e-5 * scale, "\(c)->\(k) \(size)x\(size + 1) \(name)")
            }
        }
        // A convolution is linear, so central differences are exact for any step: a large one
        // keeps the Winograd outputs' rounding (spread over whole tiles) out of the quotient.
        Winograd.enabled = true
        var rng = RandomSource(seed: 23)
        let conv = Conv2d(width, width, kernelSize: 3, padding: 1, rng: &rng)
        conv.emitsBlocked = true
        GradientCheck(epsilon: 0.25).check(conv, input: blocked(randomTensor([2, width, 8, 8], seed: 24)), training: true)
    }

    /// backward(dy, adding: other) is backward(dy) + other, the sum taken in the Winograd
    /// kernels' output pass on blocked 3x3 layers and by `add` elsewhere, to the same bits.
    func testBackwardAddingAnotherGradientEqualsTheSum() throws {
        let c = max(width, 4)
        for (blockedInput, kernel) in [(true, ConvolutionKernel.oneDNN), (false, .oneDNN), (false, .reference)] {
            ConvolutionKernel.current = kernel
            var rng = RandomSource(seed: 26)
            let conv = Conv2d(c, c, kernelSize: 3, padding: 1, rng: &rng)
            conv.emitsBlocked = blockedInput
            let x = randomTensor([3, c, 9, 9], seed: 27)
            let input = blockedInput && width > 0 ? blocked(x) : x
            let y = conv.forward(input, training: true)
            let (dy, other) = (randomTensor(y.shape, seed: 28), randomTensor(x.shape, seed: 29))
            let apart = add(conv.backward(dy), other.inLayout(blocked: input.blocked))
            let joined = conv.backward(dy, adding: other)
            XCTAssertEqual(joined.blocked, input.blocked)
            XCTAssertEqual(joined.plain.array, apart.plain.array, "blocked \(blockedInput), \(kernel)")
        }
    }

    func testWinogradWeightsAreTheSameBitsTransformedInBlocks() throws {
        try XCTSkipIf(width == 0, "no blocked layout on this CPU")
        let (c, k) = (2 * width, 3 * width)
        let w = randomTensor([k, c, 3, 3], seed: 25).array
        let values = valuesWithThreads([1, 2]) { Winograd.transform(w, inChannels: c, outChannels: k) }
        XCTAssertEqual(values[0], values[1])
        var whole = [Float](repeating: 0, count: values[0].count)
        winograd_transform_weights(Int32(width), Int32(c), Int32(k), w, &whole)
        XCTAssertEqual(values[0], whole)
    }

    /// relu(BN(x) + skip) in the batch norm's pass equals the three layers apart, in either
    /// layout and mode, on maps and on 1x1 maps (the flat training path), forward and backward;
    /// and it passes finite differences.
    func testFusedJoinMatchesSeparateLayers() throws {
        let c = max(width, 4)
        for spatial in [[5, 6], [1, 1]] {
            try checkFusedJoin(randomTensor([3, c] + spatial, seed: 30, scale: 2))
        }
    }

    func checkFusedJoin(_ x: Tensor) throws {
        let c = x.shape[1]
        let skip = randomTensor(x.shape, seed: 31)
        let dy = randomTensor(x.shape, seed: 32)
        for layout in width == 0 ? [false] : [false, true] {
            for training in [true, false] {
                for withSkip in [false, true] {
                    let (fused, separate, relu) = (skewedBatchNorm(c, seed: 33), skewedBatchNorm(c, seed: 33), ReLU())
                    let input = x.inLayout(blocked: layout)
                    let y = fused.forward(input, training: training, adding: withSkip ? skip : nil, relu: true)
                    let z = separate.forward(input, training: training)
                    let expected = relu.forward(withSkip ? add(z, skip) : z, training: training)
                    let what = "\(x.shape), blocked \(layout), training \(training), skip \(withSkip)"
                    XCTAssertEqual(y.blocked, layout)
                    XCTAssertEqual(y.plain.array, expected.plain.array, what)
                    let (dx, joined) = fused.backwardJoined(dy.inLayout(blocked: layout))
                    let dJoin = relu.backward(dy)
                    XCTAssertEqual(joined.plain.array, dJoin.plain.array, what)
                    assertClose(dx, separate.backward(dJoin), tolerance: 1e-5, what)
                    assertClose(fused.gamma.grad, separate.gamma.grad, tolerance: 1e-4, what)
                    assertClose(fused.beta.grad, separate.beta.grad, tolerance: 1e-4, what)
                }
            }
        }
        let probe = JoinedBatchNorm(skewedBatchNorm(c, seed: 34), skip: skip)
        check.check(probe, input: x, training: true)
        if width > 0 {
            let blockedProbe = JoinedBatchNorm(skewedBatchNorm(c, seed: 34), skip: skip.inLayout(blocked: true))
            check.check(blockedProbe, input: x.inLayout(blocked: true), training: true)
        }
    }
}

/// relu(BN(x) + skip) as one layer, for the gradient check.
private final class JoinedBatchNorm: Layer {
    let bn: BatchNorm
    let skip: Tensor

    init(_ bn: BatchNorm, skip: Tensor) { (self.bn, self.skip) = (bn, skip) }

    var children: [(String, Layer)] { [("bn", bn)] }
    func forward(_ x: Tensor, training: Bool) -> Tensor { bn.forward(x, training: training, adding: skip, relu: true) }
    func backward(_ dy: Tensor) -> Tensor { bn.backwardJoined(dy).dx }
}

import EngineTestSupport
import TensorEngine
import XCTest

/// Kernels against plain reference implementations and hand-computed values.
final class ReferenceTests: XCTestCase {
    override func setUp() { Parallel.configure(threads: 2) }

    /// The direct seven-loop convolution, the reference the GEMM lowering must match.
    func directConvolution(_ x: Tensor, _ conv: Conv2d) -> Tensor {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (k, s, p) = (conv.kernelSize, conv.stride, conv.padding)
        let (ho, wo) = (conv.outputSize(h), conv.outputSize(w))
        let y = Tensor(shape: [n, conv.outChannels, ho, wo])
        let wt = conv.weight.value
        for b in 0..<n { for o in 0..<conv.outChannels { for oy in 0..<ho { for ox in 0..<wo {
            var sum = Double(conv.bias?.value.data[o] ?? 0)
            for ci in 0..<c { for ki in 0..<k { for kj in 0..<k {
                let iy = oy * s - p + ki, ix = ox * s - p + kj
                if iy >= 0, iy < h, ix >= 0, ix < w {
                    sum += Double(x.data[((b * c + ci) * h + iy) * w + ix]) * Double(wt.data[((o * c + ci) * k + ki) * k + kj])
                }
            } } }
            y.data[((b * conv.outChannels + o) * ho + oy) * wo + ox] = Float(sum)
        } } } }
        return y
    }

    func testConvolutionMatchesDirectReference() {
        var rng = RandomSource(seed: 40)
        for (k, s, p, bias) in [(3, 1, 1, false), (3, 2, 1, true), (1, 2, 0, false), (5, 1, 2, true), (2, 2, 0, false)] {
            let conv = Conv2d(3, 5, kernelSize: k, stride: s, padding: p, bias: bias, rng: &rng)
            if let b = conv.bias { for i in 0..<5 { b.value.data[i] = Float(i) * 0.1 } }
            let x = randomTensor([3, 3, 9, 8], seed: UInt64(k * 10 + s))
            let fast = conv.forward(x, training: false), slow = directConvolution(x, conv)
            XCTAssertEqual(fast.shape, slow.shape)
            for i in 0..<fast.count { XCTAssertEqual(fast.data[i], slow.data[i], accuracy: 1e-4, "k\(k) s\(s) p\(p) at \(i)") }
        }
    }

    /// oneDNN's kernels against the im2col reference: outputs and all three gradients.
    func testOneDNNMatchesReferenceKernel() {
        defer { ConvolutionKernel.current = .oneDNN }
        var rng = RandomSource(seed: 41)
        for (c, k, size, kernel, s, p, n) in [(3, 16, 28, 3, 1, 1, 37), (16, 32, 14, 3, 2, 1, 8), (16, 32, 9, 1, 2, 0, 5), (1, 4, 7, 5, 1, 2, 3)] {
            let conv = Conv2d(c, k, kernelSize: kernel, stride: s, padding: p, bias: kernel == 5, rng: &rng)
            let x = randomTensor([n, c, size, size], seed: UInt64(c * 7 + k))
            var results: [[Float]] = []
            for kernelChoice in [ConvolutionKernel.oneDNN, .reference] {
                ConvolutionKernel.current = kernelChoice
                conv.weight.zeroGrad()
                conv.bias?.zeroGrad()
                let y = conv.forward(x, training: true)
                let dx = conv.backward(randomTensor(y.shape, seed: 99))
                results.append(y.array + dx.array + conv.weight.grad.array + (conv.bias?.grad.array ?? []))
            }
            let scale = results[1].map(abs).max() ?? 1
            for (a, b) in zip(results[0], results[1]) {
                XCTAssertEqual(a, b, accuracy: 2e-5 * scale, "\(c)->\(k) k\(kernel) s\(s) p\(p)")
            }
        }
    }

    func testBatchNormRunningStatisticsFollowPyTorch() {
        let bn = BatchNorm(1, momentum: 0.1)
        let x = Tensor(shape: [4, 1], values: [1, 2, 3, 6])  // mean 3, biased var 3.5, unbiased 14/3
        let y = bn.forward(x, training: true)
        XCTAssertEqual(bn.runningMean[0], 0.3, accuracy: 1e-6)
        XCTAssertEqual(bn.runningVar[0], 0.9 + 0.1 * 14 / 3, accuracy: 1e-6)
        XCTAssertEqual(y[0], (1 - 3) / (3.5 + 1e-5).squareRoot(), accuracy: 1e-5)
        let cumulative = BatchNorm(1, momentum: nil)
        _ = cumulative.forward(x, training: true)
        _ = cumulative.forward(Tensor(shape: [2, 1], values: [5, 7]), training: true)
        XCTAssertEqual(cumulative.runningMean[0], 4.5, accuracy: 1e-6, "cumulative average of batch means 3 and 6")
        let eval = bn.forward(Tensor(shape: [1, 1], values: [0.3]), training: false)
        XCTAssertEqual(eval[0], 0, accuracy: 1e-6, "eval mode normalises with running statistics")
    }

    func testSoftmaxCrossEntropyValue() {
        let logits = Tensor(shape: [2, 3], values: [0, 0, 0, 1, 2, 3])
        let r = Loss.softmaxCrossEntropy(logits, labels: [1, 2])
        let second = -log(exp(3.0) / (exp(1.0) + exp(2.0) + exp(3.0)))
        XCTAssertEqual(Double(r.loss), (log(3.0) + second) / 2, accuracy: 1e-6)
        XCTAssertEqual(r.correct, 1)
    }

    func testSGDMomentumWeightDecayAndNesterov() {
        let p = Parameter(Tensor(shape: [1], values: [1]))
        let plain = SGD(parameters: [p], momentum: 0.9, weightDecay: 0.1)
        p.grad[0] = 0.5
        plain.step(learningRate: 0.1)  // g = 0.6, v = 0.6, w = 1 - 0.06
        XCTAssertEqual(p.value[0], 0.94, accuracy: 1e-7)
        plain.step(learningRate: 0.1)  // g = 0.5 + 0.094 = 0.594, v = 0.54 + 0.594 = 1.134
        XCTAssertEqual(p.value[0], 0.94 - 0.1134, accuracy: 1e-6)
        let q = Parameter(Tensor(shape: [1], values: [1]))
        let nesterov = SGD(parameters: [q], momentum: 0.9, nesterov: true)
        q.grad[0] = 1
        nesterov.step(learningRate: 0.1)  // v = 1, update g + μv = 1.9
        XCTAssertEqual(q.value[0], 1 - 0.19, accuracy: 1e-7)
    }

    func testLearningRateSchedules() {
        XCTAssertEqual(LearningRateSchedule.cosine(minimum: 0).rate(base: 0.1, step: 0, stepsPerEpoch: 10, epochs: 2), 0.1, accuracy: 1e-7)
        XCTAssertEqual(LearningRateSchedule.cosine(minimum: 0).rate(base: 0.1, step: 10, stepsPerEpoch: 10, epochs: 2), 0.05, accuracy: 1e-7)
        XCTAssertEqual(LearningRateSchedule.step(every: 2, gamma: 0.1).rate(base: 1, step: 45, stepsPerEpoch: 10, epochs: 9), 0.01, accuracy: 1e-7)
        XCTAssertEqual(LearningRateSchedule.multiStep(milestones: [1, 3], gamma: 0.5).rate(base: 1, step: 25, stepsPerEpoch: 10, epochs: 9), 0.5)
        XCTAssertEqual(LearningRateSchedule.constant.rate(base: 0.3, step: 99, stepsPerEpoch: 1, epochs: 1), 0.3)
    }

    func testPaddedIdentitySubsamplesAndPadsChannels() {
        let x = Tensor(shape: [1, 1, 2, 2], values: [1, 2, 3, 4])
        let y = PaddedIdentity(1, 3, stride: 2).forward(x, training: false)
        XCTAssertEqual(y.shape, [1, 3, 1, 1])
        XCTAssertEqual(y.array, [0, 1, 0])
    }

    func testHeInitialisationHasExpectedVariance() {
        var rng = RandomSource(seed: 3)
        let w = Initializer.heNormal(shape: [64, 64, 3, 3], fanIn: 576, rng: &rng)
        XCTAssertEqual(w.sumOfSquares / Double(w.count), 2.0 / 576, accuracy: 2e-4)
    }
}

/// Results must not depend on the thread count: ranks on a node split cores differently.
final class DeterminismTests: XCTestCase {
    func run(threads: Int) -> [[Float]] {
        Parallel.configure(threads: threads)
        var rng = RandomSource(seed: 50)
        let conv = Conv2d(4, 8, kernelSize: 3, stride: 2, padding: 1, bias: true, rng: &rng)
        let bn = BatchNorm(8), fc = Linear(8 * 5 * 5, 10, rng: &rng)
        let net = Sequential([("conv", conv), ("bn", bn), ("relu", ReLU()), ("fc", fc)])
        let x = randomTensor([37, 4, 9, 9], seed: 51)
        let y = net.forward(x, training: true)
        let dx = net.backward(randomTensor(y.shape, seed: 52))
        return [y.array, dx.array] + net.namedParameters().map { $0.1.grad.array }
    }

    func testForwardAndBackwardAreBitIdenticalAcrossThreadCounts() {
        let one = run(threads: 1)
        XCTAssertEqual(one, run(threads: 2))
        XCTAssertEqual(one, run(threads: 5))
    }

    func testRandomSourceIsStable() {
        var a = RandomSource(seed: 9, stream: "x"), b = RandomSource(seed: 9, stream: "x"), c = RandomSource(seed: 9, stream: "y")
        let first = (0..<4).map { _ in a.next() }
        XCTAssertEqual(first, (0..<4).map { _ in b.next() })
        XCTAssertNotEqual(first, (0..<4).map { _ in c.next() })
        XCTAssertEqual(StableHash.of("fashion-mnist/resnet20"), StableHash.of("fashion-mnist/resnet20"))
        var p = RandomSource(seed: 1)
        XCTAssertEqual(p.permutation(100).sorted(), Array(0..<100))
    }
}

/// Which OpenBLAS kernel set replaces a generic fallback.
final class BLASKernelChoiceTests: XCTestCase {
    func testOnlyAGenericFallbackIsReplacedAndByWhatTheCPUCanRun() {
        let avx2: Set = ["sse3", "avx", "avx2", "fma"]
        let avx512 = avx2.union(["avx512f", "avx512vl", "avx512bw", "avx512dq", "avx512cd"])
        XCTAssertEqual(BLASKernels.replacement(core: "Prescott", cpuFlags: avx2), "Haswell")
        XCTAssertEqual(BLASKernels.replacement(core: "Prescott", cpuFlags: avx512), "SkylakeX")
        XCTAssertEqual(BLASKernels.replacement(core: "Prescott", cpuFlags: avx512.subtracting(["avx512bw"])), "Haswell")
        XCTAssertNil(BLASKernels.replacement(core: "Prescott", cpuFlags: ["sse3", "avx"]))
        XCTAssertNil(BLASKernels.replacement(core: "Zen", cpuFlags: avx2))
        XCTAssertNil(BLASKernels.replacement(core: "Haswell", cpuFlags: avx512))
    }
}

import EngineTestSupport
import TensorEngine
import XCTest

/// Every layer's backward against central finite differences (tolerance: see GradientCheck).
final class LayerGradientTests: XCTestCase {
    let check = GradientCheck()

    override func setUp() { Parallel.configure(threads: 2) }

    override func tearDown() { ConvolutionKernel.current = .oneDNN }

    /// Runs `body` with each convolution kernel: oneDNN and the im2col reference.
    func withEachKernel(_ body: () -> Void) {
        for kernel in [ConvolutionKernel.oneDNN, .reference] {
            ConvolutionKernel.current = kernel
            body()
        }
    }

    func testConv2dStride1Padding1() { withEachKernel {
        var rng = RandomSource(seed: 1)
        check.check(Conv2d(3, 4, kernelSize: 3, padding: 1, rng: &rng), input: randomTensor([2, 3, 5, 6], seed: 2), training: true)
    } }

    func testConv2dStride2WithBias() { withEachKernel {
        var rng = RandomSource(seed: 3)
        check.check(Conv2d(2, 3, kernelSize: 3, stride: 2, padding: 1, bias: true, rng: &rng),
                    input: randomTensor([3, 2, 7, 6], seed: 4), training: true)
    } }

    func testConv2dPointwiseAndStridedProjection() { withEachKernel {
        var rng = RandomSource(seed: 5)
        check.check(Conv2d(4, 3, kernelSize: 1, rng: &rng), input: randomTensor([2, 4, 3, 3], seed: 6), training: true)
        check.check(Conv2d(4, 6, kernelSize: 1, stride: 2, rng: &rng), input: randomTensor([2, 4, 5, 5], seed: 7), training: true)
    } }

    func testConv2dNoPaddingLargeKernel() { withEachKernel {
        var rng = RandomSource(seed: 8)
        check.check(Conv2d(2, 2, kernelSize: 5, bias: true, rng: &rng), input: randomTensor([2, 2, 7, 8], seed: 9), training: true)
    } }

    func testBatchNorm2dTrainingMode() {
        let bn = BatchNorm(3)
        for i in 0..<3 { bn.gamma.value.data[i] = 0.5 + Float(i); bn.beta.value.data[i] = Float(i) - 1 }
        check.check(bn, input: randomTensor([4, 3, 3, 2], seed: 10, scale: 2), training: true)
    }

    func testBatchNorm2dEvalMode() {
        let bn = BatchNorm(3)
        _ = bn.forward(randomTensor([4, 3, 3, 3], seed: 11), training: true)
        bn.gamma.value.data[1] = 2
        check.check(bn, input: randomTensor([2, 3, 3, 3], seed: 12), training: false)
    }

    func testBatchNorm1dBothModes() {
        let bn = BatchNorm(5)
        check.check(bn, input: randomTensor([6, 5], seed: 13), training: true)
        check.check(bn, input: randomTensor([3, 5], seed: 14), training: false)
    }

    func testReLU() {
        check.check(ReLU(), input: randomTensor([2, 3, 4, 4], seed: 15), training: true)
    }

    func testMaxPoolAndAvgPool() {
        check.check(MaxPool2d(kernelSize: 2), input: randomTensor([2, 2, 6, 5], seed: 16), training: true)
        check.check(MaxPool2d(kernelSize: 3, stride: 2), input: randomTensor([1, 2, 7, 7], seed: 17), training: true)
        check.check(AvgPool2d(kernelSize: 2), input: randomTensor([2, 2, 6, 6], seed: 18), training: true)
        check.check(AvgPool2d(kernelSize: 3, stride: 1), input: randomTensor([1, 1, 5, 5], seed: 19), training: true)
    }

    func testGlobalAvgPoolAndFlatten() {
        check.check(GlobalAvgPool(), input: randomTensor([2, 3, 4, 5], seed: 20), training: true)
        check.check(Sequential([("flatten", Flatten()), ("fc", linear(60, 4))]), input: randomTensor([2, 3, 4, 5], seed: 21), training: true)
    }

    func testLinear() {
        check.check(linear(7, 5), input: randomTensor([70, 7], seed: 22), training: true)
        var rng = RandomSource(seed: 23)
        check.check(Linear(130, 3, bias: false, rng: &rng), input: randomTensor([3, 130], seed: 24), training: true)
    }

    func testPaddedIdentityShortcut() {
        check.check(PaddedIdentity(2, 6, stride: 2), input: randomTensor([2, 2, 5, 4], seed: 25), training: true)
    }

    func testSoftmaxCrossEntropyGradient() {
        let logits = randomTensor([4, 5], seed: 26)
        let labels: [Int32] = [0, 3, 4, 1]
        let analytic = Loss.softmaxCrossEntropy(logits, labels: labels).gradient
        var rng = RandomSource(seed: 27)
        check.compare([("logits", logits, analytic)], objective: {
            Double(Loss.softmaxCrossEntropy(logits, labels: labels).loss)
        }, rng: &rng)
    }

    func testMeanSquaredErrorGradient() {
        let logits = randomTensor([3, 4], seed: 28), targets = randomTensor([3, 4], seed: 29)
        let analytic = Loss.meanSquaredError(logits, targets: targets).gradient
        var rng = RandomSource(seed: 30)
        check.compare([("logits", logits, analytic)], objective: {
            Double(Loss.meanSquaredError(logits, targets: targets).loss)
        }, rng: &rng)
    }

    private func linear(_ i: Int, _ o: Int) -> Linear {
        var rng = RandomSource(seed: UInt64(i * 31 + o))
        return Linear(i, o, rng: &rng)
    }
}

import Foundation
import Models
import TensorEngine

/// Throughput of training and inference for a model on random inputs of a given shape.
public struct BenchmarkResult: Codable, Sendable {
    public let model: String
    public let input: [Int]
    public let batchSize: Int
    public let threads: Int
    public let trainImagesPerSecond: Double
    public let evalImagesPerSecond: Double
    /// Arithmetic rates: a training step counted as 3x the forward pass's multiply-adds (forward,
    /// backward-data, backward-weights), 2 FLOPs each; convolutions at their direct FLOPs.
    public var trainGFLOPs: Double = 0
    public var evalGFLOPs: Double = 0
    /// CPU time over wall time x threads while evaluating: 1 when every thread computes throughout.
    public var evalCPUUtilisation: Double = 0
    /// OpenBLAS's kernel set in this process (the fully connected layers' speed depends on it).
    public var blasCore: String = BLASKernels.core
    /// The sgemm rate measured in the same sitting (`Benchmark.sgemmPeak`), 0 when not measured.
    public var sgemmPeakGFLOPs: Double = 0
}

/// Per-layer time of one training step, summed over timed steps.
public struct LayerProfile: Codable, Sendable {
    public let layer: String
    public let forwardSeconds: Double
    public let backwardSeconds: Double
}

/// The benchmark cases of `sweep bench`: the shapes the studies train most.
public enum Benchmark {
    public static let cases: [(model: String, input: [Int])] = [
        ("resnet20", [1, 28, 28]), ("resnet20", [3, 32, 32]), ("fcn-1024x3-bn", [1, 28, 28]),
    ]

    /// The models of `cases`, each once, sorted.
    public static var models: [String] { Set(cases.map(\.model)).sorted() }

    /// Times `seconds` worth of SGD steps and of inference batches (after a warm-up).
    public static func run(model: String, input: [Int], batchSize: Int = 128, seconds: Double = 5) throws -> BenchmarkResult {
        let (network, x, labels) = try workload(model: model, input: input, batchSize: batchSize)
        let trainStep = sgdStep(network, x, labels)
        let plan = InferencePlan(network)
        let evalStep = { _ = plan.forward(x) }
        let train = Double(batchSize) * rate(of: trainStep, seconds: seconds)
        let cpuBefore = processCPUSeconds(), wallBefore = Date()
        let eval = Double(batchSize) * rate(of: evalStep, seconds: seconds / 2)
        let utilisation = (processCPUSeconds() - cpuBefore) / (Date().timeIntervalSince(wallBefore) * Double(Parallel.threads))
        var result = BenchmarkResult(model: model, input: input, batchSize: batchSize, threads: Parallel.threads,
                                     trainImagesPerSecond: train, evalImagesPerSecond: eval)
        let flops = 2 * Double(network.multiplyAddsPerImage())
        (result.trainGFLOPs, result.evalGFLOPs, result.evalCPUUtilisation) = (3 * flops * train / 1e9, flops * eval / 1e9, utilisation)
        return result
    }

    /// User + system CPU seconds of this process so far, all threads.
    static func processCPUSeconds() -> Double {
        var usage = rusage()
        getrusage(Int32(RUSAGE_SELF.rawValue), &usage)
        let seconds = { (t: timeval) in Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }

    /// The machine's single-precision GEMM rate in GFLOP/s: OpenBLAS on 1024 x 1024 matrices with
    /// `threads` threads, the best of a few calls; the roof the engine's rates are compared to.
    public static func sgemmPeak(threads: Int) -> Double {
        let n = 1024
        let (a, b, c) = (Tensor(shape: [n, n]), Tensor(shape: [n, n]), Tensor(shape: [n, n]))
        a.fill(0.5); b.fill(0.25)
        var best = 0.0
        for call in 0..<6 {   // the first call warms up and is not counted
            let start = Date()
            BLASKernels.withThreads(threads) {
                gemm(m: n, n: n, k: n, a: a.data, lda: n, b: b.data, ldb: n, c: c.data, ldc: n)
            }
            if call > 0 { best = max(best, 2 * Double(n * n * n) / Date().timeIntervalSince(start) / 1e9) }
        }
        return best
    }

    /// A freshly built network and a batch of random inputs and labels: what every measurement runs.
    static func workload(model: String, input: [Int], batchSize: Int) throws -> (Network, Tensor, [Int32]) {
        let network = Network.build(try ModelSpec(name: model, inputShape: input, classes: 10), seed: 1)
        var rng = RandomSource(seed: 2)
        let x = Tensor(shape: [batchSize] + input)
        for i in 0..<x.count { x.data[i] = rng.nextNormal() }
        return (network, x, (0..<batchSize).map { Int32($0 % 10) })
    }

    /// One SGD step (momentum 0.9, weight decay 5e-4) of `network` on the batch: what the
    /// training figures time.
    static func sgdStep(_ network: Network, _ x: Tensor, _ labels: [Int32]) -> () -> Void {
        let optimizer = SGD(parameters: network.parameters.map { $0.1 }, momentum: 0.9, weightDecay: 5e-4)
        return {
            optimizer.zeroGrad()
            let result = Loss.softmaxCrossEntropy(network.forward(x, training: true), labels: labels)
            network.backward(result.gradient)
            optimizer.step(learningRate: 0.01)
        }
    }

    /// One evaluation batch of built-in `model` (seed-1 weights) on the images `x` (N, C, H, W):
    /// what an imported graph of the same network is compared with (`sweep bench --onnx --against`).
    public static func evaluation(model: String, on x: Tensor, classes: Int) throws -> () -> Void {
        let network = Network.build(try ModelSpec(name: model, inputShape: Array(x.shape.dropFirst()), classes: classes), seed: 1)
        let plan = InferencePlan(network)
        return { _ = plan.forward(x) }
    }

    /// Steps per second of `body`, after two warm-up calls, over at least `seconds` and 3 calls.
    static func rate(of body: () -> Void, seconds: Double) -> Double {
        body(); body()
        let start = Date()
        var calls = 0
        while calls < 3 || Date().timeIntervalSince(start) < seconds {
            body()
            calls += 1
        }
        return Double(calls) / Date().timeIntervalSince(start)
    }

    /// One convolution shape timed on oneDNN's direct kernel and on the Winograd one, in
    /// evaluation (fused with a ReLU) and in training (forward, backward-data and
    /// backward-weights on blocked activations).
    public struct ConvolutionTiming: Sendable {
        public let channels, outChannels, size: Int
        public let directSeconds: Double
        /// Nil when the Winograd kernels do not run this shape here.
        public let winogradSeconds: Double?
        public let trainingDirectSeconds: Double
        public let trainingWinogradSeconds: Double?
    }

    /// Each 3x3 stride-1 shape of ResNet-20's evaluation (28x28 and 32x32 inputs), fused with a
    /// batch norm and a ReLU as evaluation runs it: the best of `rounds` alternating rounds per
    /// kernel, so that a noisy machine slows both alike.
    public static func convolutions(batchSize: Int = 128, rounds: Int = 5) -> [ConvolutionTiming] {
        let shapes = [(16, 16, 28), (32, 32, 14), (64, 64, 7), (16, 16, 32), (32, 32, 16), (64, 64, 8)]
        let enabled = Winograd.enabled
        defer { Winograd.enabled = enabled }
        return shapes.map { c, k, size in
            var rng = RandomSource(seed: 3)
            let conv = Conv2d(c, k, kernelSize: 3, padding: 1, rng: &rng)
            let x = Tensor(shape: [batchSize, c, size, size])
            for i in 0..<x.count { x.data[i] = rng.nextNormal() }
            let input = BlockedLayout.holds(channels: c) ? LayoutTensor.blocked(from: x) : LayoutTensor(plain: x)
            var best: [Bool: Double] = [:], bestTraining: [Bool: Double] = [:]
            let kernels = Winograd.applies(inChannels: c, outChannels: k, kernelSize: 3, stride: 1, padding: 1) ? [false, true] : [false]
            conv.emitsBlocked = true
            let trainingInput = BlockedLayout.holds(channels: c) ? x.inLayout(blocked: true) : x
            let step = {
                let y = conv.forward(trainingInput, training: true)
                _ = conv.backward(y)
            }
            for _ in 0..<rounds {
                for winograd in kernels {
                    Winograd.enabled = winograd
                    guard let fused = FusedConvolution(conv, batchNorm: nil, relu: true) else { continue }
                    _ = fused.forward(input)
                    var start = Date()
                    for _ in 0..<4 { _ = fused.forward(input) }
                    best[winograd] = min(best[winograd] ?? .infinity, Date().timeIntervalSince(start) / 4)
                    step()
                    start = Date()
                    for _ in 0..<2 { step() }
                    bestTraining[winograd] = min(bestTraining[winograd] ?? .infinity, Date().timeIntervalSince(start) / 2)
                }
            }
            return ConvolutionTiming(channels: c, outChannels: k, size: size, directSeconds: best[false] ?? 0, winogradSeconds: best[true],
                                     trainingDirectSeconds: bestTraining[false] ?? 0, trainingWinogradSeconds: bestTraining[true])
        }
    }

    /// Seconds per SGD step of `model` with training's 3x3 convolutions on oneDNN's direct
    /// kernel and on the Winograd kernels where `Conv2d` takes them: the best of `rounds`
    /// alternating rounds of 3 steps each, in one process (whole-run figures on a noisy machine
    /// differ more between runs than the two kernels do).
    public static func trainingKernels(model: String, input: [Int], batchSize: Int = 128,
                                       rounds: Int = 5) throws -> (direct: Double, winograd: Double) {
        let (network, x, labels) = try workload(model: model, input: input, batchSize: batchSize)
        let step = sgdStep(network, x, labels)
        let enabled = Winograd.enabled
        defer { Winograd.enabled = enabled }
        var best: [Bool: Double] = [:]
        for _ in 0..<rounds {
            for winograd in [false, true] {
                Winograd.enabled = winograd
                best[winograd] = min(best[winograd] ?? .infinity, 1 / rate(of: step, seconds: 0))
            }
        }
        return (best[false]!, best[true]!)
    }

    /// Forward and backward time of each top-level layer of a training step.
    public static func profile(model: String, input: [Int], batchSize: Int = 128, steps: Int = 5) throws -> [LayerProfile] {
        let (network, x, labels) = try workload(model: model, input: input, batchSize: batchSize)
        guard let root = network.root as? Sequential else { return [] }
        var forward = [Double](repeating: 0, count: root.children.count)
        var backward = forward
        for step in 0..<(steps + 1) {
            var h = x
            for (i, (_, layer)) in root.children.enumerated() {
                let t = Date()
                h = layer.forward(h, training: true)
                if step > 0 { forward[i] += Date().timeIntervalSince(t) }
            }
            var g = Loss.softmaxCrossEntropy(h, labels: labels).gradient
            for (i, (_, layer)) in root.children.enumerated().reversed() {
                let t = Date()
                g = layer.backward(g)
                if step > 0 { backward[i] += Date().timeIntervalSince(t) }
            }
        }
        return root.children.enumerated().map { i, child in
            LayerProfile(layer: child.0, forwardSeconds: forward[i] / Double(steps), backwardSeconds: backward[i] / Double(steps))
        }
    }

    /// Forward + backward time per layer type (Conv2d, BatchNorm, ReLU, ...), each leaf layer
    /// timed alone on the input it sees in the network: where a training step's time goes.
    public static func kernelProfile(model: String, input: [Int], batchSize: Int = 128, steps: Int = 5) throws -> [(String, Double)] {
        let (network, x, _) = try workload(model: model, input: input, batchSize: batchSize)
        // Record each leaf's input by running the network once with probes around the leaves.
        var inputs: [(String, Layer, Tensor)] = []
        func walk(_ layer: Layer, _ name: String, _ h: Tensor) -> Tensor {
            if let seq = layer as? Sequential {
                return seq.children.reduce(h) { walk($1.1, $1.0, $0) }
            }
            if let block = layer as? BasicBlock {
                // As the block runs them: each batch norm with its ReLU (and the second with the
                // residual sum) in one pass.
                var t = walk(block.conv1, "conv", h)
                t = walk(JoinProbe(block.bn1, adding: nil), "bn", t)
                t = walk(block.conv2, "conv", t)
                _ = walk(JoinProbe(block.bn2, adding: t), "bn", t)
                return block.forward(h, training: true)
            }
            inputs.append((String(describing: type(of: layer)), layer, h))
            return layer.forward(h, training: true)
        }
        _ = walk(network.root, "", x)
        var totals: [String: Double] = [:]
        for (kind, layer, h) in inputs {
            let y = layer.forward(h, training: true)
            _ = layer.backward(y)
            let start = Date()
            for _ in 0..<steps {
                let out = layer.forward(h, training: true)
                _ = layer.backward(out)
            }
            totals[kind == "JoinProbe" ? "BatchNorm (+ ReLU, + add)" : kind,
                   default: 0] += Date().timeIntervalSince(start) / Double(steps)
        }
        return totals.sorted { $0.value > $1.value }.map { ($0.key, $0.value) }
    }
}

/// A block's batch norm as the block runs it in the kernel profile: with the ReLU after it and,
/// for the second, the residual sum (here a tensor of the same shape) before the ReLU.
private final class JoinProbe: Layer {
    let bn: BatchNorm
    let skip: Tensor?

    init(_ bn: BatchNorm, adding skip: Tensor?) { (self.bn, self.skip) = (bn, skip) }

    func forward(_ x: Tensor, training: Bool) -> Tensor { bn.forward(x, training: training, adding: skip, relu: true) }
    func backward(_ dy: Tensor) -> Tensor { bn.backwardJoined(dy).dx }
}

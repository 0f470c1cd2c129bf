import ArgumentParser
import Foundation
import ONNX
import Procedures
import TensorEngine

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Training and inference images/s on the studies' standard shapes (batch 128).")

    @Flag(help: "Print JSON instead of a table.") var json = false
    @Option(help: "Seconds to time each measurement.") var seconds: Double = 5
    @Option(help: "Mini-batch size.") var batchSize = 128
    @Option(help: "Only this model's cases (\(Benchmark.models.joined(separator: ", "))).")
    var model: String?
    @Flag(help: "Also print where a ResNet-20 28x28 training step spends its time, per top-level layer (with --onnx: where the graph's evaluation spends it, per node).")
    var profile = false
    @Flag(help: "Also time each 3x3 stride-1 evaluation convolution on oneDNN's direct kernel and on the Winograd one.")
    var convolutions = false
    @Option(help: "Time the evaluation of this ONNX graph instead (images/s at --batch-size, on random images of its input shape).")
    var onnx: String?
    @Option(help: "With --onnx: also evaluate this built-in model on the same images, a batch of each in turn, and print both rates and their ratio.")
    var against: String?
    @OptionGroup var engine: EngineOptions

    func run() throws {
        engine.apply()
        if let onnx { return try benchGraph(onnx) }
        let cases = Benchmark.cases.filter { model == nil || $0.model == model }
        guard !cases.isEmpty else {
            throw FlagError("--model \(model ?? ""): no such benchmark case (use one of \(Benchmark.models.joined(separator: ", ")))")
        }
        var results: [BenchmarkResult] = []
        let peak = Benchmark.sgemmPeak(threads: Parallel.threads)
        for c in cases {
            var r = try Benchmark.run(model: c.model, input: c.input, batchSize: batchSize, seconds: seconds)
            r.sgemmPeakGFLOPs = peak
            results.append(r)
            if !json {
                let shape = r.input.map(String.init).joined(separator: "x")
                emit("\(r.model.padding(toLength: 14, withPad: " ", startingAt: 0)) \(shape.padding(toLength: 8, withPad: " ", startingAt: 0))"
                      + String(format: " train %8.1f img/s %6.1f GFLOP/s   eval %8.1f img/s %6.1f GFLOP/s %4.0f%% CPU   (%d threads)",
                               r.trainImagesPerSecond, r.trainGFLOPs, r.evalImagesPerSecond, r.evalGFLOPs,
                               100 * r.evalCPUUtilisation, r.threads))
            }
        }
        if !json {
            emit("OpenBLAS kernels: \(BLASKernels.core); its sgemm peak (1024^3, \(Parallel.threads) threads): "
                  + String(format: "%.1f GFLOP/s", peak))
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(results), as: UTF8.self))
        }
        if convolutions {
            report("3x3 stride-1 convolutions, batch \(batchSize), best of 5 alternating rounds, ms: evaluation (+ ReLU) | "
                   + "training step (forward, backward-data, backward-weights)")
            let cell = { (direct: Double, winograd: Double?) in
                String(format: "direct %7.2f  ", direct * 1000)
                    + (winograd.map { String(format: "winograd %7.2f  (%.2fx)", $0 * 1000, direct / $0) } ?? "winograd    n/a        ")
            }
            for t in Benchmark.convolutions(batchSize: batchSize) {
                let name = "\(t.channels)->\(t.outChannels) \(t.size)x\(t.size)".padding(toLength: 16, withPad: " ", startingAt: 0)
                report("  \(name) " + cell(t.directSeconds, t.winogradSeconds) + " | " + cell(t.trainingDirectSeconds, t.trainingWinogradSeconds))
            }
            for (model, input) in Benchmark.cases where model == "resnet20" {
                let (direct, winograd) = try Benchmark.trainingKernels(model: model, input: input, batchSize: batchSize)
                report("  \(model) \(input.map(String.init).joined(separator: "x")) training step, ms: "
                       + String(format: "direct %.1f  with Winograd %.1f  (%.2fx)", direct * 1000, winograd * 1000, direct / winograd))
            }
        }
        if profile {
            let rows = try Benchmark.profile(model: "resnet20", input: [1, 28, 28], batchSize: batchSize)
            let total = rows.reduce(0) { $0 + $1.forwardSeconds + $1.backwardSeconds }
            let kernels = try Benchmark.kernelProfile(model: "resnet20", input: [1, 28, 28], batchSize: batchSize)
            let kernelTotal = kernels.reduce(0) { $0 + $1.1 }
            report("forward + backward time by layer type, each layer timed alone (resnet20 28x28, batch \(batchSize)), ms:")
            for (kind, seconds) in kernels {
                report("  " + kind.padding(toLength: 26, withPad: " ", startingAt: 0) + String(format: " %7.2f  (%4.1f%%)", seconds * 1000, 100 * seconds / kernelTotal))
            }
            report("per-layer time of one resnet20 28x28 training step (batch \(batchSize)), ms:")
            for r in rows {
                report("  " + r.layer.padding(toLength: 16, withPad: " ", startingAt: 0) + String(format: " fwd %7.2f  bwd %7.2f  (%4.1f%%)", r.forwardSeconds * 1000,
                              r.backwardSeconds * 1000, 100 * (r.forwardSeconds + r.backwardSeconds) / total))
            }
        }
    }

    /// The slowest nodes of a graph's timed runs, then the time per output map size and per operator.
    private func printNodeTimes(_ times: NodeTimes, runs: Int) {
        let nodes = times.nodes
        let total = max(nodes.reduce(0) { $0 + $1.nanoseconds }, 1)
        func share(_ ns: UInt64) -> String {
            String(format: "%7.3f ms per batch %5.1f%%", Double(ns) / 1e6 / Double(max(runs, 1)), 100 * Double(ns) / Double(total))
        }
        emit("slowest nodes (of \(nodes.count), over \(runs) batches; time summed over threads; the output's layout):")
        for entry in nodes.sorted(by: { $0.nanoseconds > $1.nanoseconds }).prefix(20) {
            let shape = entry.shape.map { "\($0)" } ?? "(done by another node)"
            emit("  \(String(entry.node).padding(toLength: 5, withPad: " ", startingAt: 0)) \(entry.op.padding(toLength: 20, withPad: " ", startingAt: 0)) "
                 + "\(share(entry.nanoseconds))  \(entry.blocked ? "blocked" : "plain  ") \(shape)")
        }
        emit("per output map size (height x width):")
        let bySize = Dictionary(grouping: nodes.filter { $0.shape?.count == 4 }) { "\($0.shape![2])x\($0.shape![3])" }
            .mapValues { $0.reduce(0) { $0 + $1.nanoseconds } }
        for (size, ns) in bySize.sorted(by: { $0.value > $1.value }) {
            emit("  \(size.padding(toLength: 26, withPad: " ", startingAt: 0)) \(share(ns))")
        }
        emit("per operator:")
        let byOp = Dictionary(grouping: nodes, by: \.op).mapValues { $0.reduce(0) { $0 + $1.nanoseconds } }
        for (op, ns) in byOp.sorted(by: { $0.value > $1.value }) {
            emit("  \(op.padding(toLength: 26, withPad: " ", startingAt: 0)) \(share(ns))")
        }
    }

    /// Images/s of an imported graph's evaluation: one warm-up batch, then batches until
    /// `seconds` have passed.
    private func benchGraph(_ path: String) throws {
        let program = try ONNXProgram(contentsOf: URL(fileURLWithPath: path))
        guard let name = program.inputNames.first else { throw FlagError("\(path): the graph has no input") }
        var shape = [batchSize, 1, 28, 28]
        if let declared = program.inputShape, declared.count == 4, declared.dropFirst().allSatisfy({ $0 != nil }) {
            shape = [batchSize] + declared.dropFirst().map { $0! }
        }
        var rng = RandomSource(seed: 1)
        let x = ONNXValue.floats(shape, (0..<shape.reduce(1, *)).map { _ in Float(rng.nextUniform()) })
        _ = try program.run([name: x])
        if profile { NodeTimes.shared = NodeTimes() }
        defer { NodeTimes.shared = nil }
        // With a built-in model to compare with, batches alternate: both rates then come from the
        // same seconds of a machine whose speed drifts (by 10% from run to run on shared hosts).
        let builtIn = try against.map { model -> () -> Void in
            let classes = try program.run([name: x]).values.first?.shape.last ?? 10
            let step = try Benchmark.evaluation(model: model, on: Tensor(shape: shape, values: x.floatValues), classes: classes)
            step()
            return step
        }
        var images = 0
        var (graphSeconds, builtInSeconds) = (0.0, 0.0)
        let start = Date()
        repeat {
            let began = Date()
            _ = try program.run([name: x])
            graphSeconds += Date().timeIntervalSince(began)
            images += batchSize
            if let builtIn {
                let began = Date()
                builtIn()
                builtInSeconds += Date().timeIntervalSince(began)
            }
        } while Date().timeIntervalSince(start) < seconds
        let rate = Double(images) / graphSeconds
        if let times = NodeTimes.shared { printNodeTimes(times, runs: images / batchSize) }
        if let against {
            let builtInRate = Double(images) / builtInSeconds
            if json {
                struct Result: Encodable { let file, model: String; let images_per_second, built_in_images_per_second, ratio: Double; let threads, batch_size: Int }
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
                print(String(decoding: try encoder.encode(Result(file: path, model: against, images_per_second: rate, built_in_images_per_second: builtInRate,
                                                                 ratio: rate / builtInRate, threads: Parallel.threads, batch_size: batchSize)), as: UTF8.self))
            } else {
                emit("\(path): " + String(format: "%.1f img/s imported, %.1f img/s built-in ", rate, builtInRate) + against
                     + String(format: " (%.3fx), %d threads, batch %d, batches alternating", rate / builtInRate, Parallel.threads, batchSize))
            }
            return
        }
        if json {
            struct Result: Encodable { let file: String; let images_per_second: Double; let threads: Int; let batch_size: Int }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(Result(file: path, images_per_second: rate, threads: Parallel.threads, batch_size: batchSize)), as: UTF8.self))
        } else {
            emit(String(format: "%@: %.1f images/s (batch %d, %d threads)", path, rate, batchSize, Parallel.threads))
        }
    }
}

import ArgumentParser
import Cluster
import Datasets
import Foundation
import Models
import Studies
import SweepCore
import TensorEngine

/// Options naming a dataset and how much of it to use.
struct DatasetOptions: ParsableArguments {
    @Option(help: "Dataset: \(DatasetCatalog.names.joined(separator: ", ")).")
    var dataset = "fashion-mnist"

    @Option(help: "Directory holding the dataset's files (IDX or CIFAR-10 binary); default: the Debian package's.")
    var dataDir: String?

    @Option(help: "Use only the first N training examples.")
    var trainLimit: Int?

    @Option(help: "Use only the first N test examples.")
    var testLimit: Int?

    func check() throws {
        for (value, flag) in [(trainLimit, "--train-limit"), (testLimit, "--test-limit")] where (value ?? 1) < 1 {
            throw FlagError("\(flag) must be at least 1")
        }
    }

    func load() throws -> DatasetSplits {
        try DatasetCatalog.load(dataset, dataDirectory: dataDir, trainLimit: trainLimit, testLimit: testLimit)
    }
}

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train", abstract: "Train a model on a dataset and save a safetensors checkpoint.")

    @Option(help: "Model: resnet20/32/56, plain20/32/56, resnet20-b, fcn-1024x3-bn, student-c2-w1, ...")
    var model = "resnet20"

    @OptionGroup var data: DatasetOptions

    @Option(help: "Training epochs.") var epochs = 15
    @Option(help: "Mini-batch size.") var batchSize = 128
    @Option(help: "Base learning rate.") var lr: Float = 0.1
    @Option(help: "SGD momentum.") var momentum: Float = 0.9
    @Option(help: "L2 weight decay.") var weightDecay: Float = 5e-4
    @Flag(help: "Use Nesterov momentum.") var nesterov = false
    @Option(help: "Learning-rate schedule: cosine, constant, step:EVERY:GAMMA, multistep:E1,E2:GAMMA.")
    var schedule = "cosine"
    @Option(help: "Seed for weights and batch order.") var seed: UInt64 = 0
    @Option(name: .shortAndLong, help: "Checkpoint to write (safetensors).")
    var output = "model.safetensors"

    @OptionGroup var engine: EngineOptions

    /// The flags as a sweep file's training section, checked by the same rules.
    var section: TrainingSection {
        var t = TrainingSection()
        t.epochs = epochs
        t.batchSize = batchSize
        t.learningRate = lr
        t.momentum = momentum
        t.weightDecay = weightDecay
        t.nesterov = nesterov
        t.schedule = schedule
        return t
    }

    func validate() throws {
        if let problem = section.problems.first {
            let flag = problem.field == "learning_rate" ? "lr" : problem.field.replacingOccurrences(of: "_", with: "-")
            throw FlagError("--\(flag) \(problem.requirement)")
        }
        try data.check()
    }

    /// Under `mpirun -n N`, the N ranks train the network together as one gang (data-parallel,
    /// bit-identical to one process); rank 0 reports and writes the checkpoint.
    func run() throws {
        guard MPIWorld.isLaunched else { return try train(gang: nil, threads: engine.threads ?? Parallel.availableCores) }
        let world = try MPIWorld()
        defer { world.finalize() }
        do {
            try train(gang: world.size > 1 ? try world.gangOfAll() : nil, threads: engine.threads ?? world.threadsPerRank)
        } catch {
            // One rank alone cannot go on: the others would wait for it in their next exchange.
            FileHandle.standardError.write(Data("Error: rank \(world.rank): \(error)\n".utf8))
            world.abort(1)
        }
    }

    private func train(gang: GangLink?, threads: Int) throws {
        let leads = (gang?.rank ?? 0) == 0
        if leads { try OutputPath.checkWritableFile(output) }
        Parallel.configure(threads: threads)
        let splits = try data.load()
        let spec = try ModelSpec(name: model, inputShape: splits.train.shape, classes: splits.train.classes)
        let network = Network.build(spec, seed: seed)
        let config = TrainingConfig(epochs: epochs, batchSize: batchSize, learningRate: lr, momentum: momentum,
                                    weightDecay: weightDecay, nesterov: nesterov,
                                    schedule: LearningRateSchedule(text: schedule)!, seed: seed)
        let ranks = gang.map { " on a gang of \($0.size) ranks," } ?? ""
        if leads {
            report("training \(model) (\(network.parameterCount) parameters) on \(data.dataset): \(splits.train.count) train / \(splits.test.count) test images,\(ranks) \(Parallel.threads) thread\(Parallel.threads == 1 ? "" : "s")\(gang == nil ? "" : " each")")
        }
        let start = Date()
        try Training.train(network, on: splits.train, config: config, gang: gang, progress: { r in
            guard leads else { return }
            report(String(format: "epoch %d/%d  loss %.4f  acc %.4f  lr %.4f  %.0f img/s  %@  ETA %@",
                          r.epoch + 1, r.epochs, r.loss, r.accuracy, r.learningRate, r.imagesPerSecond,
                          formatDuration(r.seconds), formatDuration(r.remainingSeconds)))
        })
        let trainSeconds = Date().timeIntervalSince(start)
        let result = Evaluation.run(network, on: splits.test, gang: gang)
        guard leads else { return }
        try Checkpoint.save(network, to: URL(fileURLWithPath: output), metadata: [
            "layersweep.dataset": data.dataset,
            "layersweep.normalisation.mean": splits.normalisation.mean.map { "\($0)" }.joined(separator: ","),
            "layersweep.normalisation.std": splits.normalisation.std.map { "\($0)" }.joined(separator: ","),
            "layersweep.seed": String(seed),
        ])
        print(String(format: "test accuracy %.4f  test loss %.4f  (%d images)  trained in %@  -> %@",
                     result.accuracy, result.loss, result.count, formatDuration(trainSeconds), output))
    }
}

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval", abstract: "Evaluate a checkpoint's test accuracy and loss.")

    @Argument(help: "A safetensors checkpoint written by `sweep train`.")
    var checkpoint: String

    @OptionGroup var data: DatasetOptions
    @Option(help: "Evaluation batch size.") var batchSize = 256
    @OptionGroup var engine: EngineOptions

    func validate() throws {
        guard (1...65536).contains(batchSize) else { throw FlagError("--batch-size must be between 1 and 65536") }
        try data.check()
    }

    func run() throws {
        engine.apply()
        let (network, _) = try Checkpoint.load(URL(fileURLWithPath: checkpoint))
        let splits = try data.load()
        guard splits.test.shape == network.spec.inputShape else {
            throw FlagError("\(checkpoint) expects inputs \(network.spec.inputShape); \(data.dataset) has \(splits.test.shape)")
        }
        let result = Evaluation.run(network, on: splits.test, batchSize: batchSize)
        print(String(format: "test accuracy %.4f  test loss %.4f  (%d images)", result.accuracy, result.loss, result.count))
    }
}

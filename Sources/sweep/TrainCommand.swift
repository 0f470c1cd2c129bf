import ArgumentParser
import Cluster
import Datasets
import Foundation
import Models
import ONNX
import Procedures
import SweepCore
import SweepFile
import SweepRecords
import TensorEngine

/// Options naming a dataset and how much of it to use.
struct DatasetOptions: ParsableArguments {
    @Option(help: "Dataset: \(DatasetCatalog.names.joined(separator: ", ")), or a path: a folder holding train/ and val/ (or test/) image folders, an .npz with x_train/x_test, an IDX or CIFAR-10/100 directory.")
    var dataset = "fashion-mnist"

    @Option(help: "Directory holding the dataset's files (IDX or CIFAR-10 binary); default: the Debian package's.")
    var dataDir: String?

    @Option(help: "Use only the first N training examples.")
    var trainLimit: Int?

    @Option(help: "Use only the first N test examples.")
    var testLimit: Int?

    @OptionGroup var decoding: DecodingOptions

    func check() throws {
        for (value, flag) in [(trainLimit, "--train-limit"), (testLimit, "--test-limit")] where (value ?? 1) < 1 {
            throw FlagError("\(flag) must be at least 1")
        }
        try decoding.check()
        if !isPath, decoding.isGiven {
            throw FlagError("--resize, --center-crop and --channels apply to a dataset given by its path")
        }
    }

    /// Whether `--dataset` names files rather than a built-in dataset.
    var isPath: Bool { !DatasetCatalog.names.contains(dataset) && FileManager.default.fileExists(atPath: dataset) }

    func load(normalisation: Normalisation? = nil) throws -> DatasetSplits {
        guard isPath else {
            return try DatasetCatalog.load(dataset, dataDirectory: dataDir, trainLimit: trainLimit, testLimit: testLimit, normalisation: normalisation)
        }
        let inventory = try DatasetInventory.inspect(dataset, channels: decoding.channels, preprocessing: decoding.preprocessing)
        guard inventory.splits.count == 2 else {
            throw FlagError("\(dataset): one split only; give a folder holding train/ and val/ (or test/), or an .npz with x_train and x_test")
        }
        let (train, test) = (inventory.splits[0].data, inventory.splits[1].data)
        let classes = max(train.classes, test.classes)
        return try DatasetCatalog.load("data", trainLimit: trainLimit, testLimit: testLimit, normalisation: normalisation,
                                       raw: (train.renamed("data", classes: classes), test.renamed("data", classes: classes)))
    }
}

/// How files given by path are decoded: torchvision's Resize(N) and CenterCrop(N), and the
/// channels of an image folder (`sweep datasets`, and `--dataset PATH` of train and eval).
struct DecodingOptions: ParsableArguments {
    @Option(help: "Resize the shorter side to N first (torchvision's Resize(N)).") var resize: Int?
    @Option(help: "Then crop the centre N x N (torchvision's CenterCrop(N)).") var centerCrop: Int?
    @Option(help: "Decode an image folder as 1 (grey) or 3 (RGB) channels; default: 3 if any image is colour.") var channels: Int?

    var preprocessing: Preprocessing { Preprocessing(resize: resize.map { [$0] }, centerCrop: centerCrop.map { [$0] }) }
    var isGiven: Bool { resize != nil || centerCrop != nil || channels != nil }

    func check() throws {
        if let problem = preprocessing.problems.first {
            throw FlagError("--\(problem.field.replacingOccurrences(of: "_", with: "-")) must be between 1 and \(ImageCodec.maxSide)")
        }
        if let channels, channels != 1 && channels != 3 { throw FlagError("--channels must be 1 or 3") }
    }
}

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train", abstract: "Train a model on a dataset and save a safetensors checkpoint.")

    @Option(help: "Model: resnet20/32/56, plain20/32/56, resnet20-b, fcn-1024x3-bn, student-c2-w1, ...")
    var model = "resnet20"

    @OptionGroup var data: DatasetOptions

    // Defaults and names as in a sweep file's `training:` section (`TrainingDefaults`).
    @Option(help: "Training epochs.") var epochs = TrainingDefaults.epochs
    @Option(help: "Mini-batch size.") var batchSize = TrainingDefaults.batchSize
    @Option(name: [.customLong("learning-rate"), .customLong("lr")], help: "Base learning rate (the sweep field learning_rate; --lr for short).")
    var lr = TrainingDefaults.learningRate
    @Option(help: "SGD momentum.") var momentum = TrainingDefaults.momentum
    @Option(help: "L2 weight decay.") var weightDecay = TrainingDefaults.weightDecay
    @Flag(help: "Use Nesterov momentum.") var nesterov = TrainingDefaults.nesterov
    @Option(help: "Learning-rate schedule: cosine, constant, step:EVERY:GAMMA, multistep:E1,E2:GAMMA.")
    var schedule = TrainingDefaults.schedule
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
            let flag = problem.field.replacingOccurrences(of: "_", with: "-")
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
            if leads { report(EpochReport.line(r)) }
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
        emit(String(format: "test accuracy %.4f  test loss %.4f  (%d images)  trained in %@  -> %@",
                     result.accuracy, result.loss, result.count, formatDuration(trainSeconds), output))
    }
}

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval", abstract: "Evaluate a network's test accuracy and loss: an ONNX file, our checkpoint, or a PyTorch state_dict saved as safetensors.")

    @Argument(help: "An ONNX file (torch.onnx.export), or a safetensors checkpoint: written by `sweep train`, or a PyTorch state_dict (safetensors.torch.save_file).")
    var checkpoint: String

    @OptionGroup var data: DatasetOptions
    @Option(help: "Evaluation batch size.") var batchSize = 256
    @Option(help: "The architecture of a PyTorch checkpoint (default: read off its tensors; plain nets and students must be named).")
    var model: String?
    @Option(help: "Per-channel input mean the network expects, pixels / 255, comma-separated (default: the training split's).")
    var mean: String?
    @Option(help: "Per-channel input standard deviation, as --mean.")
    var std: String?
    @OptionGroup var engine: EngineOptions

    func validate() throws {
        guard (1...65536).contains(batchSize) else { throw FlagError("--batch-size must be between 1 and 65536") }
        guard (mean == nil) == (std == nil) else { throw FlagError("--mean and --std go together") }
        _ = try normalisation()
        try data.check()
    }

    /// --mean/--std as a normalisation, when given.
    func normalisation() throws -> Normalisation? {
        guard let mean, let std else { return nil }
        func values(_ text: String, _ flag: String) throws -> [Float] {
            let parts = text.split(separator: ",").map { Float($0.trimmingCharacters(in: .whitespaces)) }
            guard !parts.isEmpty, parts.allSatisfy({ $0?.isFinite == true }) else { throw FlagError("\(flag) is a comma-separated list of numbers, e.g. 0.286") }
            return parts.map { $0! }
        }
        let (m, s) = (try values(mean, "--mean"), try values(std, "--std"))
        guard m.count == s.count, s.allSatisfy({ $0 > 0 }) else { throw FlagError("--mean and --std need one value per channel each, std > 0") }
        return Normalisation(mean: m, std: s)
    }

    func run() throws {
        engine.apply()
        let splits = try data.load(normalisation: try normalisation())
        if checkpoint.lowercased().hasSuffix(".onnx") {
            let program = try ONNXProgram(contentsOf: URL(fileURLWithPath: checkpoint))
            if let mismatch = GraphEvaluation.mismatch(program, splits.test) { throw FlagError("\(checkpoint): \(mismatch)") }
            let result: Evaluation
            do { result = try GraphEvaluation.run(program, on: splits.test, batchSize: batchSize) } catch let error as ONNXError {
                throw FlagError("\(checkpoint): \(error)")
            }
            emit(String(format: "%@: test accuracy %.4f  test loss %.4f  (%d images, %d units)", checkpoint, result.accuracy, result.loss, result.count,
                        program.units.count))
            return
        }
        let file = try SafeTensorsFile.read(URL(fileURLWithPath: checkpoint))
        let network = file.metadata["layersweep.model"] != nil && model == nil
            ? try Checkpoint.network(from: file, path: checkpoint)
            : try TorchImport.network(from: file, path: checkpoint, inputShape: splits.test.shape, model: model)
        if let mismatch = Evaluation.mismatch(network, splits.test) { throw FlagError("\(checkpoint): \(mismatch)") }
        let result = Evaluation.run(network, on: splits.test, batchSize: batchSize)
        emit(String(format: "%@: test accuracy %.4f  test loss %.4f  (%d images)", network.spec.name, result.accuracy, result.loss, result.count))
    }
}

import Datasets
import Foundation
import Models
import Studies
import TensorEngine

/// Runs tasks on a worker: loads datasets once, keeps received checkpoints by content hash, and
/// turns every task into an outcome (errors and divergence become statuses, never crashes).
public final class TaskExecutor {
    public let spec: SweepSpec
    private var datasets: [String: DatasetSplits] = [:]
    private var checkpoints: [String: SafeTensorsFile] = [:]
    /// Mask evaluations of the most recent network share its unmasked layers' activations.
    private var evaluator: (key: String, PrefixEvaluator)?

    public init(spec: SweepSpec) { self.spec = spec }

    /// Hashes of the checkpoints this worker holds.
    public var cachedCheckpoints: Set<String> { Set(checkpoints.keys) }

    /// Keeps a checkpoint received from the coordinator, after checking its hash.
    public func store(checkpoint data: Data, hash: String) throws {
        guard contentHash(data) == hash else { throw RunError(path: hash, message: "checkpoint bytes do not match their hash") }
        checkpoints[hash] = try SafeTensorsFile.decode(data, file: "checkpoint \(hash)")
    }

    /// Runs `task`; `inputs` are the hashes of the checkpoints it needs (held already).
    /// Returns the outcome and, for training, the checkpoint bytes.
    public func run(_ task: PlannedTask, inputs: [String]) -> (TaskOutcome, Data?) {
        let start = Date()
        var checkpoint: Data?
        var outcome: TaskOutcome
        do {
            (outcome, checkpoint) = try execute(task, inputs: inputs)
        } catch let error as TrainingError {
            outcome = TaskOutcome(status: .diverged)
            outcome.error = error.description
        } catch {
            outcome = TaskOutcome(status: .failed)
            outcome.error = "\(error)"
        }
        outcome.seconds = Date().timeIntervalSince(start)
        return (outcome, checkpoint)
    }

    private func execute(_ task: PlannedTask, inputs: [String]) throws -> (TaskOutcome, Data?) {
        switch task.kind {
        case .noop:
            return (TaskOutcome(status: .ok), nil)
        case .train:
            let data = try splits(task.dataset)
            let network = Network.build(try ModelSpec(name: task.model, inputShape: data.train.shape, classes: data.train.classes),
                                        seed: task.seed)
            guard let config = spec.training.config(seed: task.seed) else { throw RunError(path: "training.schedule", message: "invalid") }
            let reports = try Training.train(network, on: data.train, config: config)
            let eval = Evaluation.run(network, on: data.test, batchSize: spec.evaluation.batchSize)
            guard eval.loss.isFinite else { throw TrainingError.diverged(epoch: config.epochs - 1, step: -1, loss: Float(eval.loss)) }
            let file = Checkpoint.file(of: network, metadata: [
                "layersweep.dataset": task.dataset, "layersweep.key": task.key, "layersweep.seed": String(task.seed),
            ])
            let bytes = try file.encoded()
            // The coordinator counts this worker as holding the checkpoint it produced.
            checkpoints[contentHash(bytes)] = file
            var outcome = TaskOutcome(status: .ok)
            outcome.testAccuracy = eval.accuracy
            outcome.testLoss = eval.loss
            outcome.trainLoss = reports.last.map { Double($0.loss) }
            outcome.trainAccuracy = reports.last?.accuracy
            outcome.checkpoint = contentHash(bytes)
            return (outcome, bytes)
        case .baseline, .mask:
            guard let hash = inputs.first, let file = checkpoints[hash] else {
                throw RunError(path: task.key, message: "the trained checkpoint did not arrive")
            }
            let data = try splits(task.dataset)
            let context = MaskContext(seed: task.seed, recalibrationData: data.train,
                                      recalibrationBatches: spec.evaluation.recalibrationBatches, batchSize: spec.training.batchSize)
            let evaluation: Evaluation
            var masked: Int?
            if spec.evaluation.prefixCacheMB > 0 {
                let key = "\(hash)/\(task.dataset)"
                if evaluator?.key != key {
                    evaluator = nil  // free the previous network's activations first
                    evaluator = (key, PrefixEvaluator(checkpoint: file, data: data.test, batchSize: spec.evaluation.batchSize,
                                                      budgetBytes: spec.evaluation.prefixCacheMB << 20))
                }
                (evaluation, masked) = try evaluator!.1.evaluate(mask: task.mask, unit: task.unit, context: context)
            } else {
                let network = try Checkpoint.network(from: file, path: "checkpoint \(hash)")
                if task.kind == .mask, let unitName = task.unit, let mask = task.mask {
                    guard let unit = network.unit(unitName) else { throw RunError(path: task.key, message: "no unit \(unitName)") }
                    masked = try Masking.apply(mask, to: unit, of: network, context: context)
                }
                evaluation = Evaluation.run(network, on: data.test, batchSize: spec.evaluation.batchSize)
            }
            var outcome = TaskOutcome(status: .ok)
            outcome.paramsMasked = masked
            outcome.testAccuracy = evaluation.accuracy
            outcome.testLoss = evaluation.loss
            return (outcome, nil)
        }
    }

    private func splits(_ name: String) throws -> DatasetSplits {
        if let cached = datasets[name] { return cached }
        guard let entry = spec.datasets.first(where: { $0.name == name }) else {
            throw RunError(path: name, message: "dataset not in the sweep")
        }
        let loaded = try DatasetCatalog.load(entry.name, dataDirectory: entry.dataDir, trainLimit: entry.trainLimit, testLimit: entry.testLimit)
        datasets[name] = loaded
        return loaded
    }
}

import Datasets
import Foundation
import Models
import ONNX
import Procedures
import SweepFile
import SweepPlan
import SweepRecords
import TensorEngine

/// Runs tasks on a worker: loads datasets once, keeps received artifacts (checkpoints, IMP
/// rounds, teacher logits) by content hash, and turns every task into an outcome (errors and
/// divergence become statuses, never crashes).
public final class TaskExecutor {
    public let spec: SweepSpec
    private var datasets: [String: DatasetSplits] = [:]
    private var artifacts: [String: SafeTensorsFile] = [:]
    /// Imported ONNX graphs received (their bundles), ready to run.
    private var graphs: [String: ONNXProgram] = [:]
    /// Mask evaluations of the most recent network share its unmasked layers' activations.
    var evaluator: (key: String, PrefixEvaluator)?
    /// The same for the most recent imported graph.
    var graphEvaluator: (key: String, evaluator: GraphPrefixEvaluator)?
    /// Which test images the most recent network got right unmasked (for the paired test).
    var baselineHits: (key: String, hits: [Bool])?
    /// The test evaluation of the network this worker last trained (as a gang member too), keyed
    /// like the prefix cache: the baseline task that follows is the same evaluation, not a second
    /// pass over the test set.
    var trainedEvaluation: (key: String, evaluation: Evaluation)?
    /// Where the running task's progress lines go (the coordinator's log), if anywhere.
    private var progressSink: ((String) -> Void)?
    /// The running task's epoch snapshot to resume from, its gang and where its snapshots go.
    private var running: (resume: Data?, gang: GangLink?, snapshot: ((Data) -> Void)?) = (nil, nil, nil)

    public init(spec: SweepSpec) { self.spec = spec }

    /// Asks rank 0 for the decoded bytes of the dataset with a fingerprint, when this node
    /// cannot read its files (set by the worker loop; nil: read them or fail).
    public var fetchDataset: ((String) throws -> Data)?

    /// Hashes of the artifacts this worker holds.
    public var cachedArtifacts: Set<String> { Set(artifacts.keys).union(graphs.keys) }

    /// Keeps an artifact received from the coordinator, after checking its hash: a checkpoint, or
    /// an imported graph's bundle.
    public func store(artifact data: Data, hash: String) throws {
        guard contentHash(data) == hash else { throw RunError(path: hash, message: "artifact bytes do not match their hash") }
        if ONNXBundle.isBundle(data) {
            graphs[hash] = try ONNXProgram(bundle: data)
        } else {
            artifacts[hash] = try SafeTensorsFile.decode(data, file: "artifact \(hash)")
        }
    }

    /// Forgets artifacts no remaining task needs (the coordinator says which).
    public func release(_ hashes: [String]) {
        for h in hashes { (artifacts[h], graphs[h]) = (nil, nil) }
    }

    /// Seconds of training after which a training snapshots at every epoch boundary
    /// (`LAYERSWEEP_SNAPSHOT_SECONDS`, default 60): short trainings are cheaper to redo.
    public var snapshotSeconds = ProcessInfo.processInfo.environment["LAYERSWEEP_SNAPSHOT_SECONDS"].flatMap(Double.init) ?? 60

    /// Runs `task`; `inputs` maps each dependency that produced an artifact to its hash (held
    /// already). A training resumes from `resume` (an epoch snapshot) and hands new snapshots to
    /// `snapshot`; a training's epoch lines go to `progress`. With `gang`, this worker is one member of the gang that trains the task
    /// together; only the first member evaluates the network and returns its checkpoint.
    /// Returns the outcome and the artifact bytes the task produced, if any.
    public func run(_ task: PlannedTask, inputs: [String: String], resume: Data? = nil, gang: GangLink? = nil,
                    snapshot: ((Data) -> Void)? = nil, progress: ((String) -> Void)? = nil) -> (TaskOutcome, Data?) {
        let start = Date()
        progressSink = progress
        running = (resume, gang, snapshot)
        defer { progressSink = nil; running = (nil, nil, nil) }
        var artifact: Data?
        var outcome: TaskOutcome
        do {
            guard task.kind != .load else {
                throw RunError(path: task.key, message: "networks trained elsewhere are read by the coordinator, not by a worker")
            }
            let files = TaskInputs(task: task, hashes: inputs, lookup: { [artifacts] in artifacts[$0] }, graphLookup: { [graphs] in graphs[$0] })
            (outcome, artifact) = try spec.studyType.execute(task, on: self, inputs: files)
        } catch let error as TrainingError {
            outcome = TaskOutcome(status: .diverged)
            outcome.error = error.description
        } catch let error as any StoppingRule {
            outcome = TaskOutcome(status: .stopped)
            outcome.error = error.description
        } catch {
            outcome = TaskOutcome(status: .failed)
            outcome.error = "\(error)"
        }
        outcome.seconds = Date().timeIntervalSince(start)
        return (outcome, artifact)
    }

    /// A plain training task (`section`'s hyperparameters): in a gang when the coordinator
    /// formed one, resumed from its epoch snapshot, snapshotting as it goes; the leader returns
    /// the checkpoint.
    public func trainTask(_ task: PlannedTask, section: TrainingSection) throws -> (TaskOutcome, Data?) {
        let (resume, gang, snapshot) = running
        let (data, network, hooks) = try GangStart.agree(gang, task: task.key) {
            let data = try splits(task.dataset, model: task.model)
            let network = try build(task.model, for: data, seed: task.seed)
            let training = EpochSnapshot.Training(model: task.model, config: try config(section, seed: task.seed),
                                                  data: task.dataset, images: data.train.count)
            return (data, network, try snapshotHooks(task, network: network, training: training, resume: resume, sink: snapshot))
        }
        let trained = try trainEvaluated(network, data: data, section: section, seed: task.seed, hooks: hooks, gang: gang)
        var outcome = trained.outcome
        let file = Checkpoint.file(of: network, metadata: metadata(task))
        let result: (TaskOutcome, Data?)
        let hash: String
        if let gang, gang.rank != 0 {
            // The leader's checkpoint has these bytes: the same network, the same metadata.
            (result, hash) = ((outcome, nil), contentHash(try file.encoded()))
        } else {
            result = try finish(&outcome, artifact: file)
            hash = result.0.checkpoint ?? ""
        }
        let key = "\(hash)/\(task.dataset)"
        (trainedEvaluation, baselineHits) = ((key, trained.evaluation), (key, trained.evaluation.hits))
        return result
    }

    // MARK: - Shared steps

    public func build(_ model: String, for data: DatasetSplits, seed: UInt64) throws -> Network {
        Network.build(try ModelSpec(name: model, inputShape: data.train.shape, classes: data.train.classes), seed: seed)
    }

    public func config(_ section: TrainingSection, seed: UInt64) throws -> TrainingConfig {
        guard let config = section.config(seed: seed) else { throw RunError(path: "training.schedule", message: "invalid") }
        return config
    }

    /// Trains `network` and evaluates it on the test split; a non-finite test loss counts as
    /// divergence. A gang trains and evaluates together.
    public func train(_ network: Network, data: DatasetSplits, section: TrainingSection, seed: UInt64,
                       loss: Training.LossFunction? = nil, hooks: TrainingHooks = TrainingHooks(), gang: GangLink? = nil) throws -> TaskOutcome {
        try trainEvaluated(network, data: data, section: section, seed: seed, loss: loss, hooks: hooks, gang: gang).outcome
    }

    /// `train`, with the test evaluation behind the outcome.
    private func trainEvaluated(_ network: Network, data: DatasetSplits, section: TrainingSection, seed: UInt64,
                                loss: Training.LossFunction? = nil, hooks: TrainingHooks = TrainingHooks(), gang: GangLink? = nil)
        throws -> (outcome: TaskOutcome, evaluation: Evaluation) {
        let config = try config(section, seed: seed)
        let sink = progressSink
        let reports = try Training.train(network, on: data.train, config: config, loss: loss, hooks: hooks, gang: gang) { r in
            sink?(EpochReport.line(r))
        }
        return try evaluated(network, data: data, reports: reports, gang: gang)
    }

    public func evaluate(_ network: Network, data: DatasetSplits, reports: [EpochReport], gang: GangLink? = nil) throws -> TaskOutcome {
        try evaluated(network, data: data, reports: reports, gang: gang).outcome
    }

    /// `evaluate`, with the evaluation behind the outcome.
    private func evaluated(_ network: Network, data: DatasetSplits, reports: [EpochReport], gang: GangLink?)
        throws -> (outcome: TaskOutcome, evaluation: Evaluation) {
        let eval = Evaluation.run(network, on: data.test, batchSize: spec.evaluation.batchSize, gang: gang)
        guard eval.loss.isFinite else { throw TrainingError.diverged(epoch: reports.count - 1, step: -1, loss: Float(eval.loss)) }
        var outcome = TaskOutcome(status: .ok)
        outcome.testAccuracy = eval.accuracy
        outcome.testLoss = eval.loss
        outcome.trainLoss = reports.last.map { Double($0.loss) }
        outcome.trainAccuracy = reports.last?.accuracy
        return (outcome, eval)
    }

    /// Resuming from `resume` and snapshotting to `sink` at epoch boundaries once the training
    /// has run `snapshotSeconds`. A snapshot of another training (or a tampered one) is
    /// discarded, with a line saying why, and the training starts from its beginning.
    func snapshotHooks(_ task: PlannedTask, network: Network, training: EpochSnapshot.Training, resume: Data?,
                       sink: ((Data) -> Void)?) throws -> TrainingHooks {
        var hooks = TrainingHooks()
        if let resume {
            do {
                let restored = try EpochSnapshot.restore(resume, into: network, key: task.key, training: training)
                hooks.startStep = restored.step
                hooks.prepare = restored.prepare
                progressSink?("resumed from its epoch snapshot after epoch \(restored.epochs) of \(training.epochs)")
            } catch let mismatch as EpochSnapshot.Mismatch {
                progressSink?("epoch snapshot discarded (\(mismatch)); training starts from the beginning")
            }
        }
        if let sink {
            var last = Date()
            let interval = snapshotSeconds
            hooks.afterEpoch = { epochs, step, optimizer in
                guard Date().timeIntervalSince(last) >= interval,
                      let bytes = try? EpochSnapshot.encode(network, optimizer: optimizer, epochs: epochs, step: step, key: task.key,
                                                            training: training) else { return }
                sink(bytes)
                last = Date()
            }
        }
        return hooks
    }

    public func metadata(_ task: PlannedTask) -> [String: String] {
        ["layersweep.dataset": task.dataset, "layersweep.key": task.key, "layersweep.seed": String(task.seed)]
    }

    /// Encodes the task's artifact and records its hash; this worker keeps it (the coordinator
    /// counts the producer as holding it).
    public func finish(_ outcome: inout TaskOutcome, artifact file: SafeTensorsFile) throws -> (TaskOutcome, Data?) {
        let bytes = try file.encoded()
        let hash = contentHash(bytes)
        artifacts[hash] = file
        outcome.checkpoint = hash
        return (outcome, bytes)
    }

    // MARK: - Evaluating a changed network

    /// The test accuracy of the network of `task`'s first dependency after `change` altered
    /// `unit` (nil: unchanged), from the prefix cache when the sweep allows one. A compared
    /// task also gets the paired test's counts against the unchanged network on the same images
    /// (the baseline task's own evaluation, or one made for the first variant on this worker).
    public func evaluateVariant(_ task: PlannedTask, inputs: TaskInputs, unit: String?, everyLayer: Bool,
                         change: (Network, MaskableUnit) throws -> Int) throws -> TaskOutcome {
        let dependency = task.dependencies[0]
        let (file, hash) = (try inputs.file(dependency), try inputs.hash(dependency))
        let data = try splits(task.dataset, model: task.model)
        let cacheKey = "\(hash)/\(task.dataset)"
        func run(_ unit: String?, _ everyLayer: Bool, _ change: (Network, MaskableUnit) throws -> Int) throws -> (Evaluation, Int?) {
            if unit == nil, !everyLayer, let known = trainedEvaluation, known.key == cacheKey { return (known.evaluation, nil) }
            guard spec.evaluation.prefixCacheMB > 0 else {
                let network = try Checkpoint.network(from: file, path: "checkpoint \(hash)")
                var masked: Int?
                if let unit {
                    guard let u = network.unit(unit) else { throw RunError(path: task.key, message: "no unit \(unit)") }
                    masked = try change(network, u)
                }
                return (Evaluation.run(network, on: data.test, batchSize: spec.evaluation.batchSize), masked)
            }
            if evaluator?.key != cacheKey {
                evaluator = nil  // free the previous network's activations first
                evaluator = (cacheKey, PrefixEvaluator(checkpoint: file, data: data.test, batchSize: spec.evaluation.batchSize,
                                                       budgetBytes: spec.evaluation.prefixCacheMB << 20))
            }
            return try evaluator!.1.evaluate(unit: unit, everyLayer: everyLayer, change: change)
        }
        let (evaluation, masked) = try run(unit, everyLayer, change)
        var outcome = try measured(task, evaluation, cacheKey: cacheKey) { try run(nil, false, { _, _ in 0 }).0 }
        outcome.paramsMasked = masked
        return outcome
    }

    /// The outcome of evaluating a (changed) network: its accuracy and loss and, for a compared
    /// task, the paired test's counts against the unchanged network on the same images (the
    /// baseline task's hits, or `unchanged()` run once per network and kept).
    private func measured(_ task: PlannedTask, _ evaluation: Evaluation, cacheKey: String, unchanged: () throws -> Evaluation) throws -> TaskOutcome {
        var outcome = TaskOutcome(status: .ok)
        if task.kind == .baseline { baselineHits = (cacheKey, evaluation.hits) }
        if task.kind.compared {
            if baselineHits?.key != cacheKey { baselineHits = (cacheKey, try unchanged().hits) }
            let base = baselineHits!.hits
            if base.count == evaluation.hits.count {
                let worse = zip(base, evaluation.hits).filter { $0.0 && !$0.1 }.count
                let better = zip(base, evaluation.hits).filter { !$0.0 && $0.1 }.count
                outcome.discordant = [worse, better, base.count]
            }
        }
        outcome.testAccuracy = evaluation.accuracy
        outcome.testLoss = evaluation.loss
        return outcome
    }

    /// The test accuracy of the imported graph of `task`'s first dependency after `change`
    /// (which returns the changed copy and the parameters it masked) altered `task.unit` (no
    /// change: the graph as it is), and the paired test's counts against the unchanged graph on
    /// the same images. A change to one unit runs from the unit's first node on the kept values
    /// of the unmasked run; one that alters `everyLayer` (BN re-estimation) runs whole.
    public func evaluateGraphVariant(_ task: PlannedTask, inputs: TaskInputs, everyLayer: Bool = false,
                              change: ((ONNXProgram, String) throws -> (ONNXProgram, Int))?) throws -> TaskOutcome {
        let dependency = task.dependencies[0]
        let (program, hash) = (try inputs.graph(dependency), try inputs.hash(dependency))
        let data = try splits(task.dataset, model: task.model)
        let (batchSize, cacheKey) = (spec.evaluation.batchSize, "\(hash)/\(task.dataset)")
        // With the prefix cache on, the unmasked run is made once per graph and its live values
        // start every masked run at the masked unit's first node.
        if spec.evaluation.prefixCacheMB > 0, graphEvaluator?.key != cacheKey {
            graphEvaluator = nil  // free the previous graph's values first
            graphEvaluator = (cacheKey, try GraphPrefixEvaluator(program, data: data.test, batchSize: batchSize,
                                                                  budgetBytes: spec.evaluation.prefixCacheMB << 20))
        }
        let prefix = graphEvaluator?.key == cacheKey ? graphEvaluator?.evaluator : nil
        var evaluation: Evaluation
        var masked: Int?
        if let change, let name = task.unit {
            let (variant, count) = try change(program, name)
            masked = count
            let cut = everyLayer ? 0 : try program.unit(name).nodes.min() ?? 0
            evaluation = try prefix.map { try $0.evaluate(variant, cut: cut) } ?? GraphEvaluation.run(variant, on: data.test, batchSize: batchSize)
        } else {
            evaluation = try prefix?.baseline ?? GraphEvaluation.run(program, on: data.test, batchSize: batchSize)
        }
        var outcome = try measured(task, evaluation, cacheKey: cacheKey) {
            try prefix?.baseline ?? GraphEvaluation.run(program, on: data.test, batchSize: batchSize)
        }
        outcome.paramsMasked = masked
        return outcome
    }

    /// Training data, BN recalibration settings and the task's seed, for masks that need them.
    public func maskContext(_ task: PlannedTask) throws -> MaskContext {
        MaskContext(seed: task.seed, recalibrationData: try splits(task.dataset, model: task.model).train,
                    recalibrationBatches: spec.evaluation.recalibrationBatches, batchSize: spec.training.batchSize)
    }

    // MARK: - Data

    /// A dataset's splits, normalised as `model` expects (the model's `normalization`, else the
    /// dataset's, else the training split's statistics).
    public func splits(_ name: String, model: String? = nil) throws -> DatasetSplits {
        guard let entry = spec.datasets.first(where: { $0.name == name }) else {
            throw RunError(path: name, message: "dataset not in the sweep")
        }
        let normalisation = model.flatMap { spec.normalizations[$0] } ?? entry.normalization.map { Normalisation(mean: $0.mean, std: $0.std) }
        let cacheKey = normalisation.map { "\(name) \($0.mean) \($0.std)" } ?? name
        if let cached = datasets[cacheKey] { return cached }
        let raw = try ImportedDatasets.rawSplits(entry, spec: spec, fetch: fetchDataset)
        let source = spec.sourceEntry(of: entry)
        let loaded = try (try DatasetCatalog.load(entry.name, base: entry.base, derivation: entry.derivation, dataDirectory: entry.dataDir,
                                             trainLimit: entry.trainLimit, testLimit: entry.testLimit, normalisation: normalisation,
                                             preprocessing: source == nil ? entry.preprocessing : Preprocessing(), raw: raw))
            .augmented(entry.augment, dataset: name)
        datasets[cacheKey] = loaded
        return loaded
    }
}

extension DatasetSplits {
    /// The splits with `augmentation` on the training split; its crop keeps the image size.
    func augmented(_ augmentation: Augmentation?, dataset: String) throws -> DatasetSplits {
        guard let augmentation else { return self }
        guard train.holdsBytes else {
            throw RunError(path: dataset, message: "augment applies to 8-bit images (image files, IDX, CIFAR, uint8 arrays); this dataset holds float values")
        }
        let (h, w) = (train.shape[1], train.shape[2])
        if let crop = augmentation.randomCrop, crop.size != h || crop.size != w {
            throw RunError(path: dataset, message: "augment random_crop size \(crop.size) must equal the image size (\(w) x \(h)): the test split is not cropped")
        }
        var splits = self
        splits.train.augmentation = augmentation
        return splits
    }
}

/// The start of a ganged task: every member prepares (loads the data, builds the network), then
/// all learn whether all could. A member that failed alone would otherwise leave the others
/// waiting in their first exchange; this way all fail together, with the reason on the leader.
enum GangStart {
    static func agree<T>(_ gang: GangLink?, task: String, _ prepare: () throws -> T) throws -> T {
        guard let gang else { return try prepare() }
        let prepared = Result { try prepare() }
        var flags = [Double](repeating: 0, count: gang.size)
        [prepared.isSuccess ? 1.0 : 0].withUnsafeBufferPointer { local in
            flags.withUnsafeMutableBufferPointer { gang.allGather(local, counts: Array(repeating: 1, count: gang.size), into: $0) }
        }
        let value = try prepared.get()
        if let member = flags.firstIndex(of: 0) {
            throw RunError(path: task, message: "gang member \(member) could not prepare this training (load its dataset and build the network)")
        }
        return value
    }
}

private extension Result {
    var isSuccess: Bool { if case .success = self { return true } else { return false } }
}

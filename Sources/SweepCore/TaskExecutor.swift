import Datasets
import Foundation
import Models
import Studies
import TensorEngine

/// Runs tasks on a worker: loads datasets once, keeps received artifacts (checkpoints, IMP
/// rounds, teacher logits) by content hash, and turns every task into an outcome (errors and
/// divergence become statuses, never crashes).
public final class TaskExecutor {
    public let spec: SweepSpec
    private var datasets: [String: DatasetSplits] = [:]
    private var artifacts: [String: SafeTensorsFile] = [:]
    /// Mask evaluations of the most recent network share its unmasked layers' activations.
    private var evaluator: (key: String, PrefixEvaluator)?
    /// Which test images the most recent network got right unmasked (for the paired test).
    private var baselineHits: (key: String, hits: [Bool])?
    /// Where the running task's progress lines go (the coordinator's log), if anywhere.
    private var progressSink: ((String) -> Void)?

    public init(spec: SweepSpec) { self.spec = spec }

    /// Hashes of the artifacts this worker holds.
    public var cachedArtifacts: Set<String> { Set(artifacts.keys) }

    /// Keeps an artifact received from the coordinator, after checking its hash.
    public func store(artifact data: Data, hash: String) throws {
        guard contentHash(data) == hash else { throw RunError(path: hash, message: "artifact bytes do not match their hash") }
        artifacts[hash] = try SafeTensorsFile.decode(data, file: "artifact \(hash)")
    }

    /// Forgets artifacts no remaining task needs (the coordinator says which).
    public func release(_ hashes: [String]) {
        for h in hashes { artifacts[h] = nil }
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
        defer { progressSink = nil }
        var artifact: Data?
        var outcome: TaskOutcome
        do {
            (outcome, artifact) = try execute(task, inputs: inputs, resume: resume, gang: gang, snapshot: snapshot)
        } catch let error as TrainingError {
            outcome = TaskOutcome(status: .diverged)
            outcome.error = error.description
        } catch let error as PruningStopped {
            outcome = TaskOutcome(status: .stopped)
            outcome.error = error.description
        } catch {
            outcome = TaskOutcome(status: .failed)
            outcome.error = "\(error)"
        }
        outcome.seconds = Date().timeIntervalSince(start)
        return (outcome, artifact)
    }

    private func execute(_ task: PlannedTask, inputs: [String: String], resume: Data?, gang: GangLink?,
                         snapshot: ((Data) -> Void)?) throws -> (TaskOutcome, Data?) {
        func input(_ key: String) throws -> SafeTensorsFile {
            guard let hash = inputs[key], let file = artifacts[hash] else {
                throw RunError(path: task.key, message: "the output of \(key) did not arrive")
            }
            return file
        }
        switch task.kind {
        case .noop:
            return (TaskOutcome(status: .ok), nil)
        case .load:
            throw RunError(path: task.key, message: "networks trained elsewhere are read by the coordinator, not by a worker")
        case .train where spec.study == .imp:
            return try trainDense(task)
        case .train:
            let (data, network, hooks) = try GangStart.agree(gang, task: task.key) {
                let data = try splits(task.dataset, model: task.model)
                let network = try build(task.model, for: data, seed: task.seed)
                return (data, network, try snapshotHooks(task, network: network, resume: resume, sink: snapshot))
            }
            let section = task.variant == "teacher" ? (spec.distillation.teacherTraining ?? spec.training) : spec.training
            var outcome = try train(network, data: data, section: section, seed: task.seed, hooks: hooks, gang: gang)
            if let gang, gang.rank != 0 { return (outcome, nil) }
            return try finish(&outcome, artifact: Checkpoint.file(of: network, metadata: metadata(task)))
        case .baseline, .mask:
            return (try evaluateMask(task, file: try input(task.dependencies[0]), hash: inputs[task.dependencies[0]]!), nil)
        case .prune, .oneShot:
            return try prune(task, previous: try input(task.dependencies[0]))
        case .logits:
            return try teacherLogits(task, teachers: try task.dependencies.map(input))
        case .student:
            let data = try splits(task.dataset, model: task.model)
            let network = try build(task.model, for: data, seed: task.seed)
            var loss: Training.LossFunction?
            if task.variant == DistillationLoss.logits.rawValue, let dep = task.dependencies.first {
                guard let logits = try input(dep)["logits"], logits.shape == [data.train.count, data.train.classes] else {
                    throw RunError(path: task.key, message: "teacher logits do not match the training split")
                }
                loss = Distillation.logitLoss(teacher: logits)
            }
            var outcome = try train(network, data: data, section: spec.training, seed: task.seed, loss: loss)
            outcome.parameters = network.parameterCount
            return (outcome, nil)
        case .reuse:
            return (try reuse(task, source: try input(task.dependencies[0]), target: try input(task.dependencies[1])), nil)
        }
    }

    // MARK: - Shared steps

    private func build(_ model: String, for data: DatasetSplits, seed: UInt64) throws -> Network {
        Network.build(try ModelSpec(name: model, inputShape: data.train.shape, classes: data.train.classes), seed: seed)
    }

    private func config(_ section: TrainingSection, seed: UInt64) throws -> TrainingConfig {
        guard let config = section.config(seed: seed) else { throw RunError(path: "training.schedule", message: "invalid") }
        return config
    }

    /// Trains `network` and evaluates it on the test split; a non-finite test loss counts as
    /// divergence. A gang trains and evaluates together.
    private func train(_ network: Network, data: DatasetSplits, section: TrainingSection, seed: UInt64,
                       loss: Training.LossFunction? = nil, hooks: TrainingHooks = TrainingHooks(), gang: GangLink? = nil) throws -> TaskOutcome {
        let config = try config(section, seed: seed)
        let sink = progressSink
        let reports = try Training.train(network, on: data.train, config: config, loss: loss, hooks: hooks, gang: gang) { r in
            sink?(EpochReport.line(r))
        }
        return try evaluate(network, data: data, reports: reports, gang: gang)
    }

    private func evaluate(_ network: Network, data: DatasetSplits, reports: [EpochReport], gang: GangLink? = nil) throws -> TaskOutcome {
        let eval = Evaluation.run(network, on: data.test, batchSize: spec.evaluation.batchSize, gang: gang)
        guard eval.loss.isFinite else { throw TrainingError.diverged(epoch: reports.count - 1, step: -1, loss: Float(eval.loss)) }
        var outcome = TaskOutcome(status: .ok)
        outcome.testAccuracy = eval.accuracy
        outcome.testLoss = eval.loss
        outcome.trainLoss = reports.last.map { Double($0.loss) }
        outcome.trainAccuracy = reports.last?.accuracy
        return outcome
    }

    /// Resuming from `resume` and snapshotting to `sink` at epoch boundaries once the training
    /// has run `snapshotSeconds`.
    private func snapshotHooks(_ task: PlannedTask, network: Network, resume: Data?, sink: ((Data) -> Void)?) throws -> TrainingHooks {
        var hooks = TrainingHooks()
        if let resume {
            let restored = try EpochSnapshot.restore(resume, into: network, key: task.key)
            hooks.startStep = restored.step
            hooks.prepare = restored.prepare
        }
        if let sink {
            var last = Date()
            let interval = snapshotSeconds
            hooks.afterEpoch = { epochs, step, optimizer in
                guard Date().timeIntervalSince(last) >= interval,
                      let bytes = try? EpochSnapshot.encode(network, optimizer: optimizer, epochs: epochs, step: step, key: task.key) else { return }
                sink(bytes)
                last = Date()
            }
        }
        return hooks
    }

    private func metadata(_ task: PlannedTask) -> [String: String] {
        ["layersweep.dataset": task.dataset, "layersweep.key": task.key, "layersweep.seed": String(task.seed)]
    }

    /// Encodes the task's artifact and records its hash; this worker keeps it (the coordinator
    /// counts the producer as holding it).
    private func finish(_ outcome: inout TaskOutcome, artifact file: SafeTensorsFile) throws -> (TaskOutcome, Data?) {
        let bytes = try file.encoded()
        let hash = contentHash(bytes)
        artifacts[hash] = file
        outcome.checkpoint = hash
        return (outcome, bytes)
    }

    // MARK: - Layer zeroing

    private func evaluateMask(_ task: PlannedTask, file: SafeTensorsFile, hash: String) throws -> TaskOutcome {
        let data = try splits(task.dataset, model: task.model)
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
            (evaluation, masked) = try evaluateInFull(file, hash: hash, data: data, mask: task.mask, unit: task.unit, context: context, key: task.key)
        }
        var outcome = TaskOutcome(status: .ok)
        outcome.paramsMasked = masked
        // The paired test: the same test images, unmasked (the baseline task's own evaluation,
        // or one made for the first mask on this worker) against masked.
        let cacheKey = "\(hash)/\(task.dataset)"
        if task.kind == .baseline { baselineHits = (cacheKey, evaluation.hits) }
        if task.kind == .mask {
            if baselineHits?.key != cacheKey {
                let base = spec.evaluation.prefixCacheMB > 0
                    ? try evaluator!.1.evaluate(mask: nil, unit: nil, context: context).0
                    : try evaluateInFull(file, hash: hash, data: data, mask: nil, unit: nil, context: context, key: task.key).0
                baselineHits = (cacheKey, base.hits)
            }
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

    /// The checkpoint's network with `mask` applied to `unit` (nil: unmasked), evaluated on the
    /// whole test split.
    private func evaluateInFull(_ file: SafeTensorsFile, hash: String, data: DatasetSplits, mask: MaskKind?, unit unitName: String?,
                                context: MaskContext, key: String) throws -> (Evaluation, Int?) {
        let network = try Checkpoint.network(from: file, path: "checkpoint \(hash)")
        var masked: Int?
        if let unitName, let mask {
            guard let unit = network.unit(unitName) else { throw RunError(path: key, message: "no unit \(unitName)") }
            masked = try Masking.apply(mask, to: unit, of: network, context: context)
        }
        return (Evaluation.run(network, on: data.test, batchSize: spec.evaluation.batchSize), masked)
    }

    // MARK: - Iterative magnitude pruning

    private func trainDense(_ task: PlannedTask) throws -> (TaskOutcome, Data?) {
        let data = try splits(task.dataset, model: task.model)
        let network = try build(task.model, for: data, seed: task.seed)
        let (round, reports) = try IterativePruning.trainDense(network, on: data.train, config: try config(spec.training, seed: task.seed),
                                                               rewindStep: spec.pruning.rewindStep)
        var outcome = try evaluate(network, data: data, reports: reports)
        describe(round, data: data, into: &outcome, images: false)
        return try finish(&outcome, artifact: round.file(metadata: metadata(task)))
    }

    /// IMP round k (prune the previous round's survivors by `rate`) or the one-shot control
    /// (prune the dense network straight to round k's survivor counts).
    private func prune(_ task: PlannedTask, previous file: SafeTensorsFile) throws -> (TaskOutcome, Data?) {
        let data = try splits(task.dataset, model: task.model)
        let previous = try PruningRound(file: file, path: task.dependencies[0])
        var keep: [String: Int] = [:]
        for (name, mask) in previous.masks {
            keep[name] = task.kind == .prune
                ? Pruning.survivors(pruning: spec.pruning.rate, of: Pruning.survivingCount(mask))
                : Pruning.survivorSchedule(total: mask.count, rate: spec.pruning.rate, rounds: task.round ?? 1).last ?? mask.count
        }
        let masks = try IterativePruning.nextMasks(after: previous, keep: keep, minConnectedUnits: spec.pruning.minConnectedUnits)
        let (round, reports) = try IterativePruning.retrain(from: previous, masks: masks, on: data.train,
                                                            config: try config(spec.training, seed: task.seed),
                                                            rewindStep: spec.pruning.rewindStep)
        var outcome = try evaluate(round.network, data: data, reports: reports)
        describe(round, data: data, into: &outcome, images: true)
        return try finish(&outcome, artifact: round.file(metadata: metadata(task)))
    }

    private func describe(_ round: PruningRound, data: DatasetSplits, into outcome: inout TaskOutcome, images: Bool) {
        outcome.remainingFraction = round.remainingFraction
        outcome.layerRemaining = Dictionary(round.remainingFractions, uniquingKeysWith: { a, _ in a })
        guard let first = round.masks.first?.1 else { return }
        outcome.locality = Locality.score(mask: first, inputShape: data.train.shape)
        if images, spec.pruning.maskImages > 0 {
            outcome.maskImages = Locality.mostConnected(mask: first, inputShape: data.train.shape, count: spec.pruning.maskImages)
        }
    }

    // MARK: - Distillation

    private func teacherLogits(_ task: PlannedTask, teachers files: [SafeTensorsFile]) throws -> (TaskOutcome, Data?) {
        let data = try splits(task.dataset, model: task.model)
        let teachers = try files.enumerated().map { try Checkpoint.network(from: $0.element, path: task.dependencies[$0.offset]) }
        let batch = spec.evaluation.batchSize
        let test = Distillation.ensembleLogits(teachers, on: data.test, batchSize: batch)
        let train = Distillation.ensembleLogits(teachers, on: data.train, batchSize: batch)
        var outcome = TaskOutcome(status: .ok)
        let onTest = Loss.softmaxCrossEntropy(test, labels: data.test.labels)
        outcome.testAccuracy = Double(onTest.correct) / Double(max(data.test.count, 1))
        outcome.testLoss = Double(onTest.loss)
        outcome.trainAccuracy = Double(Loss.softmaxCrossEntropy(train, labels: data.train.labels).correct) / Double(max(data.train.count, 1))
        guard train.isFinite else { throw RunError(path: task.key, message: "teacher logits are not finite") }
        return try finish(&outcome, artifact: SafeTensorsFile(tensors: [("logits", train)], metadata: metadata(task)))
    }

    // MARK: - Parameter reuse

    private func reuse(_ task: PlannedTask, source sourceFile: SafeTensorsFile, target targetFile: SafeTensorsFile) throws -> TaskOutcome {
        let data = try splits(task.dataset, model: task.model)
        let source = try Checkpoint.network(from: sourceFile, path: task.dependencies[0])
        let scratch = try Checkpoint.network(from: targetFile, path: task.dependencies[1])
        // Same initialisation and batch order as the scratch run it is compared with: the reused
        // kernels are the only difference, so the gain is a paired comparison.
        guard let seedText = targetFile.metadata["layersweep.seed"], let seed = UInt64(seedText) else {
            throw RunError(path: task.dependencies[1], message: "checkpoint lacks its training seed")
        }
        let network = try build(task.model, for: data, seed: seed)
        let kernels = try (task.units ?? []).map { name -> String in
            guard let unit = network.unit(name) else { throw MaskError.unknownUnit(name) }
            return Reuse.kernels(of: [unit])[0]
        }
        try Reuse.copy(kernels, from: source, into: network)
        let frozen: Set<String> = task.variant == ReuseMode.frozen.rawValue ? Set(kernels) : []
        var outcome = try train(network, data: data, section: spec.training, seed: seed, hooks: TrainingHooks(frozen: frozen))
        outcome.rmse = try Reuse.rmse(kernels, source, scratch)
        outcome.parameters = kernels.reduce(0) { $0 + (network.parameter($1)?.value.count ?? 0) }
        return outcome
    }

    // MARK: - Data

    /// A dataset's splits, normalised as `model` expects (its sweep entry's `normalization`, or
    /// the training split's statistics).
    private func splits(_ name: String, model: String? = nil) throws -> DatasetSplits {
        let normalisation = model.flatMap { spec.normalizations[$0] }
        let cacheKey = normalisation.map { "\(name) \($0.mean) \($0.std)" } ?? name
        if let cached = datasets[cacheKey] { return cached }
        guard let entry = spec.datasets.first(where: { $0.name == name }) else {
            throw RunError(path: name, message: "dataset not in the sweep")
        }
        let loaded = try DatasetCatalog.load(entry.name, base: entry.base, derivation: entry.derivation, dataDirectory: entry.dataDir,
                                             trainLimit: entry.trainLimit, testLimit: entry.testLimit, normalisation: normalisation)
        datasets[cacheKey] = loaded
        return loaded
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

import Datasets
import Foundation
import Models
import Procedures
import SweepFile
import TensorEngine

/// What a task does. The shared kinds are declared here; a study declares its own in its folder
/// (`TaskKind.prune`), with their traits in its `kinds`.
public struct TaskKind: RawRepresentable, Hashable, Codable, Sendable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public init(_ rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }

    public init(from decoder: Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        rawValue = TaskKind.renamed[text] ?? text
    }

    /// Kinds an earlier version spelt otherwise, read as today's.
    static let renamed = ["oneShot": "oneshot"]
    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(rawValue)
    }

    /// Train a network; produces a checkpoint.
    public static let train = TaskKind("train")
    /// Read a network trained elsewhere (a sweep file's `checkpoints:`); the coordinator does it
    /// and ships the checkpoint like a trained one.
    public static let load = TaskKind("load")
    /// Evaluate the trained network unmasked.
    public static let baseline = TaskKind("baseline")
    /// Apply one mask to one unit and evaluate.
    public static let mask = TaskKind("mask")

    static let shared: [TaskKindInfo] = [
        TaskKindInfo(.train, trains: true, compared: false), TaskKindInfo(.load, trains: false, compared: false),
        TaskKindInfo(.baseline, trains: false, compared: false), TaskKindInfo(.mask, trains: false, compared: true),
    ]

    /// Whether the task trains a network (and so could run data-parallel on several ranks).
    public var trains: Bool { PlanningStudies.kinds[self]?.trains ?? false }
    /// Whether its accuracy is compared with its reference task's (`delta_accuracy`).
    public var compared: Bool { PlanningStudies.kinds[self]?.compared ?? false }
}

/// One node of the task graph, with a stable key and a seed derived from it. Its coding leaves
/// out the payload, whose type only the study knows (`WireTask` carries it).
public struct PlannedTask: Codable, Sendable {
    public let key: String
    public let kind: TaskKind
    public let dataset: String
    public let model: String
    /// The repetition index (the `seedN` part of the key).
    public let seedIndex: Int
    public let unit: String?
    public let mask: MaskKind?
    /// Keys of the tasks whose outputs this one needs.
    public let dependencies: [String]
    /// Relative expected cost (multiply-adds), for longest-first scheduling and ETAs.
    public let cost: Double
    /// The task's own seed: a function of the sweep seed and the key only.
    public let seed: UInt64
    /// The task whose test accuracy this one is compared with (delta_accuracy).
    public var baselineKey: String?
    /// A load task's file (a network trained elsewhere).
    public var checkpointFile: String?
    /// The study's own parameters of this task (a pruning round, a reuse mode, a sparsity ...),
    /// typed by the study.
    public var payload: (any TaskPayload)?

    enum CodingKeys: String, CodingKey {
        case key, kind, dataset, model, seedIndex, unit, mask, dependencies, cost, seed, baselineKey, checkpointFile
    }

    public init(key: String, kind: TaskKind, dataset: String, model: String, seedIndex: Int, unit: String?,
                mask: MaskKind?, dependencies: [String], cost: Double, seed: UInt64) {
        self.key = key
        self.kind = kind
        self.dataset = dataset
        self.model = model
        self.seedIndex = seedIndex
        self.unit = unit
        self.mask = mask
        self.dependencies = dependencies
        self.cost = cost
        self.seed = seed
    }
}

extension PlannedTask: Equatable {
    public static func == (a: PlannedTask, b: PlannedTask) -> Bool {
        a.key == b.key && a.kind == b.kind && a.dataset == b.dataset && a.model == b.model && a.seedIndex == b.seedIndex
            && a.unit == b.unit && a.mask == b.mask && a.dependencies == b.dependencies && a.cost == b.cost && a.seed == b.seed
            && a.baselineKey == b.baselineKey && a.checkpointFile == b.checkpointFile
            && (a.payload == nil) == (b.payload == nil) && (a.payload.map { p in b.payload.map { p.isEqual(to: $0) } ?? false } ?? true)
    }
}

/// A planned task as rank 0 sends it to a worker: its fields, and the study's payload as JSON.
/// Workers run what they are sent; they never expand the sweep themselves.
public struct WireTask: Codable, Equatable, Sendable {
    /// The task without its payload.
    let fields: PlannedTask
    /// The study's payload, encoded by its type.
    let payload: Data?

    public var key: String { fields.key }

    public init(_ task: PlannedTask) throws {
        var fields = task
        fields.payload = nil
        self.fields = fields
        payload = try task.payload.map { try SweepJSON.encoder.encode(PayloadBox(value: $0)) }
    }

    /// The task, its payload decoded as `study`'s.
    public func task(of study: any StudyPlanning.Type) throws -> PlannedTask {
        var task = fields
        if let payload {
            guard let type = study.payload else {
                throw RunError(path: key, message: "a task of study \(study.name) with a payload, which the study does not have")
            }
            task.payload = try SweepJSON.decoder.decode(type, from: payload)
        }
        return task
    }

    private struct PayloadBox: Encodable {
        let value: any TaskPayload
        func encode(to encoder: Encoder) throws { try value.encode(to: encoder) }
    }
}

/// The expanded task graph of a sweep.
public struct Plan: Sendable {
    public var spec: SweepSpec
    /// Tasks in key order.
    public let tasks: [PlannedTask]
    private let indexByKey: [String: Int]

    public init(spec: SweepSpec, tasks: [PlannedTask]) throws {
        self.spec = spec
        self.tasks = tasks.sorted { $0.key < $1.key }
        var index: [String: Int] = [:]
        for (i, t) in self.tasks.enumerated() {
            guard index[t.key] == nil else { throw PlanError.duplicateKey(t.key) }
            index[t.key] = i
        }
        for t in self.tasks {
            for d in t.dependencies where index[d] == nil { throw PlanError.missingDependency(t.key, d) }
        }
        indexByKey = index
    }

    public subscript(key: String) -> PlannedTask? { indexByKey[key].map { tasks[$0] } }

    public var totalCost: Double { tasks.reduce(0) { $0 + $1.cost } }

    /// Expands a validated spec into its study's task graph.
    public static func expand(_ spec: SweepSpec) throws -> Plan {
        try Plan(spec: spec, tasks: spec.plannedStudy.expand(spec))
    }

    /// A task's seed: a function of the sweep seed and a key only.
    public static func seed(_ spec: SweepSpec, _ key: String) -> UInt64 { StableHash.combine(spec.seed, StableHash.of(key)) }

    /// The cost model, in multiply-adds: a training is forward and backward (3x the forward
    /// pass) over the training split per epoch, then one evaluation of the test split.
    public static func trainingCost(macs: Double, on d: (shape: [Int], classes: Int, train: Int, test: Int), epochs: Int) -> Double {
        3 * macs * Double(d.train) * Double(epochs) + evaluationCost(macs: macs, images: d.test)
    }

    /// One forward pass over `images`.
    public static func evaluationCost(macs: Double, images: Int) -> Double { macs * Double(images) }

    /// One trained network a study measures, and how to plan what depends on it.
    public struct MeasuredNetwork {
        /// `<dataset>/<model>/seed<N>` or, for a network trained elsewhere, `.../ckpt-<hash>`.
        public let prefix: String
        /// Its training (or load) and its baseline evaluation.
        public let tasks: [PlannedTask]
        /// A task that evaluates a variant of this network (depends on it, compared with its baseline).
        public let variant: (_ key: String, _ kind: TaskKind, _ unit: String?, _ mask: MaskKind?, _ cost: Double) -> PlannedTask
    }

    /// The networks of (dataset, model) that an evaluation study measures: one trained per seed,
    /// or one per file listed under the model's `checkpoints:` (named by its content).
    static func measuredNetworks(_ spec: SweepSpec, dataset: DatasetEntry, model: String, macs: Double) -> [MeasuredNetwork] {
        let d = dataset.description
        let files = spec.checkpoints[model]
        return (files.map { Array($0.indices) } ?? spec.seeds).map { n in
            let prefix = "\(dataset.keyName)/\(model)/" + (files.map { spec.checkpointSegment(file: $0[n], index: n) } ?? "seed\(n)")
            let trainKey = "\(prefix)/\(files == nil ? "train" : "load")"
            func task(_ key: String, _ kind: TaskKind, _ unit: String?, _ mask: MaskKind?, _ cost: Double) -> PlannedTask {
                var t = PlannedTask(key: key, kind: kind, dataset: dataset.name, model: model, seedIndex: n, unit: unit, mask: mask,
                                    dependencies: kind == .train || kind == .load ? [] : [trainKey], cost: cost, seed: Plan.seed(spec, key))
                t.baselineKey = "\(prefix)/baseline"
                if kind == .load { t.checkpointFile = files?[n] }
                return t
            }
            let network = files == nil ? task(trainKey, .train, nil, nil, trainingCost(macs: macs, on: d, epochs: spec.training.epochs))
                                       : task(trainKey, .load, nil, nil, 1)
            return MeasuredNetwork(prefix: prefix, tasks: [network, task("\(prefix)/baseline", .baseline, nil, nil, evaluationCost(macs: macs, images: d.test))],
                                   variant: task)
        }
    }

    /// Calls `body` for every network an evaluation study measures, with the units `layers:`
    /// selects in its model, the cost of evaluating a change to a unit (nil: the whole network)
    /// and of a BN re-estimation. With the prefix cache on, a change to a unit costs the layers
    /// from it to the end (at least 5% of a pass, for the data and the loss), so the scheduler
    /// starts the shallow units' evaluations, the long ones, first.
    public static func forEachMeasuredNetwork(_ spec: SweepSpec,
                                       _ body: (MeasuredNetwork, [MaskableUnit], _ evaluation: (MaskableUnit?) -> Double,
                                                _ recalibration: Double) -> Void) throws {
        for dataset in spec.datasets {
            for model in spec.models {
                if spec.isGraph(model) {
                    guard let graph = spec.graphs[model] else { throw RunError(path: model, message: "an imported graph's units are known once rank 0 has read its file") }
                    let full = evaluationCost(macs: graph.multiplyAdds, images: dataset.description.test)
                    // With the prefix cache, a mask evaluation runs from the unit's first node.
                    let shares = Dictionary(graph.units.map { ($0.name, $0.suffixShare) }, uniquingKeysWith: { a, _ in a })
                    let reuses = spec.evaluation.prefixCacheMB > 0
                    let evaluation = { (unit: MaskableUnit?) -> Double in
                        guard let unit, reuses else { return full }
                        return full * max(0.05, shares[unit.name] ?? 1)
                    }
                    let units = LayerMatcher.select(graph.maskableUnits, spec.layers)
                    let recalibration = evaluationCost(macs: graph.multiplyAdds, images: spec.evaluation.recalibrationBatches * spec.training.batchSize)
                    for measured in measuredNetworks(spec, dataset: dataset, model: model, macs: graph.multiplyAdds) {
                        body(measured, units, evaluation, recalibration)
                    }
                    continue
                }
                let (macs, network) = try measure(model, on: dataset)
                let full = evaluationCost(macs: macs, images: dataset.description.test)
                let perLayer = network.multiplyAddsPerTopLevelLayer()
                let reuses = spec.evaluation.prefixCacheMB > 0
                let evaluation = { (unit: MaskableUnit?) -> Double in
                    guard let unit, reuses else { return full }
                    return full * max(0.05, network.suffixShare(of: unit.name, perLayer: perLayer))
                }
                let recalibration = evaluationCost(macs: macs, images: spec.evaluation.recalibrationBatches * spec.training.batchSize)
                let units = LayerMatcher.select(network.units, spec.layers)
                for measured in measuredNetworks(spec, dataset: dataset, model: model, macs: macs) { body(measured, units, evaluation, recalibration) }
            }
        }
    }

    /// Multiply-adds per image of `model` on `dataset` (for costs), and its units.
    public static func measure(_ model: String, on dataset: DatasetEntry) throws -> (macs: Double, network: Network) {
        let d = dataset.description
        let network = Network.build(try ModelSpec(name: model, inputShape: d.shape, classes: d.classes), seed: 0)
        return (Double(network.multiplyAddsPerImage()), network)
    }
}

/// A task graph that is not well formed.
public enum PlanError: Error, CustomStringConvertible, Equatable {
    case duplicateKey(String)
    case missingDependency(String, String)

    public var description: String {
        switch self {
        case let .duplicateKey(k): return "two tasks share the key \(k)"
        case let .missingDependency(k, d): return "task \(k) depends on \(d), which is not in the plan"
        }
    }
}

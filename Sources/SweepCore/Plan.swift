import Datasets
import Foundation
import Models
import Studies
import TensorEngine

/// What a task does.
public enum TaskKind: String, Codable, Sendable {
    /// Train a network; produces a checkpoint.
    case train
    /// Read a network trained elsewhere (a sweep file's `checkpoints:`); the coordinator does it
    /// and ships the checkpoint like a trained one.
    case load
    /// Evaluate the trained network unmasked.
    case baseline
    /// Apply one mask to one unit and evaluate.
    case mask
    /// Do nothing (measures the runner's own overhead).
    case noop
    /// IMP round k ≥ 1: prune the previous round's network, rewind, retrain; produces the round.
    case prune
    /// One-shot control: prune the dense network to round k's sparsity at once, rewind, retrain.
    case oneShot
    /// Evaluate the teacher ensemble and compute its logits on the train split (shipped to students).
    case logits
    /// Train a student, on the teacher's logits or on the labels.
    case student
    /// Train a target network that starts from source-trained kernels.
    case reuse
}

/// One node of the task graph, with a stable key and a seed derived from it.
public struct PlannedTask: Codable, Equatable, Sendable {
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
    /// IMP: the pruning round (0 = dense).
    public var round: Int?
    /// Reuse: the source dataset; load: the checkpoint file.
    public var source: String?
    /// Reuse mode, IMP method (imp | oneshot) or distillation loss (logits | labels).
    public var variant: String?
    /// Reuse: the units whose kernels are copied (one layer or a prefix).
    public var units: [String]?
    /// Distillation: the student's parameter budget.
    public var budget: Int?

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

/// The expanded task graph of a sweep.
public struct Plan: Sendable {
    public let spec: SweepSpec
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

    /// Expands a validated spec: per (dataset, model, seed) a training task, a baseline
    /// evaluation and one task per (selected unit, applicable mask).
    public static func expand(_ spec: SweepSpec) throws -> Plan {
        switch spec.study {
        case .zeroing, .noop: return try expandZeroing(spec)
        case .imp: return try expandPruning(spec)
        case .distill: return try expandDistillation(spec)
        case .reuse: return try expandReuse(spec)
        }
    }

    /// A task's seed: a function of the sweep seed and a key only.
    static func seed(_ spec: SweepSpec, _ key: String) -> UInt64 { StableHash.combine(spec.seed, StableHash.of(key)) }

    /// Multiply-adds per image of `model` on `dataset` (for costs), and its units.
    static func measure(_ model: String, on dataset: DatasetEntry) throws -> (macs: Double, network: Network) {
        let d = dataset.description
        let network = Network.build(try ModelSpec(name: model, inputShape: d.shape, classes: d.classes), seed: 0)
        return (Double(network.multiplyAddsPerImage()), network)
    }

    private static func expandZeroing(_ spec: SweepSpec) throws -> Plan {
        func seed(_ key: String) -> UInt64 { Plan.seed(spec, key) }
        if spec.study == .noop {
            let width = String(spec.noopTasks - 1).count
            return try Plan(spec: spec, tasks: (0..<spec.noopTasks).map { i in
                let key = "noop/task" + String(repeating: "0", count: width - String(i).count) + String(i)
                return PlannedTask(key: key, kind: .noop, dataset: "", model: "", seedIndex: 0, unit: nil, mask: nil,
                                   dependencies: [], cost: 1 + Double(i % 7), seed: seed(key))
            })
        }
        var tasks: [PlannedTask] = []
        for dataset in spec.datasets {
            let d = dataset.description
            let (trainCount, testCount) = (Double(d.train), Double(d.test))
            for model in spec.models {
                let (macs, network) = try measure(model, on: dataset)
                let evalCost = macs * testCount
                let units = LayerMatcher.select(network.units, spec.layers)
                // Networks trained elsewhere take the seeds' places, named by their content.
                let files = spec.checkpoints[model]
                for s in files.map({ Array($0.indices) }) ?? spec.seeds {
                    let prefix = "\(dataset.name)/\(model)/" + (files.map { ImportedNetworks.keySegment(spec, file: $0[s], index: s) } ?? "seed\(s)")
                    let trainKey = "\(prefix)/\(files == nil ? "train" : "load")"
                    func task(_ key: String, _ kind: TaskKind, unit: String? = nil, mask: MaskKind? = nil, cost: Double) -> PlannedTask {
                        var t = PlannedTask(key: key, kind: kind, dataset: dataset.name, model: model, seedIndex: s, unit: unit, mask: mask,
                                            dependencies: kind == .train || kind == .load ? [] : [trainKey], cost: cost, seed: seed(key))
                        t.baselineKey = "\(prefix)/baseline"
                        if kind == .load { t.source = files?[s] }
                        return t
                    }
                    if files == nil {
                        tasks.append(task(trainKey, .train, cost: 3 * macs * trainCount * Double(spec.training.epochs) + evalCost))
                    } else {
                        tasks.append(task(trainKey, .load, cost: 1))
                    }
                    tasks.append(task("\(prefix)/baseline", .baseline, cost: evalCost))
                    for unit in units {
                        for mask in spec.masks where mask.applies(to: unit.kind) {
                            let recalibration = mask == .zeroKernelRecalibrated
                                ? macs * Double(spec.evaluation.recalibrationBatches * spec.training.batchSize) : 0
                            tasks.append(task("\(prefix)/\(unit.name)/\(mask.rawValue)", .mask, unit: unit.name, mask: mask,
                                              cost: evalCost + recalibration))
                        }
                    }
                }
            }
        }
        return try Plan(spec: spec, tasks: tasks)
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

import Datasets
import Foundation
import Models
import Procedures
import Rendering
import SweepFile
import SweepPlan
import SweepRecords
import SweepReport
import TensorEngine
import SweepCore

extension StudyName {
    /// Parameter reuse across datasets (Wang, Cheng et al. 2020): which layers carry over.
    public static let reuse = StudyName(rawValue: "reuse")
}

extension TaskKind {
    /// Train a target network that starts from source-trained kernels.
    public static let reuse = TaskKind("reuse")
}

/// Which kernels a reuse task copies, from where, and whether they train further.
public struct ReusePoint: DecodableTaskPayload, Equatable {
    /// The source dataset.
    public let source: String
    /// The units whose kernels are copied (one layer or a prefix).
    public let units: [String]
    public let mode: ReuseMode
}

/// What a reuse training measured besides its accuracy.
public struct ReuseMeasures: OutcomeMeasures, Equatable {
    public static let study = StudyName.reuse
    /// Kernel RMSE between the source-trained and the target-trained networks' reused layers.
    public var rmse: Double?
    /// Parameters copied.
    public var parameters: Int?
    public var isEmpty: Bool { rmse == nil && parameters == nil }
    public var problem: String? {
        if let rmse, !(rmse.isFinite && rmse >= 0) { return "rmse \(rmse) is not a root mean square" }
        if let parameters, parameters < 0 { return "parameters \(parameters) is negative" }
        return nil
    }
}

/// A reuse row's own fields.
public struct ReuseRow: TaskPayload, Equatable {
    public var rmse: Double?
    public var parameters: Int?

    public func rounded() -> any TaskPayload { ReuseRow(rmse: significant(rmse), parameters: parameters) }
}

extension ResultRow {
    /// A reuse row's own fields.
    public var reuse: ReuseRow? { payload as? ReuseRow }
}

extension SweepSpec {
    /// The `reuse:` section (defaults when the file has none).
    public var reuse: ReuseSection { section(ReuseSection.self) }
}

/// `study: reuse`: networks trained from scratch on each dataset of the pairs, and target
/// networks that start from the source's kernels of one layer (or a prefix), frozen or fine-tuned.
public enum ReuseStudy: ReportingStudy {
    public static let name = StudyName.reuse
    public static let sections: Set<String> = ["training", "layers", "reuse", "evaluation"]
    public static let section: (any StudySection.Type)? = ReuseSection.self
    public static let choices: [String: (what: String, valid: [String])] = ["modes": ("reuse mode", ReuseMode.allCases.map(\.rawValue))]
    public static let importsNetworks = true
    public static let kinds = [TaskKindInfo(.reuse, trains: true, compared: true)]
    public static let measures: (any OutcomeMeasures.Type)? = ReuseMeasures.self
    public static let payload: (any DecodableTaskPayload.Type)? = ReusePoint.self

    public static func checkKeys(_ tree: NodeTree) throws {
        if let pairs = tree.node(at: [.key("reuse"), .key("pairs")])?.sequence {
            for i in 0..<pairs.count where pairs[i].mapping != nil {
                try tree.checkKeys([.key("reuse"), .key("pairs"), .index(i)], allowed: ["source", "target"])
            }
        }
    }

    public static func validate(_ spec: SweepSpec, tree: NodeTree) throws {
        func fail(_ path: [PathComponent], _ message: String) -> SpecError { tree.error(path, message) }
        let r = spec.reuse
        for (i, model) in spec.models.enumerated() where spec.checkpoints[model] != nil {
            let sources = Set(r.pairs.map(\.source)), targets = Set(r.pairs.map(\.target))
            guard sources.count == 1, sources.isDisjoint(with: targets) else {
                throw fail([.key("models"), .index(i), .key("checkpoints")], "in study reuse, checkpoints are the networks trained on the pairs' source dataset: give pairs with one source that is no pair's target")
            }
        }
        guard !r.pairs.isEmpty else { throw fail([.key("reuse"), .key("pairs")], "list source/target pairs, e.g. - {source: fmnist-0to4, target: fmnist-5to9}") }
        let names = spec.datasets.map(\.name)
        for (i, pair) in r.pairs.enumerated() {
            let at: [PathComponent] = [.key("reuse"), .key("pairs"), .index(i)]
            for name in [pair.source, pair.target] where !names.contains(name) {
                throw fail(at, "'\(name)' is not in datasets (\(names.joined(separator: ", ")))")
            }
            guard pair.source != pair.target else { throw fail(at, "source and target are the same dataset") }
            let (s, t) = (spec.datasets.first { $0.name == pair.source }!.description, spec.datasets.first { $0.name == pair.target }!.description)
            guard s.shape == t.shape else { throw fail(at, "images of \(pair.source) are \(s.shape), of \(pair.target) \(t.shape): kernels cannot be reused") }
        }
        guard !r.modes.isEmpty, Set(r.modes).count == r.modes.count else {
            throw fail([.key("reuse"), .key("modes")], "modes lists frozen and/or finetuned, each once")
        }
        for model in spec.models {
            let convs = try LayerMatcher.units(of: model).filter { $0.kind == .conv }.count
            for (i, k) in r.prefixes.enumerated() where k < 1 || k > convs {
                throw fail([.key("reuse"), .key("prefixes"), .index(i)], "prefix \(k) is not between 1 and \(model)'s \(convs) conv layers")
            }
        }
    }

    /// Per (dataset in any pair, model, seed) a training from scratch; per (pair, model, seed,
    /// reused layer or prefix, mode) a reuse training that waits for both the source's and the
    /// target's scratch training (the first gives the kernels, the second the baseline and the
    /// kernels to compare with).
    public static func expand(_ spec: SweepSpec) throws -> [PlannedTask] {
        var tasks: [PlannedTask] = []
        let r = spec.reuse
        let used = Set(r.pairs.flatMap { [$0.source, $0.target] })
        let sources = Set(r.pairs.map(\.source))
        for model in spec.models {
            // Networks trained elsewhere (on the pairs' source dataset) replace the source trainings.
            let files = spec.checkpoints[model]
            let seeds = files.map { Array($0.indices) } ?? spec.seeds
            // A dataset read from the user's files is named by its content in keys.
            func keyName(_ dataset: String) -> String { spec.datasets.first { $0.name == dataset }?.keyName ?? dataset }
            func sourceKey(_ source: String, _ s: Int) -> String {
                guard let files else { return "\(keyName(source))/\(model)/seed\(s)/train" }
                return "\(keyName(source))/\(model)/\(spec.checkpointSegment(file: files[s], index: s))/load"
            }
            for dataset in spec.datasets where used.contains(dataset.name) {
                let d = dataset.description
                let (macs, _) = try Plan.measure(model, on: dataset)
                for s in seeds {
                    if let files, sources.contains(dataset.name) {
                        var t = PlannedTask(key: sourceKey(dataset.name, s), kind: .load, dataset: dataset.name, model: model, seedIndex: s,
                                            unit: nil, mask: nil, dependencies: [], cost: 1, seed: Plan.seed(spec, sourceKey(dataset.name, s)))
                        t.checkpointFile = files[s]
                        tasks.append(t)
                        continue
                    }
                    let key = "\(dataset.keyName)/\(model)/seed\(s)/train"
                    var t = PlannedTask(key: key, kind: .train, dataset: dataset.name, model: model, seedIndex: s, unit: nil, mask: nil,
                                        dependencies: [], cost: Plan.trainingCost(macs: macs, on: d, epochs: spec.training.epochs),
                                        seed: Plan.seed(spec, key))
                    t.baselineKey = key
                    tasks.append(t)
                }
            }
            for pair in r.pairs {
                guard let target = spec.datasets.first(where: { $0.name == pair.target }) else { continue }
                let d = target.description
                let (macs, network) = try Plan.measure(model, on: target)
                let convs = network.units.filter { $0.kind == .conv }
                var points: [(name: String, units: [String])] = LayerMatcher.select(network.units, spec.layers)
                    .filter { $0.kind == .conv }.map { ($0.name, [$0.name]) }
                for k in r.prefixes where k >= 1 && k <= convs.count {
                    points.append(("first\(k)", convs.prefix(k).map(\.name)))
                }
                let cost = Plan.trainingCost(macs: macs, on: d, epochs: spec.training.epochs)
                for s in seeds {
                    let fromKey = sourceKey(pair.source, s)
                    let targetKey = "\(keyName(pair.target))/\(model)/seed\(s)/train"
                    let from = files.map { "from-\(pair.source)-" + spec.checkpointSegment(file: $0[s], index: s) } ?? "from-\(keyName(pair.source))"
                    for point in points {
                        for mode in r.modes {
                            let key = "\(keyName(pair.target))/\(model)/seed\(s)/\(from)/\(point.name)/\(mode.rawValue)"
                            var t = PlannedTask(key: key, kind: .reuse, dataset: pair.target, model: model, seedIndex: s, unit: point.name,
                                                mask: nil, dependencies: [fromKey, targetKey], cost: cost, seed: Plan.seed(spec, key))
                            t.payload = ReusePoint(source: pair.source, units: point.units, mode: mode)
                            t.baselineKey = targetKey
                            tasks.append(t)
                        }
                    }
                }
            }
        }
        return tasks
    }

    public static func execute(_ task: PlannedTask, on worker: TaskExecutor, inputs: TaskInputs) throws -> (TaskOutcome, Data?) {
        switch task.kind {
        case .train: return try worker.trainTask(task, section: worker.spec.training)
        case .reuse:
            return (try worker.reuse(task, source: try inputs.file(task.dependencies[0]), target: try inputs.file(task.dependencies[1])), nil)
        default: throw RunError(path: task.key, message: "study reuse has no task kind \(task.kind)")
        }
    }

    public static func label(_ task: PlannedTask) -> String? {
        guard task.kind == .reuse, let point = task.payload as? ReusePoint else { return nil }
        return "\(point.source) → \(task.dataset) \(task.unit ?? "?") \(point.mode.rawValue) seed\(task.seedIndex)"
    }

    public static func columns(_ rows: [ResultRow]) -> StudyColumns {
        StudyColumns(afterDataset: [ResultColumn("source") { $0.source ?? "" }],
                     afterMetrics: [.number("rmse") { $0.reuse?.rmse }, .integer("parameters") { $0.reuse?.parameters }])
    }

    public static func describe(_ row: inout ResultRow, task: PlannedTask, outcome: TaskOutcome, plan: Plan) {
        if let m = outcome.measures(ReuseMeasures.self) { row.payload = ReuseRow(rmse: m.rmse, parameters: m.parameters) }
        guard let point = task.payload as? ReusePoint else { return }
        row.source = point.source
        row.mask = point.mode.rawValue
    }

    public static func summary(_ rows: [ResultRow], statistics: StatisticsSection) -> [String] { ReuseFinding.compute(rows).flatMap(\.summary) }

    public static func report(_ input: ReportInput, into m: inout Markup) { ReuseReport.section(input, into: &m) }
}

extension TaskExecutor {

    func reuse(_ task: PlannedTask, source sourceFile: SafeTensorsFile, target targetFile: SafeTensorsFile) throws -> TaskOutcome {
        let data = try splits(task.dataset, model: task.model)
        let source = try Checkpoint.network(from: sourceFile, path: task.dependencies[0])
        let scratch = try Checkpoint.network(from: targetFile, path: task.dependencies[1])
        // Same initialisation and batch order as the scratch run it is compared with: the reused
        // kernels are the only difference, so the gain is a paired comparison.
        guard let seedText = targetFile.metadata["layersweep.seed"], let seed = UInt64(seedText) else {
            throw RunError(path: task.dependencies[1], message: "checkpoint lacks its training seed")
        }
        let network = try build(task.model, for: data, seed: seed)
        guard let point = task.payload as? ReusePoint else { throw RunError(path: task.key, message: "a reuse task without its kernels") }
        let kernels = try point.units.map { name -> String in
            guard let unit = network.unit(name) else { throw MaskError.unknownUnit(name) }
            return Reuse.kernels(of: [unit])[0]
        }
        try Reuse.copy(kernels, from: source, into: network)
        let frozen: Set<String> = point.mode == .frozen ? Set(kernels) : []
        var outcome = try train(network, data: data, section: spec.training, seed: seed, hooks: TrainingHooks(frozen: frozen))
        outcome.measures = ReuseMeasures(rmse: try Reuse.rmse(kernels, source, scratch),
                                         parameters: kernels.reduce(0) { $0 + (network.parameter($1)?.value.count ?? 0) })
        return outcome
    }
}

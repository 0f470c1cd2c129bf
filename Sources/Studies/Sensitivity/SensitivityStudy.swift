import Datasets
import Foundation
import Models
import Procedures
import Rendering
import SweepCore
import SweepFile
import SweepPlan
import SweepRecords
import SweepReport

extension StudyName {
    /// Layer-wise pruning sensitivity: how much of each layer can be pruned, alone and without
    /// retraining, before the network's accuracy drops.
    public static let sensitivity = StudyName(rawValue: "sensitivity")
}

extension TaskKind {
    /// Prune one layer of a trained network to one sparsity and evaluate it, nothing retrained.
    public static let pruneLayer = TaskKind("pruneLayer")
}

/// The `sensitivity:` section.
public struct SensitivitySection: StudySection, SettingsSection, Equatable {
    public static let key = "sensitivity"

    /// Fractions of a layer's weights (or filters) removed, each in (0, 1].
    public var sparsities = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    /// Single weights by magnitude and/or whole filters by L1 norm.
    public var methods: [LayerPruning.Method] = [.unstructured]
    /// Also evaluate every pruned network after re-estimating its BN statistics on training
    /// batches (`evaluation.recalibration_batches`).
    public var recalibrate = false

    public init() {}

    public static let settings: [Setting<SensitivitySection>] = [
        Setting("sparsities", \.sparsities), Setting("methods", \.methods), Setting("recalibrate", \.recalibrate),
    ]
}

extension SweepSpec {
    /// The `sensitivity:` section (defaults when the file has none).
    public var sensitivity: SensitivitySection { section(SensitivitySection.self) }
}

/// Where a pruneLayer task sits on the study's axes; written into its result row.
public struct SensitivityPoint: DecodableTaskPayload, Equatable {
    public let sparsity: Double
    public let method: LayerPruning.Method
    public let recalibrated: Bool

    /// The `mask` column: `unstructured`, `structured`, with `+bn` when BN was re-estimated.
    public var variant: String { method.rawValue + (recalibrated ? "+bn" : "") }
}

/// `study: sensitivity`: per trained (or imported) network, each selected conv or linear layer
/// pruned alone to each sparsity by weight magnitude (or whole filters by L1 norm), evaluated
/// without retraining against the same network unpruned on the same test images.
public enum SensitivityStudy: ReportingStudy {
    public static let name = StudyName.sensitivity
    public static let sections: Set<String> = ["training", "layers", "evaluation", "sensitivity", "statistics"]
    public static let section: (any StudySection.Type)? = SensitivitySection.self
    public static let choices: [String: (what: String, valid: [String])] = ["methods": ("pruning method", LayerPruning.Method.allCases.map(\.rawValue))]
    public static let importsNetworks = true
    public static let importsGraphs = true
    public static let kinds = [TaskKindInfo(.pruneLayer, trains: false, compared: true)]
    public static let payload: (any DecodableTaskPayload.Type)? = SensitivityPoint.self

    /// A layer loses its point at the first sparsity whose mean Δ is at or below −this.
    public static let lossThreshold = 0.01

    public static func validate(_ spec: SweepSpec, tree: NodeTree) throws {
        let s = spec.sensitivity, at = { (key: String) -> [PathComponent] in [.key("sensitivity"), .key(key)] }
        guard !s.sparsities.isEmpty, s.sparsities.allSatisfy({ $0 > 0 && $0 <= 1 }) else {
            throw tree.error(at("sparsities"), "sparsities lists fractions of a layer to prune, each above 0 and at most 1 (e.g. [0.1, 0.5, 0.9])")
        }
        guard Set(s.sparsities.map(sparsityText)).count == s.sparsities.count else {
            throw tree.error(at("sparsities"), "sparsities lists a value twice (to 4 decimals): task keys would collide")
        }
        guard !s.methods.isEmpty, Set(s.methods).count == s.methods.count else {
            throw tree.error(at("methods"), "methods lists unstructured and/or structured, each once")
        }
        // (An imported graph's units are known, and checked, once rank 0 has read its file.)
        for model in spec.models where !spec.isGraph(model) {
            let units = LayerMatcher.select(try LayerMatcher.units(of: model), spec.layers)
            guard units.contains(where: prunable) else {
                throw tree.error([.key("layers")], "selects no conv or linear layer of \(model) to prune")
            }
        }
    }

    static func prunable(_ unit: MaskableUnit) -> Bool { unit.kind == .conv || unit.kind == .linear }

    /// `0.3000`: a sparsity as task keys write it.
    static func sparsityText(_ s: Double) -> String { FixedText.of(s, places: 4) }

    /// Per (dataset, model, network): its training (or load), a baseline evaluation, and one
    /// pruneLayer task per (selected layer, method, BN re-estimated or not, sparsity).
    public static func expand(_ spec: SweepSpec) throws -> [PlannedTask] {
        let s = spec.sensitivity
        var tasks: [PlannedTask] = []
        try Plan.forEachMeasuredNetwork(spec) { measured, units, evaluation, recalibration in
            tasks += measured.tasks
            for unit in units.filter(prunable) {
                for method in s.methods {
                    for recalibrated in s.recalibrate ? [false, true] : [false] {
                        for sparsity in s.sparsities {
                            let point = SensitivityPoint(sparsity: sparsity, method: method, recalibrated: recalibrated)
                            var t = measured.variant("\(measured.prefix)/\(unit.name)/\(point.variant)/\(sparsityText(sparsity))", .pruneLayer,
                                                     unit.name, nil, recalibrated ? evaluation(nil) + recalibration : evaluation(unit))
                            t.payload = point
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
        case .train:
            return try worker.trainTask(task, section: worker.spec.training)
        case .baseline:
            if worker.spec.isGraph(task.model) { return (try worker.evaluateGraphVariant(task, inputs: inputs, change: nil), nil) }
            return (try worker.evaluateVariant(task, inputs: inputs, unit: nil, everyLayer: false) { _, _ in 0 }, nil)
        case .pruneLayer:
            guard let point = task.payload as? SensitivityPoint, let unitName = task.unit else {
                throw RunError(path: task.key, message: "a pruneLayer task without its layer and sparsity")
            }
            let context = try worker.maskContext(task)
            if worker.spec.isGraph(task.model) {
                let outcome = try worker.evaluateGraphVariant(task, inputs: inputs, everyLayer: point.recalibrated) { program, unit in
                    let (pruned, count) = try GraphMasking.prune(unit, of: program, fraction: point.sparsity, method: point.method)
                    return (point.recalibrated ? try GraphMasking.recalibrate(pruned, context: context) : pruned, count)
                }
                return (outcome, nil)
            }
            let outcome = try worker.evaluateVariant(task, inputs: inputs, unit: unitName, everyLayer: point.recalibrated) { network, unit in
                guard let name = LayerPruning.weightName(of: unit), let weight = network.parameter(name) else {
                    throw RunError(path: task.key, message: "\(unit.name) has no weight to prune")
                }
                let pruned = LayerPruning.prune(weight.value, fraction: point.sparsity, method: point.method)
                if point.recalibrated, let data = context.recalibrationData {
                    Masking.recalibrateBatchNorm(network, on: data, batches: context.recalibrationBatches,
                                                 batchSize: context.batchSize, seed: context.seed)
                }
                return pruned
            }
            return (outcome, nil)
        default:
            throw RunError(path: task.key, message: "study sensitivity has no task kind \(task.kind)")
        }
    }

    public static func recalibrates(_ spec: SweepSpec) -> Bool { spec.sensitivity.recalibrate }

    public static func label(_ task: PlannedTask) -> String? {
        guard task.kind == .pruneLayer, let p = task.payload as? SensitivityPoint else { return nil }
        return "\(task.unit ?? "?") \(p.variant) \(sparsityText(p.sparsity))"
    }

    public static func columns(_ rows: [ResultRow]) -> StudyColumns {
        StudyColumns(afterMask: [.number("sparsity") { ($0.payload as? SensitivityPoint)?.sparsity }],
                     afterMetrics: [.number("delta_low", \.deltaLow), .number("delta_high", \.deltaHigh), .number("mcnemar_p", \.mcnemarP),
                                    .integer("params_pruned", \.paramsMasked), .integer("unit_index", \.unitIndex),
                                    ResultColumn("checkpoint") { $0.checkpoint ?? "" },
                                    .integer("images_worse", \.imagesWorse), .integer("images_better", \.imagesBetter), .integer("test_images", \.testImages)])
    }

    public static func describe(_ row: inout ResultRow, task: PlannedTask, outcome: TaskOutcome, plan: Plan) {
        guard task.kind == .pruneLayer else { return }
        row.unitIndex = UnitOrder.index(of: task.unit, in: task.model, spec: plan.spec)
        if let point = task.payload as? SensitivityPoint {
            row.mask = point.variant
            row.payload = point
        }
    }

    public static func summary(_ rows: [ResultRow], statistics: StatisticsSection) -> [String] {
        SensitivityCurves.compute(rows, statistics: statistics).map { c in
            let order = c.layers.sorted { ($0.firstLoss ?? 2, $0.index) < ($1.firstLoss ?? 2, $1.index) }
            let fragile = order.prefix(3).map { "\($0.layer) \($0.firstLoss.map { Format.fixed($0, 2) } ?? "never")" }.joined(separator: ", ")
            let robust = order.filter { $0.firstLoss == nil }.count
            let top = c.sparsities.last.map { Format.fixed($0, 2) } ?? "?"
            return "  \(c.dataset) \(c.model) \(c.variant): most sensitive (sparsity that costs \(Format.fixed(lossThreshold * 100, 0)) point) \(fragile); "
                + "\(robust) of \(c.layers.count) layers stay within it up to \(top)"
        }
    }

    public static func report(_ input: ReportInput, into m: inout Markup) { SensitivityReport.section(input, into: &m) }
}

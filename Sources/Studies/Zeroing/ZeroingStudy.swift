import Foundation
import Models
import PairedStatistics
import Procedures
import Rendering
import SweepCore
import SweepFile
import SweepPlan
import SweepRecords
import SweepReport

extension StudyName {
    /// Layer zeroing (Wang et al. 2020): which layers of a trained network can be masked.
    public static let zeroing = StudyName(rawValue: "zeroing")
}

/// `study: zeroing`. Per trained (or imported) network: a baseline evaluation and, per selected
/// unit and applicable mask, the network evaluated with that unit masked, nothing retrained.
public enum ZeroingStudy: ReportingStudy {
    public static let name = StudyName.zeroing
    public static let sections: Set<String> = ["training", "layers", "masks", "evaluation", "statistics"]
    public static let importsNetworks = true
    public static let importsGraphs = true

    /// Per (dataset, model, seed) a training task (or a load task per imported network), a
    /// baseline evaluation and one task per (selected unit, applicable mask).
    public static func expand(_ spec: SweepSpec) throws -> [PlannedTask] {
        var tasks: [PlannedTask] = []
        try Plan.forEachMeasuredNetwork(spec) { measured, units, evaluation, recalibration in
            tasks += measured.tasks
            for unit in units {
                for mask in spec.masks where mask.applies(to: unit.kind) {
                    tasks.append(measured.variant("\(measured.prefix)/\(unit.name)/\(mask.rawValue)", .mask, unit.name, mask,
                                                  mask == .zeroKernelRecalibrated ? evaluation(nil) + recalibration : evaluation(unit)))
                }
            }
        }
        return tasks
    }

    public static func execute(_ task: PlannedTask, on worker: TaskExecutor, inputs: TaskInputs) throws -> (TaskOutcome, Data?) {
        switch task.kind {
        case .train:
            return try worker.trainTask(task, section: worker.spec.training)
        case .baseline, .mask:
            // (A `where` on a case with two patterns would guard only the second.)
            let context = try worker.maskContext(task)
            let mask = task.mask
            if worker.spec.isGraph(task.model) {
                let outcome = try worker.evaluateGraphVariant(task, inputs: inputs, everyLayer: mask == .zeroKernelRecalibrated,
                                                              change: mask.map { mask in { try GraphMasking.apply(mask, unit: $1, to: $0, context: context) } })
                return (outcome, nil)
            }
            let outcome = try worker.evaluateVariant(task, inputs: inputs, unit: mask == nil ? nil : task.unit,
                                                     everyLayer: mask == .zeroKernelRecalibrated) { network, unit in
                try Masking.apply(mask!, to: unit, of: network, context: context)
            }
            return (outcome, nil)
        default:
            throw RunError(path: task.key, message: "study zeroing has no task kind \(task.kind)")
        }
    }

    public static func recalibrates(_ spec: SweepSpec) -> Bool { spec.masks.contains(.zeroKernelRecalibrated) }

    public static func label(_ task: PlannedTask) -> String? {
        task.kind == .mask ? "\(task.unit ?? "?") \(task.mask?.rawValue ?? "?")" : nil
    }

    public static func columns(_ rows: [ResultRow]) -> StudyColumns {
        StudyColumns(afterMetrics: [.number("delta_low", \.deltaLow), .number("delta_high", \.deltaHigh), .number("mcnemar_p", \.mcnemarP),
         .integer("params_masked", \.paramsMasked), .integer("unit_index", \.unitIndex), ResultColumn("checkpoint") { $0.checkpoint ?? "" },
         .integer("images_worse", \.imagesWorse), .integer("images_better", \.imagesBetter), .integer("test_images", \.testImages)])
    }

    public static func describe(_ row: inout ResultRow, task: PlannedTask, outcome: TaskOutcome, plan: Plan) {
        if task.kind == .mask { row.unitIndex = UnitOrder.index(of: task.unit, in: task.model, spec: plan.spec) }
    }

    /// Per (dataset, model, mask): how many units are trivial and which hurt most.
    public static func summary(_ rows: [ResultRow], statistics: StatisticsSection) -> [String] {
        ZeroingFinding.compute(rows, statistics: statistics).map { f in
            "  \(f.dataset) \(f.model) \(f.mask), \(f.meanDelta.count) units: \(f.callText); \(f.harmfulText)"
        }
    }

    /// units.csv: one line per (dataset, model, unit, mask) over the trained networks.
    public static func extraFiles(_ rows: [ResultRow], statistics: StatisticsSection) -> [(name: String, data: Data)] {
        [("units.csv", Data(UnitSummary.csv(UnitSummary.summaries(rows, settings: statistics)).utf8))]
    }

    public static func unitSummaries(_ rows: [ResultRow], statistics: StatisticsSection) -> [UnitSummary] {
        UnitSummary.summaries(rows, settings: statistics)
    }

    /// What each mask does, for the masks a run used.
    static let maskNotes: [MaskKind: String] = [
        .zeroKernel: "zeroKernel sets a convolution's (or linear layer's) weights to zero; the following BN still adds its constant.",
        .zeroBranch: "zeroBranch makes a residual block's branch output zero (only the shortcut remains).",
        .zeroKernelRecalibrated: "zeroKernelRecalibrated zeroes the kernel and re-estimates every BN's statistics on training batches.",
        .randomInit: "randomInit re-draws the weights from their initialiser.",
    ]

    public static func report(_ input: ReportInput, into m: inout Markup) {
        let spec = input.plan.spec
        let findings = ZeroingFinding.compute(input.rows, statistics: spec.statistics)
        m.element("h2", text: "Which layers matter?")
        // The answer first, one sentence per dataset, model and mask.
        let several = Set(findings.map { [$0.dataset, $0.model] }).count > 1
        for f in findings { m.element("p", ["class": "answer"], text: (several ? "\(f.dataset) · \(f.model): " : "") + f.answer) }
        let masks = spec.masks.map(\.rawValue)
        for dataset in spec.datasets.map(\.name) {
            m.element("h3", text: dataset)
            // Plain (shortcut-free) controls sit right after the ResNet of the same depth.
            for model in spec.models.sorted(by: ReportPage.modelOrder) {
                let panels = ZeroingHeatmap.panels(dataset: dataset, model: model, rows: input.rows, masks: masks, spec: spec)
                guard let first = panels.first else { continue }
                let base = first.baselines
                let baseText = base.isEmpty ? "baseline pending"
                    : "baseline accuracy \(Format.fixed(base.reduce(0, +) / Double(base.count), 4)) (mean of \(base.count))"
                m.element("h4", text: "\(model) · \(baseText)")
                m.element("div", ["class": "row"]) { m in
                    for panel in panels {
                        m.element("figure") { m in m.figure(named: "heatmap-\(dataset)-\(model)-\(panel.title)") { panel.svg(into: &$0) } }
                    }
                }
            }
        }
        if !findings.isEmpty {
            m.table(named: "zeroing-findings", attributes: ["class": "findings"],
                    header: ["dataset", "model", "mask", "units", "trivial / harmful / helpful / undecided", "harmful units (mean Δ)"],
                    rows: findings.map { f in
                        [f.dataset, f.model, f.mask, "\(f.meanDelta.count)", Statistics.Call.allCases.map { "\(f.calls[$0] ?? 0)" }.joined(separator: " / "), f.harmfulText]
                    })
            // Every unit, for a paper's table: the recipe's Δ, interval and call, and each network's call.
            let level = Format.percent(spec.statistics.level)
            for group in Dictionary(grouping: findings, by: { [$0.dataset, $0.model] }).sorted(by: { $0.key.joined() < $1.key.joined() }) {
                m.element("details") { m in
                    m.element("summary", text: "Every unit of \(group.key[1]) on \(group.key[0]): Δ, \(level) interval, calls")
                    let units = group.value.flatMap(\.units)
                    m.table(named: "zeroing-units-\(group.key[0])-\(group.key[1])", attributes: ["class": "findings"],
                            header: ["unit", "mask", "networks", "mean Δ", "\(level) interval", "call", "p (adjusted)", "each network"],
                            rows: units.map { u in
                                [u.layer, u.mask, "\(u.seeds)", Format.signed(u.deltaMean, 4),
                                 u.deltaLow.flatMap { l in u.deltaHigh.map { "[\(Format.signed(l, 4)), \(Format.signed($0, 4))]" } } ?? "—",
                                 u.call.rawValue, u.pAdjusted.map { String(format: "%.3g", $0) } ?? "—", u.networkCalls.map(\.rawValue).joined(separator: ", ")]
                            })
                }
            }
        }
        m.element("p", ["class": "note"]) { m in
            m.add("Each trained network is evaluated on the test set with one unit masked and nothing retrained. ")
            m.add("Δ accuracy = masked test accuracy − the same network's unmasked (baseline) test accuracy, averaged over its trained seeds: ")
            let st = spec.statistics, t = st.threshold, level = Format.percent(st.level)
            m.add("negative means the unit matters. A unit is trivial when its Δ lies within ±\(t) with \(level) confidence, harmful when it lies below −\(t), ")
            m.add("helpful when it lies above +\(t) (removing the unit improves accuracy), otherwise undecided. ")
            m.add("Two levels: each network's Δ has an interval over its test images (paired: the same images masked and unmasked; Bonett–Price; McNemar's exact test in results.csv); ")
            m.add("the recipe's interval combines the networks (seeds) with their test-set uncertainty (a random-effects combination, Student's t with one degree of freedom fewer than networks), ")
            m.add("so it is never narrower than one network's and, with one network, is that network's. ")
            m.add("\(level) intervals; calls over all units and masks of a dataset and model at once: ")
            switch st.correction {
            case .holm: m.add("Holm's correction keeps the chance of any wrong call below \(Format.percent(1 - st.level)). ")
            case .bh: m.add("Benjamini–Hochberg keeps the expected share of wrong calls below \(Format.percent(1 - st.level)). ")
            case .none: m.add("uncorrected (each unit's interval alone decides; with many units some calls are wrong by chance). ")
            }
            m.add("Set by the sweep file's statistics: section. ")
            for mask in spec.masks { if let note = maskNotes[mask] { m.add(note + " ") } }
            m.add("▸ marks units at a stage transition (resolution or width changes); rules separate stages.")
        }
    }
}

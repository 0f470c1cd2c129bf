import Foundation
import Studies

/// Progress lines and the closing summary of a sweep, as text.
public enum ProgressText {
    /// `1h02m`, `2m10s`, `4.1s`.
    public static func duration(_ seconds: Double) -> String { DurationText.of(seconds) }

    /// `[37/112] stage2.block1.conv2 zeroBranch acc 0.9012 Δ-0.0031 rank 3 4.1s · ETA 2m10s`
    public static func line(done: Int, total: Int, task: PlannedTask, record: TaskRecord, baseline: Double?, eta: Double?) -> String {
        var what: String
        switch task.kind {
        case .train: what = "\(task.dataset)/\(task.model)/seed\(task.seedIndex) train"
        case .load: what = "\(task.dataset)/\(task.model) load \(task.source ?? "?")"
        case .baseline: what = "\(task.dataset)/\(task.model)/seed\(task.seedIndex) baseline"
        case .mask: what = "\(task.unit ?? "?") \(task.mask?.rawValue ?? "?")"
        case .noop: what = task.key
        case .prune, .oneShot: what = "\(task.dataset)/\(task.model)/seed\(task.seedIndex) \(task.variant ?? "") round \(task.round ?? 0)"
        case .logits: what = "\(task.dataset)/\(task.model) teacher logits"
        case .student: what = "\(task.dataset) \(task.model) seed\(task.seedIndex) \(task.variant ?? "")"
        case .reuse: what = "\(task.source ?? "?") → \(task.dataset) \(task.unit ?? "?") \(task.variant ?? "") seed\(task.seedIndex)"
        }
        let o = record.outcome
        switch o.status {
        case .ok:
            if let acc = o.testAccuracy { what += " acc " + FixedText.of(acc, places: 4) }
            if let left = o.remainingFraction, task.kind != .train { what += " left " + FixedText.of(left, places: 4) }
            if ![.train, .load, .baseline, .logits, .noop].contains(task.kind), let acc = o.testAccuracy, let baseline {
                what += " Δ" + FixedText.of(acc - baseline, places: 4, plus: true)
            }
        default:
            what += " \(o.status.rawValue.uppercased())" + (o.error.map { ": \($0)" } ?? "")
        }
        let tail = eta.map { " · ETA \(duration($0))" } ?? ""
        return "[\(done)/\(total)] \(what) rank \(record.rank) \(duration(o.seconds))\(tail)"
    }

    /// The few rows that answer the study's question.
    public static func summary(rows: [ResultRow], study: SweepSpec.Study) -> [String] {
        switch study {
        case .zeroing: return zeroingSummary(rows)
        case .imp: return PruningCurve.compute(rows).flatMap(\.summary)
        case .distill: return DistillationTable.compute(rows).flatMap(\.summary)
        case .reuse: return ReuseFinding.compute(rows).flatMap(\.summary)
        case .noop: return []
        }
    }

    /// Per (dataset, model, mask): how many units are trivial and which hurt most.
    static func zeroingSummary(_ rows: [ResultRow]) -> [String] {
        ZeroingFinding.compute(rows).map { f in
            let worst = f.mostHarmful.map { "\($0.unit) \(String(format: "%+.3f", $0.delta))" }.joined(separator: ", ")
            return "  \(f.dataset) \(f.model) \(f.mask), \(f.meanDelta.count) units: \(f.callText); most harmful: \(worst)"
        }
    }
}

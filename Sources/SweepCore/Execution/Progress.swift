import Foundation
import Procedures
import SweepFile
import SweepPlan
import SweepRecords

/// Progress lines and the closing summary of a sweep, as text.
public enum ProgressText {
    /// `1h02m`, `2m10s`, `4.1s`.
    public static func duration(_ seconds: Double) -> String { DurationText.of(seconds) }

    /// `[37/112] stage2.block1.conv2 zeroBranch acc 0.9012 Δ-0.0031 rank 3 4.1s · 3m02s in, 12.2 tasks/min · ETA 2m10s`:
    /// the task, its time, the session's elapsed time and pace (`pace`: tasks finished this
    /// session, over `elapsed` seconds), and the estimate of what is left.
    public static func line(done: Int, total: Int, task: PlannedTask, record: TaskRecord, baseline: Double?, eta: Double?,
                            study: any SweepStudy.Type, elapsed: Double? = nil, pace: Int = 0) -> String {
        var what: String
        if let own = study.label(task) {
            what = own
        } else {
            switch task.kind {
            case .load: what = "\(task.dataset)/\(task.model) load \(task.checkpointFile ?? "?")"
            case .baseline: what = "\(task.dataset)/\(task.model)/seed\(task.seedIndex) baseline"
            case .mask: what = "\(task.unit ?? "?") \(task.mask?.rawValue ?? "?")"
            default: what = "\(task.dataset)/\(task.model)/seed\(task.seedIndex) \(task.kind)"
            }
        }
        let o = record.outcome
        switch o.status {
        case .ok:
            if let acc = o.testAccuracy { what += " acc " + FixedText.of(acc, places: 4) }
            if let measured = study.measuredText(o, task: task) { what += measured }
            if task.kind.compared, let acc = o.testAccuracy, let baseline {
                what += " Δ" + FixedText.of(acc - baseline, places: 4, plus: true)
            }
            if o.cached != nil { what += " (from the training store)" }
        default:
            what += " \(o.status.rawValue.uppercased())" + (o.error.map { ": \($0)" } ?? "")
        }
        var tail = ""
        if let elapsed, elapsed > 0, pace > 0 {
            tail += " · \(duration(elapsed)) in, \(FixedText.of(Double(pace) / elapsed * 60, places: 1)) tasks/min"
        }
        tail += eta.map { " · ETA \(duration($0))" } ?? ""
        return "[\(done)/\(total)] \(what) rank \(record.rank) \(duration(o.seconds))\(tail)"
    }

    /// The few rows that answer the study's question.
    public static func summary(rows: [ResultRow], study: any SweepStudy.Type, statistics: StatisticsSection) -> [String] { study.summary(rows, statistics: statistics) }
}

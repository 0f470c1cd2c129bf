import Foundation
import SweepFile
import SweepPlan

/// Everything the report is made from: the plan, the journal's records and the result rows.
public struct ReportInput: Sendable {
    public var plan: Plan
    public let records: [TaskRecord]
    public let rows: [ResultRow]
    public let hosts: [String]
    /// False when the journal lacks some planned tasks (a running or interrupted sweep).
    public var complete: Bool { rows.count >= plan.tasks.count }

    public init(plan: Plan, records: [TaskRecord]) {
        self.plan = plan
        let latest = Dictionary(records.map { ($0.key, $0) }, uniquingKeysWith: { _, b in b })
        self.records = latest.values.sorted { $0.started < $1.started }
        rows = ResultTable.rows(plan: plan, records: Array(latest.values))
        hosts = Array(Set(records.map(\.host).filter { !$0.isEmpty })).sorted()
    }
}

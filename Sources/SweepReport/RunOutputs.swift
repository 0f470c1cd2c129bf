import Foundation
import SweepCore
import SweepFile
import SweepRecords

/// A run's outputs: the results files (the data), then report.html (a view of the same rows).
public enum RunOutputs {
    public static func write(_ input: ReportInput, to run: RunDirectory, ranks: Int, started: Date, finished: Date) throws {
        try run.writeResults(ResultTable.Document(
            version: layersweepVersion, spec: input.plan.spec, started: started, finished: finished, complete: input.complete,
            ranks: ranks, hosts: input.hosts, counts: Dictionary(grouping: input.rows, by: \.status.rawValue).mapValues(\.count),
            rows: input.rows))
        try ReportPage.write(input, to: run)
    }
}

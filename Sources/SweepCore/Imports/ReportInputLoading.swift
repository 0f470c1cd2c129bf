import Foundation
import SweepFile
import SweepPlan
import SweepRecords

extension ReportInput {
    /// The report input of a run directory, from its sweep file and journal alone.
    public static func load(_ run: RunDirectory) throws -> ReportInput {
        let text = try run.storedSpecText()
        var spec = try SpecLoader.parse(text, file: run.specURL.path)
        try ImportedDatasets.read(&spec, recorded: run)
        try ImportedNetworks.hashFiles(&spec, run: run)
        let plan = try Plan.expand(spec)
        let records = FileManager.default.fileExists(atPath: run.journalURL.path) ? try Journal.read(run.journalURL, study: spec.recordedStudy).records : []
        return ReportInput(plan: plan, records: records)
    }
}

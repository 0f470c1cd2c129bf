import Foundation
import SweepCore
import XCTest

final class JournalResultsTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("journal-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(at: dir) }

    func record(_ key: String, _ kind: TaskKind, acc: Double?, status: TaskStatus = .ok, error: String? = nil) -> TaskRecord {
        var o = TaskOutcome(status: status, seconds: 1.5)
        o.testAccuracy = acc
        o.error = error
        return TaskRecord(key: key, kind: kind, outcome: o, rank: 1, host: "h", started: Date(timeIntervalSince1970: 0), finished: Date(timeIntervalSince1970: 2))
    }

    func testJournalAppendsReadsBackAndSurvivesATornLastLine() throws {
        let url = dir.appendingPathComponent("journal.jsonl")
        let header = JournalHeader(sweep: "s", specHash: "abc", version: "1")
        do {
            let journal = try Journal(url: url, header: header)
            try journal.append([record("a", .train, acc: 0.5), record("b", .mask, acc: 0.25)])
        }
        let handle = try FileHandle(forWritingTo: url)
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(#"{"key":"c","kin"#.utf8))  // a crash mid-write
        try handle.close()
        let (readHeader, records) = try Journal.read(url)
        XCTAssertEqual(readHeader, header)
        XCTAssertEqual(records.map(\.key), ["a", "b"])
        XCTAssertEqual(records[0].outcome.testAccuracy, 0.5)
        // Reopening appends after what is there (the torn tail stays an ignorable last line only
        // until the next append, which starts on a new line).
        try Data("garbage\n".utf8).write(to: dir.appendingPathComponent("bad.jsonl"))
        XCTAssertThrowsError(try Journal.read(dir.appendingPathComponent("bad.jsonl"))) { XCTAssertTrue("\($0)".contains("line 1")) }
    }

    func testRowsJoinBaselinesSortByKeyAndQuoteCSV() throws {
        let spec = try SpecLoader.parse("name: s\ndatasets: [synthetic]\nmodels: [resnet8]\nmasks: [zeroKernel]\n", file: "t")
        let plan = try Plan.expand(spec)
        let records = [
            record("synthetic/resnet8/seed0/stem.conv/zeroKernel", .mask, acc: 0.5),
            record("synthetic/resnet8/seed0/baseline", .baseline, acc: 0.75),
            record("synthetic/resnet8/seed0/fc/zeroKernel", .mask, acc: nil, status: .failed, error: "boom, \"bad\""),
        ]
        let rows = ResultTable.rows(plan: plan, records: records)
        XCTAssertEqual(rows.map(\.key), records.map(\.key).sorted())
        let masked = try XCTUnwrap(rows.first { $0.layer == "stem.conv" })
        XCTAssertEqual(masked.baselineAccuracy, 0.75)
        XCTAssertEqual(masked.deltaAccuracy, -0.25)
        let csv = ResultTable.csv(rows, study: .zeroing).split(separator: "\n")
        XCTAssertEqual(String(csv[0]), "key,study,kind,dataset,model,seed,layer,mask,status,test_accuracy,test_loss,baseline_accuracy,delta_accuracy,params_masked,error,seconds,rank,host")
        XCTAssertTrue(csv.contains { $0.contains(#","boom, ""bad""","#) }, "\(csv)")
    }

    func testRunDirectoryRefusesAnotherSweepsJournal() throws {
        let run = RunDirectory(dir.appendingPathComponent("run").path)
        try run.create(specText: "name: a\n", sweep: "a")
        let before = try Data(contentsOf: run.journalURL)
        XCTAssertThrowsError(try run.create(specText: "name: b\n", sweep: "b")) { XCTAssertTrue("\($0)".contains("another sweep ('a')"), "\($0)") }
        XCTAssertThrowsError(try run.create(specText: "name: a\n", sweep: "a")) { XCTAssertTrue("\($0)".contains("--resume"), "\($0)") }
        XCTAssertEqual(try Data(contentsOf: run.journalURL), before)
        XCTAssertEqual(try String(contentsOf: run.specURL, encoding: .utf8), "name: a\n")
    }
}

import Foundation
@testable import SweepCore
@testable import Studies
import StudyTestSupport
import SweepFile
@testable import SweepPlan
@testable import SweepRecords
import XCTest

final class JournalResultsTests: StudyTestCase {
    /// Row equality compares every stored field: a change to any one of them (the list has one
    /// per field, checked against the type's own fields) makes rows differ; NaNs equal NaNs.
    func testRowsDifferWhenAnyFieldDiffers() {
        var row = ResultRow(key: "d/m/seed0/u/zeroKernel", study: .zeroing, kind: .mask, dataset: "d", model: "m", seed: 0, layer: "u",
                            mask: "zeroKernel", status: .ok, testAccuracy: 0.5, testLoss: .nan, baselineAccuracy: 0.6, deltaAccuracy: -0.1,
                            paramsMasked: 9, seconds: 1, rank: 0, host: "h")
        (row.imagesWorse, row.imagesBetter, row.testImages, row.deltaLow, row.deltaHigh, row.mcnemarP) = (3, 1, 10, -0.2, 0, 0.5)
        let changes: [(inout ResultRow) -> Void] = [
            { $0.key += "x" }, { $0.study = .sensitivity }, { $0.kind = .baseline }, { $0.dataset += "x" }, { $0.source = "s" },
            { $0.model += "x" }, { $0.seed += 1 }, { $0.layer += "x" }, { $0.unitIndex = 4 }, { $0.mask += "x" }, { $0.status = .failed },
            { $0.testAccuracy = 0.7 }, { $0.testLoss = 1 }, { $0.baselineAccuracy = nil }, { $0.deltaAccuracy = 0 }, { $0.paramsMasked = 8 },
            { $0.deltaLow = -0.3 }, { $0.deltaHigh = 0.1 }, { $0.mcnemarP = 0.4 }, { $0.imagesWorse = 4 }, { $0.imagesBetter = 2 },
            { $0.testImages = 11 }, { $0.error = "e" }, { $0.checkpoint = "c" }, { $0.cached = "h2" }, { $0.seconds = 2 }, { $0.rank = 1 },
            { $0.host += "x" }, { $0.payload = ReuseRow(rmse: 0.5, parameters: 3) },
        ]
        XCTAssertEqual(changes.count, Mirror(reflecting: row).children.count, "one change per stored field")
        XCTAssertEqual(row, row)
        for (i, change) in changes.enumerated() {
            var other = row
            change(&other)
            XCTAssertNotEqual(row, other, "change \(i)")
        }
    }

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
        let (readHeader, records, rejected) = try Journal.read(url)
        XCTAssertEqual(rejected, [], "a torn last line is not a rejected record")
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
        let csv = ResultTable.csv(rows, study: ZeroingStudy.self).split(separator: "\n")
        XCTAssertEqual(String(csv[0]), "key,study,kind,dataset,model,seed,layer,mask,status,test_accuracy,test_loss,baseline_accuracy,delta_accuracy,delta_low,delta_high,mcnemar_p,params_masked,unit_index,checkpoint,images_worse,images_better,test_images,error,cached,seconds,rank,host")
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

    /// A crash or a full disk can cut the last record anywhere: at every byte offset, reopening
    /// repairs the tail, the next append starts a line of its own, and the journal reads back.
    func testTruncationAtEveryOffsetOfTheLastRecordIsRepairedOnReopen() throws {
        let url = dir.appendingPathComponent("journal.jsonl")
        let header = JournalHeader(sweep: "s", specHash: "abc", version: "1")
        do { try Journal(url: url, header: header).append([record("a", .train, acc: 0.5), record("b", .mask, acc: 0.25), record("c", .mask, acc: 0.125)]) }
        let full = try Data(contentsOf: url)
        let lastStart = full.dropLast().lastIndex(of: 0x0A)! + 1
        for cut in lastStart..<full.count {
            try full.prefix(cut).write(to: url)
            try Journal(url: url, header: header).append([record("d", .mask, acc: 1)])
            let (readHeader, records, rejected) = try Journal.read(url)
            XCTAssertEqual(rejected, [], "a torn last line is not a rejected record")
            XCTAssertEqual(readHeader, header)
            // Cutting only the newline leaves a whole record, which is kept.
            XCTAssertEqual(records.map(\.key), cut == full.count - 1 ? ["a", "b", "c", "d"] : ["a", "b", "d"], "cut at \(cut)")
            XCTAssertEqual(try Data(contentsOf: url).last, 0x0A)
        }
    }

    func testASecondClaimOnARunDirectoryNamesTheHolder() throws {
        do {
            let held = try RunLock(directory: dir)
            XCTAssertThrowsError(try RunLock(directory: dir)) {
                XCTAssertTrue("\($0)".contains("is in use by another sweep process (pid \(getpid()) on "), "\($0)")
            }
            withExtendedLifetime(held) {}
        }
        XCTAssertNoThrow(try RunLock(directory: dir), "released when its holder goes")
        let run = RunDirectory(dir.appendingPathComponent("run").path)
        let claim = try run.create(specText: "name: a\n", sweep: "a")
        XCTAssertThrowsError(try run.claimForResume()) { XCTAssertTrue("\($0)".contains("in use"), "\($0)") }
        XCTAssertThrowsError(try run.create(specText: "name: a\n", sweep: "a")) { XCTAssertTrue("\($0)".contains("in use"), "\($0)") }
        withExtendedLifetime(claim) {}
    }

    /// An `output:` pointing at someone's files (or at /) is refused before anything is written.
    func testForeignOrUnusableOutputDirectoriesAreRefused() throws {
        let foreign = dir.appendingPathComponent("foreign")
        try FileManager.default.createDirectory(at: foreign, withIntermediateDirectories: true)
        try Data("mine".utf8).write(to: foreign.appendingPathComponent("notes.txt"))
        XCTAssertThrowsError(try RunDirectory(foreign.path).create(specText: "name: a\n", sweep: "a")) {
            XCTAssertTrue("\($0)".contains("is not empty and holds no layersweep run (notes.txt)"), "\($0)")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: foreign.path).filter { $0 != RunLock.fileName }, ["notes.txt"])
        XCTAssertThrowsError(try RunDirectory("/").create(specText: "name: a\n", sweep: "a")) {
            XCTAssertTrue("\($0)".contains("/: ") && ("\($0)".contains("not empty") || "\($0)".contains("cannot")), "\($0)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: "/spec.yaml"))
        let file = dir.appendingPathComponent("afile")
        try Data("x".utf8).write(to: file)
        try FileManager.default.createSymbolicLink(atPath: dir.appendingPathComponent("dangling").path, withDestinationPath: "/nonexistent-\(UUID())")
        for (path, expected) in [(file.path, "afile: is a file, not a directory"), (file.path + "/sub", "afile: is a file, so no directory can be made under it"),
                                 (dir.appendingPathComponent("dangling").path, "dangling: is a symbolic link to something that does not exist"),
                                 ("/proc/layersweep-\(UUID())", "cannot create directory")] {
            XCTAssertThrowsError(try RunDirectory(path).create(specText: "name: a\n", sweep: "a"), path) {
                XCTAssertTrue("\($0)".contains(expected) && !"\($0)".contains("\n") && !"\($0)".contains("NSCocoa"), "\($0)")
            }
        }
        // An empty directory, or one left by an attempt at this same sweep that stopped before its journal, is fine.
        let empty = dir.appendingPathComponent("empty")
        try FileManager.default.createDirectory(at: empty.appendingPathComponent("checkpoints"), withIntermediateDirectories: true)
        try Data("name: a\n".utf8).write(to: empty.appendingPathComponent("spec.yaml"))
        XCTAssertNoThrow(try RunDirectory(empty.path).create(specText: "name: a\n", sweep: "a"))
    }
}

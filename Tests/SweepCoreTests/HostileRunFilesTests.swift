import EngineTestSupport
import Foundation
import PairedStatistics
@testable import Rendering
@testable import SweepCore
import Procedures
@testable import Studies
import StudyTestSupport
import SweepFile
@testable import SweepPlan
@testable import SweepRecords
import XCTest

/// What an edited journal, a hostile name or a careless override does to a run's files: numbers
/// are checked where they are read, names are made safe where they are written.
final class HostileRunFilesTests: StudyTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("hostile-run-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(at: dir) }

    let header = #"{"format":1,"journal":"layersweep","specHash":"abc","sweep":"s","version":"0.1.0"}"#

    /// A journal line with `outcome` (JSON) for task `key`.
    func line(_ key: String, _ outcome: String, rank: Int = 1) -> String {
        #"{"finished":"2026-12-01T00:00:02Z","host":"h","key":"\#(key)","kind":"mask","outcome":\#(outcome),"rank":\#(rank),"started":"2026-12-01T00:00:00Z"}"#
    }

    // MARK: - Journal numbers

    /// An edited journal: `"discordant": [-5, 1000000000000, 3]` crashed `--resume` and `sweep
    /// report` in McNemar's test (SIGILL); `testAccuracy: 7.4` gave a Δ of −7.27. Such lines are
    /// rejected, reported with their number and reason, and moved aside; the rest is kept.
    func testImpossibleJournalNumbersAreRejectedAndSetAside() throws {
        let url = dir.appendingPathComponent("journal.jsonl")
        let good = line("a", #"{"seconds":1,"status":"ok","testAccuracy":0.5,"discordant":[3,4,100]}"#)
        let bad: [(String, String)] = [
            (line("b", #"{"seconds":1,"status":"ok","testAccuracy":0.5,"discordant":[-5,1000000000000,3]}"#), "discordant"),
            (line("c", #"{"seconds":1,"status":"ok","testAccuracy":7.4}"#), "testAccuracy 7.4 is not a fraction"),
            (line("d", #"{"seconds":1,"status":"ok","checkpoint":"../../../etc/passwd"}"#), "is not a content hash"),
            (line("e", #"{"seconds":-3,"status":"ok"}"#), "seconds -3.0 is not a duration"),
            (line("f", #"{"seconds":1,"status":"ok","testLoss":"nan"}"#), "testLoss nan is not a loss"),
            (line("g", #"{"seconds":1,"status":"ok","paramsMasked":-1}"#), "paramsMasked -1 is negative"),
            (line("h", #"{"seconds":1,"status":"ok","measures":"imp","maskImages":[{"unit":0,"height":1000000000,"width":1000000000,"surviving":0,"bits":""}]}"#), "mask image"),
            (line("i", #"{"seconds":1,"status":"ok","measures":"imp","remainingFraction":3}"#), "remainingFraction 3.0"),
            (line("j", #"{"seconds":1,"status":"ok"}"#, rank: -2), "rank -2"),
            (line("k", #"{"seconds":1,"status":"ok","discordant":[1,2]}"#), "discordant"),
        ]
        let text = ([header, good] + bad.map(\.0) + [line("z", #"{"seconds":1,"status":"ok","testAccuracy":0.25}"#)]).joined(separator: "\n") + "\n"
        try text.write(to: url, atomically: true, encoding: .utf8)
        let (_, records, rejected) = try Journal.read(url, study: IterativePruningStudy.self)
        XCTAssertEqual(records.map(\.key), ["a", "z"])
        XCTAssertEqual(rejected.map(\.number), Array(3..<(3 + bad.count)))
        for (r, (_, reason)) in zip(rejected, bad) { XCTAssertTrue(r.reason.contains(reason), "line \(r.number): \(r.reason)") }

        try Journal.setAside(rejected, of: url)
        let (_, kept, none) = try Journal.read(url, study: IterativePruningStudy.self)
        XCTAssertEqual(kept.map(\.key), ["a", "z"])
        XCTAssertEqual(none, [])
        XCTAssertEqual(try String(contentsOf: url, encoding: .utf8), [header, good, line("z", #"{"seconds":1,"status":"ok","testAccuracy":0.25}"#)].joined(separator: "\n") + "\n")
        let aside = try String(contentsOf: dir.appendingPathComponent("journal.rejected.jsonl"), encoding: .utf8)
        XCTAssertTrue(aside.contains("# line 3: discordant") && aside.contains(bad[0].0), aside)
    }

    /// McNemar's test on counts no evaluation gives: NaN, not a trap; on a huge but valid count
    /// it takes about √n terms, not n.
    func testMcNemarOnImpossibleCountsIsNaNAndOnHugeOnesIsQuick() {
        XCTAssertTrue(Statistics.mcnemar(worse: -5, better: 10).isNaN)
        XCTAssertTrue(Statistics.mcnemar(worse: Int.max, better: 1).isNaN)
        XCTAssertTrue(Statistics.pairedInterval(worse: -1, better: 2, count: 3).low.isNaN)
        XCTAssertEqual(Statistics.mcnemar(worse: 500_000_000_000, better: 500_000_000_000), 1, accuracy: 1e-6)
        XCTAssertEqual(Statistics.mcnemar(worse: 1, better: 9), 22.0 / 1024, accuracy: 1e-12)
    }

    /// Random mutations of a valid journal (`LAYERSWEEP_FUZZ_CASES`, default 3,000, at most 60 s):
    /// every line decodes to a record whose numbers pass the checks, or is rejected; the rows
    /// built from what is kept never trap.
    func testRandomMutationsOfAJournalNeverCrashTheReaderOrTheRows() throws {
        let spec = try SpecLoader.parse("name: s\ndatasets: [synthetic]\nmodels: [resnet8]\nmasks: [zeroKernel]\n", file: "t")
        let plan = try Plan.expand(spec)
        let valid = [header,
                     line("synthetic/resnet8/seed0/baseline", #"{"checkpoint":"382a4e7863ca15022a774f453c0e9afd","seconds":1,"status":"ok","testAccuracy":0.75,"testLoss":0.5}"#),
                     line("synthetic/resnet8/seed0/stem.conv/zeroKernel", #"{"discordant":[30,4,1000],"paramsMasked":144,"seconds":0.5,"status":"ok","testAccuracy":0.724,"testLoss":0.9}"#),
                     line("synthetic/resnet8/seed0/fc/zeroKernel", #"{"error":"boom","seconds":0.5,"status":"failed"}"#)].joined(separator: "\n") + "\n"
        let url = dir.appendingPathComponent("journal.jsonl")
        let cases = Int(ProcessInfo.processInfo.environment["LAYERSWEEP_FUZZ_CASES"] ?? "") ?? 3000
        var mutator = FuzzMutator(seed: 7)
        let deadline = Date().addingTimeInterval(60)
        var (ran, kept, rejected) = (0, 0, 0)
        for _ in 0..<cases where Date() < deadline {
            let bytes = mutator.mutate(Data(valid.utf8), headerRange: header.utf8.count..<valid.utf8.count)
            try bytes.write(to: url)
            ran += 1
            guard let contents = try? Journal.read(url) else { continue }  // a broken header line: refused whole
            for r in contents.records { XCTAssertNil(r.outcome.problem) }
            kept += contents.records.count
            rejected += contents.rejected.count
            let rows = ResultTable.rows(plan: plan, records: contents.records)
            _ = UnitSummary.summaries(rows)
            _ = ResultTable.csv(rows, study: ZeroingStudy.self)
        }
        print("journal fuzz: \(ran) cases, \(kept) records kept, \(rejected) lines rejected, no crash")
        XCTAssertGreaterThan(rejected, 0)
    }

    // MARK: - Names where they go

    /// A dataset or file name that a spreadsheet would run (`=HYPERLINK(...)`, `+cmd|...`,
    /// `@SUM(...)`, a leading tab or CR) is written as text, with OWASP's leading quote; numbers,
    /// negative ones too, stay numbers.
    func testCSVCellsThatWouldRunAsFormulasAreText() throws {
        XCTAssertEqual(SafeText.csvField(#"=HYPERLINK("http://x","y")"#), #""'=HYPERLINK(""http://x"",""y"")""#)
        XCTAssertEqual(SafeText.csvField("+cmd|' /C calc'!A0"), "'+cmd|' /C calc'!A0")
        XCTAssertEqual(SafeText.csvField("@SUM(1+1)"), "'@SUM(1+1)")
        XCTAssertEqual(SafeText.csvField("-2+3"), "'-2+3")
        XCTAssertEqual(SafeText.csvField("\tx"), "'\tx")
        XCTAssertEqual(SafeText.csvField("\rx"), "\"'\rx\"")
        for number in ["-0.25", "-1e-05", "0.5", "-inf", "nan"] { XCTAssertEqual(SafeText.csvField(number), number) }

        let spec = try SpecLoader.parse("""
            name: s
            datasets: [{name: "=1+2", base: synthetic, classes: [0, 1, 2]}]
            models: [resnet8]
            masks: [zeroKernel]
            """, file: "t")
        let plan = try Plan.expand(spec)
        var outcome = TaskOutcome(status: .ok, seconds: 1)
        outcome.testAccuracy = 0.5
        let key = try XCTUnwrap(plan.tasks.first { $0.kind == .baseline }?.key)
        let rows = ResultTable.rows(plan: plan, records: [TaskRecord(key: key, kind: .baseline, outcome: outcome, rank: 0, host: "@host",
                                                                      started: Date(), finished: Date())])
        let csv = ResultTable.csv(rows, study: ZeroingStudy.self)
        XCTAssertTrue(csv.contains(",'=1+2,"), csv)
        XCTAssertTrue(csv.hasSuffix(",'@host\n"), csv)
        XCTAssertFalse(csv.contains(",=1+2,"), csv)
    }

    /// ESC, BEL and newlines in a name are shown as escapes on the terminal and in report.html:
    /// they can neither drive the terminal nor forge a line.
    func testControlCharactersAreShownEscaped() {
        XCTAssertEqual(SafeText.terminal("a\u{1B}]0;pwned\u{07}b\nc\r\u{85}\u{202E}"), "a\\e]0;pwned\\ab\\nc\\r\\u{85}\\u{202e}")
        XCTAssertEqual(SafeText.terminal("fashion-mnist/resnet20 ü"), "fashion-mnist/resnet20 ü")
        XCTAssertEqual(SafeText.terminalLines("usage\n  a\u{1B}b"), "usage\n  a\\eb")
        XCTAssertEqual(Markup.escape("<b>\u{1B}[31m</b>\n"), "&lt;b&gt;\\e[31m&lt;/b&gt;\n")
    }

    /// `output="runs/o<newline>seed: 7 #"` was copied into spec.yaml's comment line and ran with
    /// seed 7. An override is one line; each is written as a quoted scalar; an empty value (an
    /// unset shell variable) is an error, not the default.
    func testOverridesCannotInjectYAMLOrBeEmpty() throws {
        let text = "name: s\ndatasets: [synthetic]\nmodels: [resnet8]\n"
        XCTAssertThrowsError(try SpecOverrides.apply(["output=runs/o\nseed: 7 #"], to: text, file: "f.yaml")) {
            XCTAssertTrue("\($0)".contains("control character (U+000A)") && !"\($0)".contains("\n"), "\($0)")
        }
        XCTAssertThrowsError(try SpecOverrides.apply(["output=runs/o\u{2028}seed: 7"], to: text, file: "f.yaml"))
        for empty in ["training.epochs=", "seeds=  "] {
            XCTAssertThrowsError(try SpecOverrides.apply([empty], to: text, file: "f.yaml")) {
                XCTAssertTrue("\($0)".contains("has no value"), "\($0)")
            }
        }
        let applied = try SpecOverrides.apply(["output=runs/#x \" \\ é"], to: text, file: "f.yaml")
        XCTAssertEqual(applied.split(separator: "\n").first, #"# command-line overrides: "output=runs/#x \" \\ \u00E9""#)
        let spec = try SpecLoader.parse(applied, file: "f.yaml")
        XCTAssertEqual(spec.seed, 0)
        XCTAssertEqual(spec.output, "runs/#x \" \\ é")
    }

    /// An error in a field the overrides did not touch points at the file's own line (it pointed
    /// at a line of the re-serialised text, which the user never wrote).
    func testOverrideErrorsPointAtTheFilesOwnLines() throws {
        let path = dir.appendingPathComponent("s.yaml").path
        try "name: s\n\n\ndatasets: [synthetic]\nmodels: [resnet8]\n\n\nmasks: [zeroKernal]\n".write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try SpecLoader.load(path, overrides: ["seeds=2", "training.epochs=1"])) { error in
            XCTAssertTrue("\(error)".hasPrefix("\(path):8: masks"), "\(error)")
        }
    }

    // MARK: - A full disk

    /// Foundation reports a full disk as `NSCocoaErrorDomain Code=640`; the run tells the file,
    /// that nothing journaled is lost, and how to go on. (A real ENOSPC, from /dev/full.)
    func testAFullDiskIsToldWithThePathAndHowToResume() throws {
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: "/dev/full"))
        var failure: Error?
        do { try handle.write(contentsOf: Data(count: 4096)); try handle.synchronize() } catch { failure = error }
        let error = try XCTUnwrap(failure, "/dev/full accepted a write")
        let run = RunDirectory(dir.path)
        let told = "\(run.explainingWriteFailure(error, path: run.journalURL))"
        XCTAssertEqual(told, "\(run.journalURL.path): no space left on its device; every result journaled so far is kept: free space, then continue with: sweep run --resume \(run.url.path)")
        let other = NSError(domain: NSCocoaErrorDomain, code: CocoaError.fileWriteNoPermission.rawValue)
        XCTAssertEqual(run.explainingWriteFailure(other) as NSError, other, "other errors pass unchanged")
    }
}

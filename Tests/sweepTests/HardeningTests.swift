import Foundation
import Models
import TensorEngine
import StudyTestSupport
import XCTest

/// Hostile files and names against the real binary: each test is one finding of the second
/// hardening pass, reproduced as the user met it (`sweep eval`, `sweep run`, `--resume`,
/// `sweep report`, `sweep status`, `sweep compare`).
final class HardeningTests: StudyTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("hardening-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(at: dir) }

    /// A checkpoint of `model` for the synthetic task's 1x12x12 images in `classes` classes,
    /// `poison` applied to its tensors first.
    func checkpoint(_ name: String, model: String = "fcn-16-bn", classes: Int = 4, poison: (String, Tensor) -> Void = { _, _ in }) throws -> String {
        let network = Network.build(try ModelSpec(name: model, inputShape: [1, 12, 12], classes: classes), seed: 1)
        for (n, t) in network.stateTensors { poison(n, t) }
        let path = dir.appendingPathComponent(name).path
        try Checkpoint.file(of: network).write(to: URL(fileURLWithPath: path))
        return path
    }

    func assertOneLineError(_ r: (status: Int32, stdout: String, stderr: String), _ expected: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(r.status, 1, r.stderr, file: file, line: line)
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, "one line: \(r.stderr)", file: file, line: line)
        XCTAssertTrue(r.stderr.contains(expected), r.stderr, file: file, line: line)
    }

    /// `sweep eval` of a network with fewer classes than the data overflowed the heap (the loss
    /// wrote `g[label]` past the row); with more, it reported accuracy 0.0000 and exit 0.
    func testEvalRefusesANetworkWhoseClassesAreNotTheDatasets() throws {
        for classes in [2, 1000] {
            let path = try checkpoint("c\(classes).safetensors", classes: classes)
            let r = try SweepProcess.run(["eval", path, "--dataset", "synthetic", "--test-limit", "64"])
            assertOneLineError(r, "\(path): the network takes 1x12x12 inputs in \(classes) classes; synthetic has 1x12x12 in 4")
        }
    }

    /// NaN weights or a negative running variance in an imported network: `sweep eval` and
    /// `sweep run` refuse it on one line naming the tensor; the sweep makes no run directory
    /// (the network's rows were `ok` with a NaN loss, and pooled into units.csv).
    func testNonFiniteCheckpointsAreRefusedBeforeAnyWork() throws {
        let nan = try checkpoint("nan.safetensors") { name, t in if name == "fc1.weight" { t.data[5] = .nan } }
        let variance = try checkpoint("var.safetensors") { name, t in if name == "bn1.running_var" { t.data[0] = -1 } }
        assertOneLineError(try SweepProcess.run(["eval", nan, "--dataset", "synthetic", "--test-limit", "64"]),
                           "tensor 'fc1.weight' holds nan at index 5")
        let spec = dir.appendingPathComponent("imported.yaml").path
        for (file, expected) in [(nan, "tensor 'fc1.weight' holds nan"), (variance, "tensor 'bn1.running_var' holds a negative variance")] {
            try """
            name: imported
            datasets: [{name: synthetic, test_limit: 64}]
            models: [{name: fcn-16-bn, checkpoints: [\(file)]}]
            """.write(toFile: spec, atomically: true, encoding: .utf8)
            let out = dir.appendingPathComponent("run").path
            assertOneLineError(try SweepProcess.run(["run", spec, "--output", out]), expected)
            XCTAssertFalse(FileManager.default.fileExists(atPath: out), "refused before the run directory is made")
            assertOneLineError(try SweepProcess.run(["plan", spec]), expected)
        }
    }

    /// A tiny zeroing sweep on a derived dataset named `name`.
    func writeSweep(datasetName name: String, sweep: String = "hostile") throws -> String {
        let path = dir.appendingPathComponent("\(sweep).yaml").path
        try """
        name: \(sweep)
        datasets: [{name: "\(name)", base: synthetic, classes: [0, 1, 2, 3], train_limit: 128, test_limit: 64}]
        models: [fcn-16-bn]
        training: {epochs: 1, batch_size: 32}
        layers: [fc1]
        masks: [zeroKernel]
        """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// A dataset named `=HYPERLINK(...)` with ESC and BEL in it: results.csv and units.csv hold
    /// it as text (a leading quote), and neither the terminal (run, status, report) nor
    /// report.html gets a raw control character.
    func testHostileNamesReachNeitherASpreadsheetNorATerminalRaw() throws {
        let spec = try writeSweep(datasetName: #"=HYPERLINK(\"http://x\")\e]0;pwned\a"#)
        let out = dir.appendingPathComponent("run").path
        let run = try SweepProcess.run(["run", spec, "--output", out])
        XCTAssertEqual(run.status, 0, run.stderr)
        let status = try SweepProcess.run(["status", out])
        let report = try SweepProcess.run(["report", out])
        for (what, text) in [("run", run.stdout + run.stderr), ("status", status.stdout + status.stderr), ("report", report.stdout + report.stderr)] {
            XCTAssertFalse(text.unicodeScalars.contains { $0.value == 0x1B || $0.value == 0x07 }, "\(what): \(text)")
        }
        XCTAssertTrue(run.stderr.contains(#"\e]0;pwned\a"#), run.stderr)
        for file in ["results.csv", "units.csv"] {
            let csv = try String(contentsOfFile: "\(out)/\(file)", encoding: .utf8)
            XCTAssertTrue(csv.contains(#""'=HYPERLINK(""http://x"")"#), "\(file): \(csv)")
            XCTAssertFalse(csv.contains(",=HYPERLINK") || csv.contains("\n=HYPERLINK"), csv)
        }
        let html = try String(contentsOfFile: "\(out)/report.html", encoding: .utf8)
        XCTAssertFalse(html.unicodeScalars.contains { $0.value == 0x1B || $0.value == 0x07 })
        XCTAssertTrue(html.contains(#"\e]0;pwned\a"#))
    }

    /// An edited journal line (`"discordant": [-5, 1000000000000, 3]`, `testAccuracy: 7.4`)
    /// killed `--resume` and `sweep report` with SIGILL. Now `sweep report` and `sweep status`
    /// name the line, `--resume` moves it to journal.rejected.jsonl and runs its task again, and
    /// the table equals an untouched run's.
    func testAnEditedJournalLineIsSetAsideAndItsTaskRunsAgain() throws {
        let spec = try writeSweep(datasetName: "syn")
        let reference = dir.appendingPathComponent("reference").path
        XCTAssertEqual(try SweepProcess.run(["run", spec, "--output", reference]).status, 0)
        let out = dir.appendingPathComponent("run").path
        XCTAssertEqual(try SweepProcess.run(["run", spec, "--output", out]).status, 0)
        let journal = "\(out)/journal.jsonl"
        var lines = try String(contentsOfFile: journal, encoding: .utf8).split(separator: "\n").map(String.init)
        let mask = try XCTUnwrap(lines.firstIndex { $0.contains(#""kind":"mask""#) })
        let base = try XCTUnwrap(lines.firstIndex { $0.contains(#""kind":"baseline""#) })
        lines[mask] = lines[mask].replacingOccurrences(of: #""discordant":\[[0-9,]*\]"#, with: #""discordant":[-5,1000000000000,3]"#, options: .regularExpression)
        lines[base] = lines[base].replacingOccurrences(of: #""testAccuracy":[0-9.e-]*"#, with: #""testAccuracy":7.4"#, options: .regularExpression)
        try (lines.joined(separator: "\n") + "\n").write(toFile: journal, atomically: true, encoding: .utf8)

        let report = try SweepProcess.run(["report", out])
        XCTAssertEqual(report.status, 0, report.stderr)
        let status = try SweepProcess.run(["status", out])
        XCTAssertTrue(status.stdout.contains("2 journal lines are not task records (line \(min(mask, base) + 1), \(max(mask, base) + 1))"), status.stdout)
        let resumed = try SweepProcess.run(["run", "--resume", out])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stderr.contains("journal.jsonl:\(mask + 1): discordant [-5, 1000000000000, 3]"), resumed.stderr)
        XCTAssertTrue(resumed.stderr.contains("testAccuracy 7.4 is not a fraction"), resumed.stderr)
        let aside = try String(contentsOfFile: "\(out)/journal.rejected.jsonl", encoding: .utf8)
        XCTAssertEqual(aside.split(separator: "\n").count, 4, aside)
        func stable(_ run: String) throws -> [String] {
            try String(contentsOfFile: "\(run)/results.csv", encoding: .utf8).split(separator: "\n").map { line in
                line.split(separator: ",", omittingEmptySubsequences: false).dropLast(3).joined(separator: ",")
            }
        }
        XCTAssertEqual(try stable(out), try stable(reference))
        let finished = try SweepProcess.run(["status", out])
        XCTAssertTrue(finished.stdout.contains("tasks journaled, finished (report: "), finished.stdout)
        XCTAssertFalse(finished.stdout.contains("--resume"), finished.stdout)
    }

    /// `sweep compare` on a zeroing run with no results yet said it is not a zeroing run.
    func testCompareOfARunWithoutResultsSaysSo() throws {
        let spec = try writeSweep(datasetName: "syn")
        let out = dir.appendingPathComponent("run").path
        XCTAssertEqual(try SweepProcess.run(["run", spec, "--output", out]).status, 0)
        let journal = "\(out)/journal.jsonl"
        let header = try String(contentsOfFile: journal, encoding: .utf8).split(separator: "\n")[0]
        try (header + "\n").write(toFile: journal, atomically: true, encoding: .utf8)
        XCTAssertEqual(try SweepProcess.run(["report", out]).status, 0)
        let r = try SweepProcess.run(["compare", out, out, "--output", dir.appendingPathComponent("c.html").path])
        assertOneLineError(r, "has no mask results yet")
    }

    /// A full disk under the run directory (a 1 MB tmpfs): one line naming the file and how to
    /// go on, every journaled result kept; with space again, `--resume` completes the table.
    /// Needs root to mount (CI runs as root); skipped, loudly, elsewhere.
    func testAFullDiskStopsWithOneLineAndResumeCompletes() throws {
        let mount = dir.appendingPathComponent("small")
        try FileManager.default.createDirectory(at: mount, withIntermediateDirectories: true)
        guard shell("mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs", mount.path) == 0 else {
            throw XCTSkip("SKIPPED: cannot mount a tmpfs here (not root?)")
        }
        defer { _ = shell("umount", "-l", mount.path) }
        let spec = dir.appendingPathComponent("full.yaml").path
        try """
        name: full
        datasets: [{name: synthetic, train_limit: 128, test_limit: 64}]
        models: [fcn-64x2-bn]
        seeds: 3
        training: {epochs: 1, batch_size: 32}
        masks: [zeroKernel]
        """.write(toFile: spec, atomically: true, encoding: .utf8)
        let out = mount.appendingPathComponent("run").path
        let r = try SweepProcess.run(["run", spec, "--output", out])
        XCTAssertEqual(r.status, 1, r.stderr)
        let last = r.stderr.split(separator: "\n").last.map(String.init) ?? ""
        XCTAssertTrue(last.contains("no space left on its device; every result journaled so far is kept: free space, then continue with: sweep run --resume \(out)"), r.stderr)
        XCTAssertTrue(last.hasPrefix("Error: \(out)/"), last)
        XCTAssertFalse(r.stderr.contains("NSCocoaErrorDomain"), r.stderr)
        let journaled = try String(contentsOfFile: "\(out)/journal.jsonl", encoding: .utf8).split(separator: "\n").count
        XCTAssertEqual(shell("mount", "-o", "remount,size=64m", mount.path), 0)
        let resumed = try SweepProcess.run(["run", "--resume", out])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stderr.contains("(\(journaled - 1) journaled before"), "nothing journaled was lost: \(resumed.stderr)")
    }

    func shell(_ arguments: String...) -> Int32 {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = arguments
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        do { try p.run() } catch { return -1 }
        p.waitUntilExit()
        return p.terminationStatus
    }
}

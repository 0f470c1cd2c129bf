import Foundation
import StudyTestSupport
import XCTest

/// What a careless or hostile user can do to a run, with the real binary and launcher: two
/// processes on one directory, signals to `mpirun`, a drain, failed tasks, unusable outputs.
/// Each test says how it launches, e.g. `mpirun -n 3 --oversubscribe sweep run FILE`.
final class SafetyTests: StudyTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("safety-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(at: dir) }

    /// A sweep of a few seconds: long enough to be interrupted mid-way.
    func writeSpec(name: String = "safety") throws -> String {
        let path = dir.appendingPathComponent("\(name).yaml").path
        try """
        name: \(name)
        datasets:
          - {name: synthetic, train_limit: 512, test_limit: 256}
        models: [resnet20]
        seeds: 4
        training: {epochs: 3, batch_size: 32, learning_rate: 0.05}
        masks: [zeroKernel, zeroBranch]
        """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func journalLines(_ runDir: String) -> Int {
        (try? String(contentsOfFile: "\(runDir)/journal.jsonl", encoding: .utf8))?.split(separator: "\n").count ?? 0
    }

    /// results.csv without seconds, rank and host.
    func stableCSV(_ runDir: String) throws -> [String] {
        try String(contentsOfFile: "\(runDir)/results.csv", encoding: .utf8).split(separator: "\n").map { line in
            var fields = line[...]
            for _ in 0..<3 { if let comma = fields.lastIndex(of: ",") { fields = fields[..<comma] } }
            return String(fields)
        }
    }

    /// Starts `process` and waits until its run directory has `lines` journal lines.
    func start(_ process: Process, journalOf runDir: String, lines: Int) throws {
        process.standardOutput = FileHandle.nullDevice
        let deadline = Date().addingTimeInterval(120)
        try process.run()
        while process.isRunning, journalLines(runDir) < lines, Date() < deadline { usleep(5_000) }
    }

    /// Every journaled task appears once.
    func assertNoTaskJournaledTwice(_ runDir: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let keys = try String(contentsOfFile: "\(runDir)/journal.jsonl", encoding: .utf8).split(separator: "\n").dropFirst()
            .compactMap { line in line.range(of: #""key":"[^"]*""#, options: .regularExpression).map { String(line[$0]) } }
        XCTAssertEqual(Set(keys).count, keys.count, "no task journaled twice", file: file, line: line)
    }

    /// `sweep run FILE --output R` twice at once, and `sweep run --resume R` while it runs: the
    /// second process exits non-zero at once, naming the holder; the first finishes intact.
    func testASecondProcessOnARunDirectoryIsRefusedAtOnce() throws {
        let spec = try writeSpec()
        let runDir = dir.appendingPathComponent("run").path
        let first = SweepProcess.process(["run", spec, "--output", runDir, "-j", "2"])
        first.standardError = FileHandle.nullDevice
        try start(first, journalOf: runDir, lines: 2)
        for arguments in [["run", spec, "--output", runDir], ["run", "--resume", runDir]] {
            let second = try SweepProcess.run(arguments)
            XCTAssertEqual(second.status, 1, "\(arguments): \(second.stderr)")
            XCTAssertTrue(second.stderr.contains("is in use by another sweep process (pid \(first.processIdentifier) on "), second.stderr)
            XCTAssertEqual(second.stderr.split(separator: "\n").count, 1, second.stderr)
        }
        XCTAssertTrue(first.isRunning, "the refused processes did not disturb the run")
        first.waitUntilExit()
        XCTAssertEqual(first.terminationStatus, 0)
        XCTAssertEqual(try stableCSV(runDir).count, 1 + 4 * 31)
        try assertNoTaskJournaledTwice(runDir)
    }

    /// SIGTERM or SIGINT to `mpirun -n 3 --oversubscribe sweep run FILE`: every rank is gone
    /// within a second of mpirun returning, nothing is journaled after, and `--resume` completes
    /// the table of an uninterrupted run.
    func testSignalsToMpirunEndEveryRankAndResumeCompletesTheTable() throws {
        let spec = try writeSpec()
        let reference = dir.appendingPathComponent("reference").path
        XCTAssertEqual(try SweepProcess.run(["run", spec, "--output", reference, "-j", "2"]).status, 0)
        for signal in [SIGTERM, SIGINT] {
            let runDir = dir.appendingPathComponent("run-\(signal)").path
            let job = SweepProcess.process(["run", spec, "--output", runDir], mpi: 3)
            job.standardError = FileHandle.nullDevice
            try start(job, journalOf: runDir, lines: 8)
            guard job.isRunning else { throw XCTSkip("SKIPPED: the sweep finished before it could be interrupted") }
            let ranks = SweepProcess.ranks(of: job.processIdentifier)
            XCTAssertEqual(ranks.count, 3)
            kill(job.processIdentifier, signal)
            job.waitUntilExit()
            XCTAssertNotEqual(job.terminationStatus, 0)
            let linesAtExit = journalLines(runDir)
            let deadline = Date().addingTimeInterval(1)
            while ranks.contains(where: SweepProcess.isAlive), Date() < deadline { usleep(10_000) }
            XCTAssertEqual(ranks.filter(SweepProcess.isAlive), [], "signal \(signal): ranks outlived mpirun by more than a second")
            XCTAssertEqual(journalLines(runDir), linesAtExit, "nothing journaled after mpirun returned")
            XCTAssertLessThan(linesAtExit - 1, 4 * 31, "the sweep was interrupted")
            let resumed = try SweepProcess.run(["run", "--resume", runDir, "-j", "2"])
            XCTAssertEqual(resumed.status, 0, resumed.stderr)
            XCTAssertEqual(try stableCSV(runDir), try stableCSV(reference))
            try assertNoTaskJournaledTwice(runDir)
        }
    }

    /// SIGINT (Ctrl-C) to `sweep run FILE -j 2` without a launcher: one line saying how to go on,
    /// exit status 130, a journal that resumes.
    func testControlCWithoutALauncherSaysHowToContinue() throws {
        let spec = try writeSpec()
        let runDir = dir.appendingPathComponent("run").path
        let job = SweepProcess.process(["run", spec, "--output", runDir, "-j", "2"])
        let err = Pipe()
        job.standardError = err
        try start(job, journalOf: runDir, lines: 4)
        kill(job.processIdentifier, SIGINT)
        job.waitUntilExit()
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertEqual(job.terminationStatus, 130, text)
        XCTAssertTrue(text.contains("interrupted by SIGINT") && text.contains("continue with: sweep run --resume \(runDir)"), text)
        XCTAssertEqual(try SweepProcess.run(["run", "--resume", runDir, "-j", "2"]).status, 0)
        try assertNoTaskJournaledTwice(runDir)
    }

    /// SIGUSR1 to `mpirun -n 3 --oversubscribe sweep run FILE` (mpirun forwards it): running
    /// tasks finish, the job exits 75 with results written, and the resume completes the table.
    func testADrainUnderMpirunExits75AndResumes() throws {
        let spec = try writeSpec()
        let runDir = dir.appendingPathComponent("run").path
        let job = SweepProcess.process(["run", spec, "--output", runDir], mpi: 3)
        let err = Pipe()
        job.standardError = err
        try start(job, journalOf: runDir, lines: 3)
        guard job.isRunning else { throw XCTSkip("SKIPPED: the sweep finished before it could be drained") }
        kill(job.processIdentifier, SIGUSR1)
        job.waitUntilExit()
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertEqual(job.terminationStatus, 75, text)
        XCTAssertTrue(text.contains("drained on SIGUSR1"), text)
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(runDir)/results.csv"))
        let resumed = try SweepProcess.run(["run", "--resume", runDir, "-j", "2"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertEqual(try stableCSV(runDir).count, 1 + 4 * 31)
        try assertNoTaskJournaledTwice(runDir)
    }

    /// A sweep whose tasks all fail (its dataset's files are damaged) exits non-zero with the count.
    func testFailedTasksMakeTheExitStatusNonZero() throws {
        let data = dir.appendingPathComponent("data")
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
        for name in ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"] {
            try Data([0, 0, 8, 1, 0, 0, 0, 9]).write(to: data.appendingPathComponent(name))
        }
        let spec = dir.appendingPathComponent("bad.yaml").path
        try "name: bad\ndatasets: [{name: tiny, data_dir: \(data.path)}]\nmodels: [fcn-8]\nseeds: 2\n".write(toFile: spec, atomically: true, encoding: .utf8)
        let r = try SweepProcess.run(["run", spec, "--output", dir.appendingPathComponent("run").path])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("Error: 2 tasks failed") && r.stderr.contains("--retry-failed"), r.stderr)
    }

    /// Unusable outputs and out-of-range flags are one line, a non-zero exit, before any work.
    func testUnusableOutputsAndFlagsAreOneLineBeforeAnyWork() throws {
        let spec = try writeSpec()
        let file = dir.appendingPathComponent("afile").path
        try "x".write(toFile: file, atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: dir.appendingPathComponent("dangling").path, withDestinationPath: "/nonexistent-\(UUID())")
        let foreign = dir.appendingPathComponent("foreign")
        try FileManager.default.createDirectory(at: foreign, withIntermediateDirectories: true)
        try "mine".write(to: foreign.appendingPathComponent("notes.txt"), atomically: true, encoding: .utf8)
        let cases: [([String], String)] = [
            (["run", spec, "--output", file], "afile: is a file, not a directory"),
            (["run", spec, "--output", file + "/run"], "afile: is a file, so no directory can be made under it"),
            (["run", spec, "--output", dir.appendingPathComponent("dangling").path], "is a symbolic link to something that does not exist"),
            (["run", spec, "--output", "/proc/layersweep-run"], "/proc/layersweep-run: cannot create directory"),
            (["run", spec, "--output", foreign.path], "is not empty and holds no layersweep run (notes.txt)"),
            (["run", spec, "--threads", "100000"], "--threads must be between 1 and"),
            (["run", spec, "-j", "100000"], "-j must be between 1 and"),
            (["train", "--model", "resnet8", "--dataset", "synthetic", "-o", "/nonexistent-dir/m.safetensors"], "/nonexistent-dir: no such directory"),
            (["train", "--model", "resnet8", "--dataset", "synthetic", "-o", dir.path], "is a directory; give a file name"),
            (["train", "--model", "resnet8", "--dataset", "synthetic", "--momentum=-5"], "--momentum must be at least 0 and below 1"),
            (["eval", file, "--dataset", "synthetic", "--batch-size", "0"], "--batch-size must be between 1 and 65536"),
        ]
        for (arguments, expected) in cases {
            let r = try SweepProcess.run(arguments)
            XCTAssertNotEqual(r.status, 0, "\(arguments)")
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, "\(arguments): one line: \(r.stderr)")
            XCTAssertTrue(r.stderr.contains(expected) && !r.stderr.contains("NSCocoaErrorDomain"), "\(arguments): \(r.stderr)")
            XCTAssertFalse(r.stderr.contains("epoch"), "\(arguments): failed before training")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: foreign.path).filter { $0 != "run.lock" }, ["notes.txt"])
    }

    /// `kill -9` of `sweep run FILE` in the middle of a training that has written an epoch
    /// snapshot: `--resume` continues that training from the snapshot, and its checkpoint and the
    /// whole table are bit-identical to an uninterrupted run. A damaged snapshot, or one that
    /// another sweep's training (another learning rate, the same task key) left there, is dropped
    /// (the training restarts from scratch) with the same end result.
    func testAKilledTrainingResumesFromItsEpochSnapshotWithTheSameBits() throws {
        let spec = try SweepProcess.trainingSpec("snap", epochs: 4, in: dir)
        func sweep(_ arguments: [String]) -> Process {
            let p = SweepProcess.process(arguments + ["--threads", "1"])
            p.environment?["LAYERSWEEP_SNAPSHOT_SECONDS"] = "0"
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            return p
        }
        let reference = dir.appendingPathComponent("reference").path
        let full = sweep(["run", spec, "--output", reference])
        try full.run()
        full.waitUntilExit()
        XCTAssertEqual(full.terminationStatus, 0)
        /// Runs `spec` into `runDir` until its first epoch snapshot, then kills it; the snapshot's file name.
        func killedAfterASnapshot(_ spec: String, _ runDir: String) throws -> String {
            let snapshots = "\(runDir)/snapshots"
            let job = sweep(["run", spec, "--output", runDir])
            try job.run()
            let deadline = Date().addingTimeInterval(120)
            func finished() -> [String] { ((try? FileManager.default.contentsOfDirectory(atPath: snapshots)) ?? []).filter { $0.hasSuffix(".safetensors") } }
            while job.isRunning, Date() < deadline, finished().isEmpty { usleep(5_000) }
            guard job.isRunning else { throw XCTSkip("SKIPPED: the training ended before it could be killed") }
            kill(job.processIdentifier, SIGKILL)
            job.waitUntilExit()
            let stored = finished()
            XCTAssertEqual(stored.count, 1)
            return stored[0]
        }
        let otherSpec = dir.appendingPathComponent("other.yaml").path
        try String(contentsOfFile: spec, encoding: .utf8).replacingOccurrences(of: "learning_rate: 0.05", with: "learning_rate: 0.01")
            .write(toFile: otherSpec, atomically: true, encoding: .utf8)
        for change in ["none", "damaged", "foreign"] {
            let runDir = dir.appendingPathComponent("run-\(change)").path
            let snapshots = "\(runDir)/snapshots"
            let stored = try killedAfterASnapshot(spec, runDir)
            if change == "damaged" { try Data("torn".utf8).write(to: URL(fileURLWithPath: "\(snapshots)/\(stored)")) }
            if change == "foreign" {
                let otherRun = dir.appendingPathComponent("other").path
                let theirs = try killedAfterASnapshot(otherSpec, otherRun)
                XCTAssertEqual(theirs, stored, "the same task key names the same snapshot file")
                try FileManager.default.removeItem(atPath: "\(snapshots)/\(stored)")
                try FileManager.default.copyItem(atPath: "\(otherRun)/snapshots/\(theirs)", toPath: "\(snapshots)/\(stored)")
            }
            let resumed = try SweepProcess.run(["run", "--resume", runDir, "--threads", "1"])
            XCTAssertEqual(resumed.status, 0, resumed.stderr)
            let said = ["none": "resumed from its epoch snapshot after epoch", "damaged": "unreadable epoch snapshot",
                        "foreign": "epoch snapshot discarded (was made by a training with other hyperparameters"][change]!
            XCTAssertTrue(resumed.stderr.contains(said), resumed.stderr)
            XCTAssertFalse(resumed.stderr.contains("loss 0.0000"), "no figures for the epochs a resumed training skips: \(resumed.stderr)")
            XCTAssertEqual(try stableCSV(runDir), try stableCSV(reference))
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: "\(runDir)/checkpoints"),
                           try FileManager.default.contentsOfDirectory(atPath: "\(reference)/checkpoints"), "the same checkpoint bits")
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: snapshots), [], "snapshots go when their training is done")
        }
    }

    /// `mpirun -n 3 --oversubscribe sweep run FILE` whose one training runs on a gang of all
    /// three ranks; `kill -9` of gang member rank 2 after an epoch snapshot ends the job (Open MPI
    /// aborts it), and `sweep run --resume` continues the training from the snapshot in one
    /// process: the table and the checkpoint bits of an uninterrupted single-process run.
    func testAKilledGangMemberResumesFromTheEpochSnapshotWithTheSameBits() throws {
        let spec = try SweepProcess.trainingSpec("gangsnap", epochs: 6, in: dir)
        let reference = dir.appendingPathComponent("reference").path
        XCTAssertEqual(try SweepProcess.run(["run", spec, "--output", reference, "--threads", "1"]).status, 0)
        let runDir = dir.appendingPathComponent("gang").path
        let job = SweepProcess.process(["run", spec, "--output", runDir], mpi: 3)
        job.environment?["LAYERSWEEP_SNAPSHOT_SECONDS"] = "0"
        job.environment?["LAYERSWEEP_GANG_MIN_SECONDS"] = "0"
        let errors = dir.appendingPathComponent("gang.err")
        _ = FileManager.default.createFile(atPath: errors.path, contents: nil)
        job.standardOutput = FileHandle.nullDevice
        job.standardError = try FileHandle(forWritingTo: errors)
        try job.run()
        let snapshots = "\(runDir)/snapshots"
        func stored() -> [String] { ((try? FileManager.default.contentsOfDirectory(atPath: snapshots)) ?? []).filter { $0.hasSuffix(".safetensors") } }
        let deadline = Date().addingTimeInterval(120)
        while job.isRunning, Date() < deadline, stored().isEmpty { usleep(5_000) }
        let ranks = SweepProcess.ranks(of: job.processIdentifier)
        guard job.isRunning, ranks.count == 3 else { throw XCTSkip("SKIPPED: the training ended before a gang member could be killed") }
        kill(ranks[2], SIGKILL)
        job.waitUntilExit()
        XCTAssertNotEqual(job.terminationStatus, 0, "mpirun reports the killed rank")
        let log = try String(contentsOf: errors, encoding: .utf8)
        XCTAssertTrue(log.contains("training on a gang of 3 ranks"), log)
        XCTAssertEqual(stored().count, 1, "the snapshot outlives the job")
        let resumed = try SweepProcess.run(["run", "--resume", runDir, "--threads", "1"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stderr.contains("resuming from its epoch snapshot"), resumed.stderr)
        XCTAssertEqual(try stableCSV(runDir), try stableCSV(reference))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: "\(runDir)/checkpoints"),
                       try FileManager.default.contentsOfDirectory(atPath: "\(reference)/checkpoints"), "the same checkpoint bits")
    }
}

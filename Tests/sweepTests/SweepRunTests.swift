import Foundation
import StudyTestSupport
import XCTest

/// `sweep run` with the real launchers: one process, threads, and mpirun. Each test says how
/// it launches (the libEnsemble way): e.g. `mpirun -n 5 --oversubscribe sweep run FILE`.
final class SweepRunTests: StudyTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("sweeprun-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(at: dir) }

    func process(_ arguments: [String], mpi ranks: Int? = nil) -> Process { SweepProcess.process(arguments, mpi: ranks) }

    @discardableResult
    func run(_ arguments: [String], mpi ranks: Int? = nil) throws -> (status: Int32, stdout: String, stderr: String) {
        try SweepProcess.run(arguments, mpi: ranks)
    }

    func writeSpec(name: String = "small", model: String = "resnet8", seeds: Int = 2, extra: String = "") throws -> String {
        let path = dir.appendingPathComponent("\(name).yaml").path
        try """
        name: \(name)
        datasets:
          - {name: synthetic, train_limit: 256, test_limit: 256}
        models: [\(model)]
        seeds: \(seeds)
        training: {epochs: 2, batch_size: 32, learning_rate: 0.05}
        masks: [zeroKernel, zeroBranch, zeroKernelRecalibrated, randomInit]
        evaluation: {recalibration_batches: 2}
        \(extra)
        """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// results.csv without its last three columns (seconds, rank, host), which depend on the run.
    func stableCSV(_ runDir: String) throws -> [String] {
        let text = try String(contentsOfFile: "\(runDir)/results.csv", encoding: .utf8)
        return text.split(separator: "\n").map { line in
            var fields = line[...]
            for _ in 0..<3 { if let comma = fields.lastIndex(of: ",") { fields = fields[..<comma] } }
            return String(fields)
        }
    }

    /// The same rows and checkpoint bits from one process, threads and MPI ranks, with the
    /// trainings on gangs wherever ranks are spare (LAYERSWEEP_GANG_MIN_SECONDS=0 gangs even
    /// these tiny trainings): `sweep run -j 3`, `mpirun -n 2, 3, 5 --oversubscribe sweep run FILE`.
    func testSameResultsWithOneProcessThreadsAndMPIRanks() throws {
        let spec = try writeSpec()
        let single = dir.appendingPathComponent("single").path
        XCTAssertEqual(try run(["run", spec, "--output", single]).status, 0)                    // sweep run FILE
        let reference = try stableCSV(single)
        let checkpoints = try FileManager.default.contentsOfDirectory(atPath: "\(single)/checkpoints").sorted()
        XCTAssertEqual(reference.count, 1 + 2 * 28)  // per seed: train, baseline, 8 + 3 + 7 + 8 masks
        XCTAssertEqual(checkpoints.count, 2)
        let cases: [(String, [String], Int?, gangs: Bool)] = [("j2", ["-j", "2"], nil, false), ("j3", ["-j", "3"], nil, true),
                                                             ("mpi2", [], 2, false), ("mpi3", [], 3, true), ("mpi5", [], 5, true)]
        for (label, arguments, ranks, gangs) in cases {
            let out = dir.appendingPathComponent(label).path
            let p = process(["run", spec, "--output", out] + arguments, mpi: ranks)         // e.g. mpirun -n 5 --oversubscribe sweep run FILE
            p.environment?["LAYERSWEEP_GANG_MIN_SECONDS"] = "0"
            let r = try SweepProcess.run(p)
            XCTAssertEqual(r.status, 0, "\(label): \(r.stderr)")
            XCTAssertEqual(try stableCSV(out), reference, label)
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: "\(out)/checkpoints").sorted(), checkpoints, "\(label): checkpoint bits")
            XCTAssertEqual(r.stderr.contains("training on a gang of"), gangs, "\(label): \(r.stderr)")
            if ranks == 5 {
                let used = Set(try String(contentsOfFile: "\(out)/results.csv", encoding: .utf8).split(separator: "\n").dropFirst()
                    .compactMap { $0.split(separator: ",").dropLast().last })
                XCTAssertGreaterThan(used.count, 2, "work spread over the ranks: \(used)")
            }
        }
    }

    /// mpirun -n 3 sweep run FILE, then kill -9 of one worker rank mid-sweep; Open MPI ends the
    /// job. Every journaled result survives, and `sweep run --resume` completes the same table.
    func testKilledWorkerLosesNothingAndResumeFinishesIdentically() throws {
        let spec = try writeSpec(name: "killme", model: "resnet20", seeds: 2)
        let reference = dir.appendingPathComponent("reference").path
        XCTAssertEqual(try run(["run", spec, "--output", reference, "-j", "2"]).status, 0)
        let runDir = dir.appendingPathComponent("killed").path
        let journal = "\(runDir)/journal.jsonl"
        let job = process(["run", spec, "--output", runDir], mpi: 3)
        job.standardOutput = FileHandle.nullDevice
        job.standardError = FileHandle.nullDevice
        try job.run()
        var victim: Int32?
        var before: [Substring] = []
        let deadline = Date().addingTimeInterval(120)
        while job.isRunning, Date() < deadline {
            let lines = (try? String(contentsOfFile: journal, encoding: .utf8))?.split(separator: "\n") ?? []
            if lines.count >= 12 {  // both trainings and some evaluations are journaled
                victim = workerRank(of: job.processIdentifier)
                if let victim {
                    before = lines
                    kill(victim, SIGKILL)
                }
                break
            }
            usleep(5_000)
        }
        job.waitUntilExit()
        guard victim != nil else { throw XCTSkip("SKIPPED: the sweep finished before a worker could be killed") }
        XCTAssertNotEqual(job.terminationStatus, 0, "mpirun reports the killed rank")
        let after = (try String(contentsOfFile: journal, encoding: .utf8)).split(separator: "\n")
        XCTAssertEqual(Array(after.prefix(before.count)), before, "every result journaled before the kill is kept")
        XCTAssertLessThan(after.count - 1, 2 * 70, "the sweep was interrupted")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(runDir)/results.csv"))
        let resumed = try run(["run", "--resume", runDir, "-j", "2"])                           // sweep run --resume RUN_DIR
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertEqual(try stableCSV(runDir), try stableCSV(reference))
    }

    /// A `sweep` process started by mpirun `launcher` whose MPI rank is not 0.
    func workerRank(of launcher: Int32) -> Int32? { SweepProcess.ranks(of: launcher).dropFirst().first }

    func testBadInputGivesOneClearLineAndOverwritesNothing() throws {
        func bad(_ name: String, _ text: String) throws -> String {
            let path = dir.appendingPathComponent("\(name).yaml").path
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }
        let good = try writeSpec(name: "good", seeds: 1)
        let goodRun = dir.appendingPathComponent("goodrun").path
        XCTAssertEqual(try run(["run", good, "--output", goodRun]).status, 0)
        let journalBefore = try Data(contentsOf: URL(fileURLWithPath: "\(goodRun)/journal.jsonl"))
        let cases: [([String], String)] = [
            (["run", try bad("yaml", "name: x\nmodels: [resnet8\n")], "yaml.yaml:3: malformed YAML"),
            (["run", try bad("model", "name: x\ndatasets: [synthetic]\nmodels: [resnet8, vgg]\n")], "models[1]: unknown model 'vgg'"),
            (["run", try bad("mask", "name: x\ndatasets: [synthetic]\nmodels: [resnet8]\nmasks: [zap]\n")], "masks[0]: unknown mask 'zap'"),
            (["run", try bad("layer", "name: x\ndatasets: [synthetic]\nmodels: [resnet8]\nlayers: [conv9]\n")], "'conv9' matches no unit"),
            (["run", try bad("data", "name: x\ndatasets: [{name: mnist, data_dir: /nowhere}]\nmodels: [resnet8]\n")], "dataset 'mnist' not found"),
            (["run", try bad("dup", "name: x\ndatasets: [synthetic, synthetic]\nmodels: [resnet8]\n")], "duplicate dataset 'synthetic'"),
            (["run", try writeSpec(name: "other", seeds: 1), "--output", goodRun], "holds the journal of another sweep ('good')"),
            (["run", good, "--output", goodRun], "already holds this sweep's journal"),
            (["run", "--resume", dir.appendingPathComponent("nothing").path], "no such run directory"),
            (["plan", try bad("type", "name: x\ndatasets: [synthetic]\nmodels: [resnet8]\nseeds: many\n")], "seeds"),
        ]
        for (arguments, expected) in cases {
            for ranks in arguments[0] == "run" && expected.contains("unknown model") ? [nil, 2] : [nil] as [Int?] {
                let r = try run(arguments, mpi: ranks)
                XCTAssertNotEqual(r.status, 0, "\(arguments)")
                let errors = r.stderr.split(separator: "\n").filter { $0.hasPrefix("Error:") }
                XCTAssertEqual(errors.count, ranks == nil ? 1 : errors.count, "\(arguments): \(r.stderr)")
                XCTAssertTrue(r.stderr.contains(expected), "\(arguments) mpi \(ranks ?? 0): \(r.stderr)")
            }
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: "\(goodRun)/journal.jsonl")), journalBefore, "nothing overwritten")
    }

    /// A worker whose node lacks the dataset ends the job instead of leaving rank 0 waiting:
    /// `mpirun -n 1 --wdir A sweep run FILE : -n 1 --wdir B sweep run FILE`, where the sweep's
    /// relative data_dir exists under A only.
    func testWorkerThatCannotLoadTheDatasetEndsTheJob() throws {
        let a = dir.appendingPathComponent("A"), b = dir.appendingPathComponent("B")
        let data = a.appendingPathComponent("data")
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: b, withIntermediateDirectories: true)
        func idx(_ name: String, _ dims: [Int], _ bytes: [UInt8]) throws {
            var out: [UInt8] = [0, 0, 8, UInt8(dims.count)]
            for d in dims { out += [UInt8(d >> 24 & 255), UInt8(d >> 16 & 255), UInt8(d >> 8 & 255), UInt8(d & 255)] }
            try Data(out + bytes).write(to: data.appendingPathComponent(name))
        }
        try idx("train-images-idx3-ubyte", [40, 8, 8], (0..<(40 * 64)).map { UInt8(($0 * 37) % 251) })
        try idx("train-labels-idx1-ubyte", [40], (0..<40).map { UInt8($0 % 2) })
        try idx("t10k-images-idx3-ubyte", [20, 8, 8], (0..<(20 * 64)).map { UInt8(($0 * 11) % 251) })
        try idx("t10k-labels-idx1-ubyte", [20], (0..<20).map { UInt8($0 % 2) })
        let spec = dir.appendingPathComponent("local.yaml").path
        try """
        name: local
        datasets: [{name: tiny, data_dir: data}]
        models: [fcn-8]
        training: {epochs: 1, batch_size: 8}
        """.write(toFile: spec, atomically: true, encoding: .utf8)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        let out = dir.appendingPathComponent("run").path
        p.arguments = ["mpirun", "-n", "1", "--wdir", a.path, SweepProcess.executable, "run", spec, "--output", out, "--coordinator-works", "no",
                       ":", "-n", "1", "--wdir", b.path, SweepProcess.executable, "run", spec, "--output", out, "--coordinator-works", "no"]
        p.environment = ProcessInfo.processInfo.environment.merging(SweepProcess.mpiEnvironment) { _, b in b }
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        let deadline = Date().addingTimeInterval(60)
        while p.isRunning && Date() < deadline { usleep(20_000) }
        if p.isRunning { p.terminate(); XCTFail("the job hung with a failed worker") }
        p.waitUntilExit()
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertNotEqual(p.terminationStatus, 0)
        XCTAssertTrue(text.contains("rank 1") && text.contains("dataset 'tiny' not found"), text)
    }

    func testPlanPrintsCountsAndFirstTasks() throws {
        let r = try run(["plan", try writeSpec()])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("56 tasks"), r.stdout)
        XCTAssertTrue(r.stdout.contains("train     2"), r.stdout)
        XCTAssertTrue(r.stdout.contains("synthetic/resnet8/seed0/train"), r.stdout)
        // sweep plan FILE --ranks 4: the scheduler simulated on that allocation, against its bounds.
        let forecast = try run(["plan", try writeSpec(), "--ranks", "4", "--show", "0"])
        XCTAssertEqual(forecast.status, 0, forecast.stderr)
        for expected in ["on 4 ranks (1 node of 32 cores)", "predicted makespan", "lower bound", "ratio"] {
            XCTAssertTrue(forecast.stdout.contains(expected), forecast.stdout)
        }
        XCTAssertFalse(forecast.stdout.contains("first tasks"), forecast.stdout)
    }

    /// IMP rounds, teacher logits and reused kernels cross ranks as artifacts: `mpirun -n 3
    /// --oversubscribe sweep run FILE` gives the rows of `sweep run FILE`.
    func testStudyArtifactsCrossRanksWithoutChangingResults() throws {
        for (name, body) in [("imp", "study: imp\nmodels: [fcn-16x2-bn]\npruning: {rounds: 3, rewind_step: 2, mask_images: 2}"),
                             ("distill", "study: distill\nmodels: [resnet8]\ndistillation: {teachers: 2, conv_layers: [0, 1], budgets: [5000]}"),
                             ("reuse", "study: reuse\nmodels: [resnet8]\nlayers: [stem.conv]\nreuse: {pairs: [{source: synthetic-28, target: inv}], prefixes: [2]}")] {
            let path = dir.appendingPathComponent("\(name).yaml").path
            try """
            name: \(name)
            datasets:
              - {name: synthetic-28, train_limit: 128, test_limit: 64}
              - {name: inv, base: synthetic-28, transform: invert, train_limit: 128, test_limit: 64}
            seeds: 2
            training: {epochs: 1, batch_size: 32, learning_rate: 0.05}
            \(body)
            """.write(toFile: path, atomically: true, encoding: .utf8)
            let single = dir.appendingPathComponent("\(name)-1").path, ranks = dir.appendingPathComponent("\(name)-mpi").path
            XCTAssertEqual(try run(["run", path, "--output", single]).status, 0, name)
            let r = try run(["run", path, "--output", ranks], mpi: 3)
            XCTAssertEqual(r.status, 0, "\(name): \(r.stderr)")
            XCTAssertEqual(try stableCSV(ranks), try stableCSV(single), name)
            XCTAssertFalse(try stableCSV(single).dropFirst().contains { !$0.contains(",ok,") }, "\(name): every task ok")
        }
    }

    /// `sweep compare RUN_A RUN_B` on two runs of the same units (1 and 3 epochs): a table line
    /// per unit and mask with both runs' Δ, interval, seed count and call, and a page.
    func testCompareShowsBothRunsPerUnit() throws {
        var runs: [String] = []
        for epochs in [1, 3] {
            let spec = try writeSpec(name: "cmp\(epochs)", seeds: 2)
            let text = try String(contentsOfFile: spec, encoding: .utf8).replacingOccurrences(of: "epochs: 2", with: "epochs: \(epochs)")
            try text.write(toFile: spec, atomically: true, encoding: .utf8)
            let out = dir.appendingPathComponent("cmp\(epochs)").path
            XCTAssertEqual(try run(["run", spec, "--output", out, "-j", "2"]).status, 0)
            XCTAssertTrue(FileManager.default.fileExists(atPath: "\(out)/units.csv"))
            runs.append(out)
        }
        let page = dir.appendingPathComponent("cmp.html").path
        let r = try run(["compare", runs[0], runs[1], "-o", page])                                 // sweep compare A B -o PAGE
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = r.stdout.split(separator: "\n")
        XCTAssertTrue(lines[0].contains("cmp1") && lines[0].contains("cmp3"), "\(lines[0])")
        let stem = try XCTUnwrap(lines.first { $0.contains("resnet8 stem.conv") && $0.contains("zeroKernel") })
        XCTAssertEqual(stem.components(separatedBy: " n=2 ").count, 3, "both runs over two seeds: \(stem)")
        XCTAssertTrue(lines.contains { $0.hasPrefix("26 units in both; ") && $0.contains(" contradict (!), ") }, r.stdout)
        XCTAssertTrue(lines.contains { $0.hasPrefix("baseline synthetic resnet8: cmp1 ") && $0.contains(", cmp3 ") }, "both baselines: \(r.stdout)")
        let body = lines.filter { $0.contains(" zeroKernel ") || $0.contains(" zeroBranch ") }
        XCTAssertTrue(body.first?.contains("stem.conv") ?? false, "network order: the stem first: \(body.first ?? "")")
        let html = try String(contentsOfFile: page, encoding: .utf8)
        XCTAssertTrue(html.contains("cmp1 vs cmp3"))
        XCTAssertTrue(html.contains("Δ test accuracy: cmp1 (x) vs cmp3 (y)"), "the scatter plot")
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent("cmp-scatter.svg").path), "the scatter plot as a file")
        let bad = try run(["compare", runs[0], dir.path])
        XCTAssertEqual(bad.status, 1)
        XCTAssertTrue(bad.stderr.contains("results.json: no results yet"), bad.stderr)
    }

    /// A training shows its epochs while it runs: `mpirun -n 2 sweep run FILE` prints each
    /// epoch's line (relayed from the worker to rank 0) before the training's task line.
    func testTrainingsReportTheirEpochsBeforeTheirTaskLine() throws {
        let spec = try writeSpec(name: "epochs", seeds: 1)
        let r = try run(["run", spec, "--output", dir.appendingPathComponent("epochs").path], mpi: 2)
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = r.stderr.split(separator: "\n").map(String.init)
        let epoch1 = try XCTUnwrap(lines.firstIndex { $0.contains("synthetic/resnet8/seed0/train") && $0.contains("epoch 1/2") }, r.stderr)
        let epoch2 = try XCTUnwrap(lines.firstIndex { $0.contains("synthetic/resnet8/seed0/train") && $0.contains("epoch 2/2") }, r.stderr)
        let done = try XCTUnwrap(lines.firstIndex { $0.contains("synthetic/resnet8/seed0 train acc") }, r.stderr)
        XCTAssertLessThan(epoch1, epoch2)
        XCTAssertLessThan(epoch2, done)
        XCTAssertTrue(lines[epoch1].contains("img/s") && lines[epoch1].contains("ETA"), lines[epoch1])
        // Finished-task lines: the task's time, then the session's elapsed time and pace.
        let last = try XCTUnwrap(lines.last { $0.hasPrefix("[") && $0.contains(" tasks/min") }, r.stderr)
        XCTAssertNotNil(last.range(of: #"rank \d+ [0-9.]+s · [0-9.ms]+ in, [0-9.]+ tasks/min"#, options: .regularExpression), last)

        // sweep report names every file it writes; results.jsonl is one row per line, mask rows
        // carry their unit's index in network order and every row its network's checkpoint.
        let runDir = dir.appendingPathComponent("epochs").path
        let report = try run(["report", runDir])
        XCTAssertEqual(report.status, 0, report.stderr)
        for file in ["report.html", "results.csv", "results.json", "results.jsonl", "units.csv"] {
            XCTAssertTrue(report.stdout.contains("\(runDir)/\(file)"), report.stdout)
        }
        let rows = try String(contentsOfFile: "\(runDir)/results.jsonl", encoding: .utf8).split(separator: "\n")
            .map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        XCTAssertEqual(rows.count, 28)
        let stem = try XCTUnwrap(rows.first { $0["layer"] as? String == "stem.conv" && $0["mask"] as? String == "zeroKernel" })
        XCTAssertEqual(stem["unit_index"] as? Int, 0)
        XCTAssertTrue(rows.allSatisfy { ($0["checkpoint"] as? String)?.count == 32 }, "every row names its network")
        let document = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(runDir)/results.json"))) as! [String: Any]
        let embedded = try XCTUnwrap(document["spec"] as? [String: Any])
        XCTAssertEqual(Set(embedded.keys), ["name", "study", "seed", "output", "datasets", "models", "seeds", "training", "layers", "masks", "evaluation", "statistics"],
                       "only the sections zeroing reads")

        // results.csv and units.csv print no number with more than 7 significant digits.
        for file in ["results.csv", "units.csv"] {
            let text = try String(contentsOfFile: dir.appendingPathComponent("epochs/\(file)").path, encoding: .utf8)
            for field in text.split(whereSeparator: { $0 == "," || $0 == "\n" }) where Double(field) != nil {
                let digits = field.split(separator: "e")[0].filter(\.isNumber).drop { $0 == "0" }
                XCTAssertLessThanOrEqual(digits.count, 7, "\(file): \(field)")
            }
        }
    }

    /// Resuming a finished run does nothing and exits cleanly, every time: the worker threads
    /// are still taking the configuration (expanding the plan) when the coordinator finds nothing
    /// to do, and the process must wait for them before it exits (it crashed 1 time in 10).
    func testResumingAFinishedRunExitsCleanlyEveryTime() throws {
        let spec = try writeSpec(name: "finished", seeds: 1, extra: "layers: [fc]\n")
        let out = dir.appendingPathComponent("finished").path
        XCTAssertEqual(try run(["run", spec, "training.epochs=1", "--output", out]).status, 0)
        for attempt in 1...25 {
            let r = try run(["run", "--resume", out, "-j", "2"])
            XCTAssertEqual(r.status, 0, "attempt \(attempt): \(r.stderr)")
            if r.status != 0 { break }
        }
    }

    /// `sweep run FILE training.epochs=1 seeds=1`: the overrides change the run, are recorded in
    /// its spec.yaml (so --resume and the report see them), and a bad one is named in its error.
    func testKeyValueOverridesAreRecordedAndValidated() throws {
        let spec = try writeSpec(name: "over", seeds: 2)
        let out = dir.appendingPathComponent("over").path
        let r = try run(["run", spec, "training.epochs=1", "seeds=1", "masks=[zeroKernel]", "--output", out])
        XCTAssertEqual(r.status, 0, r.stderr)
        let stored = try String(contentsOfFile: "\(out)/spec.yaml", encoding: .utf8)
        XCTAssertTrue(stored.hasPrefix(#"# command-line overrides: "training.epochs=1" "seeds=1" "masks=[zeroKernel]""#), stored)
        let csv = try stableCSV(out)
        XCTAssertEqual(csv.count, 1 + 1 + 1 + 8, "one seed: train, baseline, 8 zeroKernel units")
        XCTAssertEqual(try run(["run", "--resume", out]).status, 0, "the recorded spec resumes")
        let bad = try run(["run", spec, "training.epochs=lots", "--output", dir.appendingPathComponent("bad").path])
        XCTAssertEqual(bad.status, 1)
        XCTAssertTrue(bad.stderr.contains("override training.epochs=lots: training.epochs: expected an integer, found 'lots'"), bad.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("bad").path), "nothing written")
    }

    /// `sweep status RUN_DIR` from another shell while `sweep run` trains: what is journaled, what
    /// each rank runs and its latest epoch line; afterwards, that nothing runs.
    func testStatusShowsWhatRunsAndItsLatestEpoch() throws {
        let spec = try SweepProcess.trainingSpec("status", epochs: 6, in: dir)
        let runDir = dir.appendingPathComponent("status").path
        let job = process(["run", spec, "--output", runDir, "--threads", "1"])
        job.standardOutput = FileHandle.nullDevice
        job.standardError = FileHandle.nullDevice
        try job.run()
        var seen: String?
        let deadline = Date().addingTimeInterval(120)
        while job.isRunning, Date() < deadline {
            let r = try run(["status", runDir])
            if r.status == 0, r.stdout.contains("epoch ") { seen = r.stdout; break }
            usleep(200_000)
        }
        job.waitUntilExit()
        let during = try XCTUnwrap(seen, "no epoch line in sweep status while the training ran")
        XCTAssertTrue(during.contains("tasks journaled, running (pid"), during)
        XCTAssertTrue(during.contains("rank 0  synthetic/resnet20/seed0/train  for "), during)
        let after = try run(["status", runDir])
        XCTAssertTrue(after.stdout.contains("22 of 22 tasks journaled, finished (report: \(runDir)/report.html)"), after.stdout)
        XCTAssertEqual(try run(["status", dir.path]).status, 1, "a directory without a run is an error")
    }
}

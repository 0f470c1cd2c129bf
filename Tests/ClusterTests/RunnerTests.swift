@testable import Cluster
import Foundation
import SweepCore
import SweepFile
import SweepPlan
import SweepRecords
@testable import SweepStore
import TensorEngine
@testable import Studies
import StudyTestSupport
import XCTest

/// The coordinator and worker loops over the in-process transport (the MPI transport is
/// exercised with the real launcher in sweepTests).
final class RunnerTests: StudyTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        // These runs train what they measure: the user's training store stays out of them.
        setenv("LAYERSWEEP_CACHE", "off", 1)
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("runner-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(at: dir) }

    func writeSpec(_ extra: String = "") throws -> String {
        let path = dir.appendingPathComponent("s.yaml").path
        try """
        name: small
        datasets:
          - {name: synthetic, train_limit: 128, test_limit: 64}
        models: [resnet8]
        seeds: 2
        training: {epochs: 1, batch_size: 32, learning_rate: 0.05}
        masks: [zeroKernel, zeroBranch, zeroKernelRecalibrated, randomInit]
        evaluation: {recalibration_batches: 2}
        \(extra)
        """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// Rows without the run-dependent columns.
    func stable(_ rows: [ResultRow]) -> [ResultRow] {
        rows.map { var r = $0; r.seconds = 0; r.rank = 0; r.host = ""; return r }
    }

    func run(_ options: RunOptions) throws -> RunSummary {
        try XCTUnwrap(try SweepLauncher.run(options, log: { _ in }))
    }

    func testMessagesRoundTripWithAttachments() throws {
        let task = try WireTask(PlannedTask(key: "d/m/seed0/x/zeroKernel", kind: .mask, dataset: "d", model: "m", seedIndex: 0, unit: "x",
                                            mask: .zeroKernel, dependencies: ["d/m/seed0/train"], cost: 2.5, seed: 7))
        var outcome = TaskOutcome(status: .diverged, seconds: 1.25)
        outcome.error = "loss nan"
        outcome.testLoss = .nan
        let blob = Data((0..<100_000).map { UInt8($0 % 256) })
        var measured = TaskOutcome(status: .ok, seconds: 2)
        measured.measures = PruningMeasures(remainingFraction: 0.49, layerRemaining: ["fc1.weight": 0.49], locality: -0.01)
        for message in [Message.hello(host: "h", threads: 3), .configure(specText: "name: x\n"),
                        .configure(specText: "name: y\n", checkpointHashes: ["a.safetensors": "0123abcd"]),
                        .task(task, inputs: ["d/m/seed0/train": "abc"], attachments: ["abc": blob, "def": Data([1])], release: ["old"], resume: nil),
                        .task(task, inputs: [:], attachments: ["abc": blob], release: [], resume: Data([7, 8, 9])),
                        .task(task, inputs: [:], attachments: [:], release: [], resume: nil, gang: GangAssignment(id: 3, members: [2, 0, 5])),
                        .gangDone(key: "d/m/seed0/train"), .progress(key: "d/m/seed0/train", text: "epoch 1/2  loss 0.5"),
                        .snapshot(key: "d/m/seed0/train", data: blob),
                        .result(key: "k", outcome: TaskOutcome(status: .ok), checkpoint: blob),
                        .result(key: "m", outcome: measured, checkpoint: nil), .stop] {
            XCTAssertEqual(try MessageCodec.decode(try MessageCodec.encode(message)), message)
        }
        guard case let .result(_, decoded, _) = try MessageCodec.decode(try MessageCodec.encode(.result(key: "k", outcome: outcome, checkpoint: nil))) else {
            return XCTFail()
        }
        XCTAssertTrue(decoded.testLoss!.isNaN, "non-finite numbers survive the JSON header")
    }

    func testSameResultsWithOneOrThreeWorkers() throws {
        let spec = try writeSpec()
        let one = try run(RunOptions(specPath: spec, output: dir.appendingPathComponent("one").path, localWorkers: 1))
        let three = try run(RunOptions(specPath: spec, output: dir.appendingPathComponent("three").path, localWorkers: 3))
        XCTAssertEqual(one.rows.count, 2 * (2 + 8 + 3 + 7 + 8))
        XCTAssertTrue(one.rows.allSatisfy { $0.status == .ok }, "\(one.rows.filter { $0.status != .ok })")
        XCTAssertEqual(stable(one.rows), stable(three.rows))
        XCTAssertEqual(Set(three.rows.map(\.rank)).count, 3, "all three workers got work")
        let csv = try String(contentsOf: one.directory.resultsCSV, encoding: .utf8)
        XCTAssertEqual(csv.split(separator: "\n").count, one.rows.count + 1)
    }

    func testPrefixReuseDoesNotChangeResults() throws {
        let spec = try writeSpec()
        let reused = try run(RunOptions(specPath: spec, output: dir.appendingPathComponent("reuse").path, localWorkers: 2))
        let text = try String(contentsOfFile: spec, encoding: .utf8)
            .replacingOccurrences(of: "evaluation: {recalibration_batches: 2}", with: "evaluation: {recalibration_batches: 2, prefix_cache_mb: 0}")
        try text.write(toFile: spec, atomically: true, encoding: .utf8)
        let naive = try run(RunOptions(specPath: spec, output: dir.appendingPathComponent("naive").path, localWorkers: 2))
        XCTAssertEqual(stable(reused.rows), stable(naive.rows))
    }

    func testResumeRunsOnlyWhatIsMissingAndMatchesAnUninterruptedRun() throws {
        let spec = try writeSpec()
        let full = try run(RunOptions(specPath: spec, output: dir.appendingPathComponent("full").path, localWorkers: 2))
        // An interrupted run: keep the journal's header and its first half, drop the results.
        let cut = dir.appendingPathComponent("cut")
        try FileManager.default.copyItem(at: full.directory.url, to: cut)
        let journal = cut.appendingPathComponent("journal.jsonl")
        let lines = try String(contentsOf: journal, encoding: .utf8).split(separator: "\n")
        let kept = lines.prefix(1 + (lines.count - 1) / 2)
        try (kept.joined(separator: "\n") + "\n").write(to: journal, atomically: true, encoding: .utf8)
        try FileManager.default.removeItem(at: cut.appendingPathComponent("results.csv"))
        var ran: [String] = []
        let resumed = try XCTUnwrap(try SweepLauncher.run(RunOptions(resumePath: cut.path, localWorkers: 2), log: { ran.append($0) }))
        XCTAssertEqual(stable(resumed.rows), stable(full.rows))
        XCTAssertEqual(ran.filter { $0.hasPrefix("[") }.count, lines.count - kept.count, "only the missing tasks ran")
        XCTAssertTrue(FileManager.default.fileExists(atPath: cut.appendingPathComponent("results.csv").path))
        let document = try JSONSerialization.jsonObject(with: Data(contentsOf: cut.appendingPathComponent("results.json"))) as? [String: Any]
        XCTAssertEqual(document?["complete"] as? Bool, true)
    }

    func testDivergedTrainingSkipsItsDependentsAndTheSweepGoesOn() throws {
        let spec = try writeSpec()
        var text = try String(contentsOfFile: spec, encoding: .utf8)
        text = text.replacingOccurrences(of: "learning_rate: 0.05", with: "learning_rate: 1.0e+9, momentum: 0, weight_decay: 0, schedule: constant")
            .replacingOccurrences(of: "models: [resnet8]", with: "models: [resnet8, fcn-8]")
        try text.write(toFile: spec, atomically: true, encoding: .utf8)
        let summary = try run(RunOptions(specPath: spec, output: dir.appendingPathComponent("div").path, localWorkers: 2))
        let trains = summary.rows.filter { $0.kind == .train }
        XCTAssertTrue(trains.contains { $0.status == .diverged && ($0.error ?? "").contains("diverged") }, "\(trains)")
        for row in summary.rows where row.kind != .train {
            let train = trains.first { row.key.hasPrefix("\($0.dataset)/\($0.model)/seed\($0.seed)/") }!
            XCTAssertEqual(row.status, train.status == .ok ? .ok : .skipped, row.key)
        }
    }

    func studySpec(_ body: String) throws -> String {
        let path = dir.appendingPathComponent("study.yaml").path
        try body.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    static let impSpec = """
        name: imp
        study: imp
        datasets: [{name: synthetic-28, train_limit: 256, test_limit: 128}]
        models: [fcn-32x2-bn]
        seeds: 2
        training: {epochs: 2, batch_size: 32, learning_rate: 0.05}
        pruning: {rounds: 3, rewind_step: 3, mask_images: 2}
        """

    static let distillSpec = """
        name: distill
        study: distill
        datasets: [{name: synthetic-28, train_limit: 256, test_limit: 128}]
        models: [resnet8]
        seeds: 1
        training: {epochs: 1, batch_size: 32, learning_rate: 0.05}
        distillation: {teachers: 2, conv_layers: [0, 1], budgets: [5000]}
        """

    static let reuseSpec = """
        name: reuse
        study: reuse
        datasets:
          - {name: a, base: synthetic-28, classes: [0, 1, 2, 3, 4], train_limit: 128, test_limit: 64}
          - {name: b, base: synthetic-28, classes: [5, 6, 7, 8, 9], train_limit: 128, test_limit: 64}
        models: [resnet8]
        seeds: 1
        layers: [stem.conv, stage3.block1.conv1]
        training: {epochs: 1, batch_size: 32, learning_rate: 0.05}
        reuse: {pairs: [{source: a, target: b}], prefixes: [3]}
        """

    static let sensitivitySpec = """
        name: sensitivity
        study: sensitivity
        datasets: [{name: synthetic-28, train_limit: 256, test_limit: 128}]
        models: [resnet8]
        seeds: 2
        layers: [stem.conv, stage2.block1.conv1, fc]
        training: {epochs: 1, batch_size: 32, learning_rate: 0.05}
        evaluation: {recalibration_batches: 2, prefix_cache_mb: 64}
        sensitivity: {sparsities: [0.25, 0.5, 1.0], methods: [unstructured, structured], recalibrate: true}
        """

    /// Every study's results depend on the keys and seeds only: one worker or three, the same rows.
    func testStudiesGiveTheSameResultsWithOneOrThreeWorkers() throws {
        for (name, text) in [("imp", Self.impSpec), ("distill", Self.distillSpec), ("reuse", Self.reuseSpec),
                             ("sensitivity", Self.sensitivitySpec)] {
            let spec = try studySpec(text)
            let one = try run(RunOptions(specPath: spec, output: dir.appendingPathComponent("\(name)-1").path, localWorkers: 1))
            let three = try run(RunOptions(specPath: spec, output: dir.appendingPathComponent("\(name)-3").path, localWorkers: 3))
            XCTAssertTrue(one.rows.allSatisfy { $0.status == .ok }, "\(name): \(one.rows.filter { $0.status != .ok }.map { "\($0.key) \($0.error ?? "")" })")
            XCTAssertEqual(stable(one.rows), stable(three.rows), name)
            switch name {
            case "imp":
                XCTAssertEqual(one.rows.count, 2 * (4 + 2))
                let last = try XCTUnwrap(one.rows.first { $0.key.hasSuffix("seed0/round3") })
                XCTAssertEqual(try XCTUnwrap(last.pruning?.remainingFraction), 0.343, accuracy: 1e-3)
                XCTAssertEqual(last.pruning?.maskImages?.count, 2)
                XCTAssertNotNil(last.pruning?.locality)
                XCTAssertEqual(last.pruning?.layerRemaining?.keys.sorted(), ["fc1.weight", "fc2.weight"])
                // results.csv: one column per layer's remaining fraction.
                let header = ResultTable.csv(one.rows, study: IterativePruningStudy.self).split(separator: "\n")[0]
                XCTAssertTrue(header.contains("remaining_fraction,remaining_fc1.weight,remaining_fc2.weight,locality"), "\(header)")
            case "distill":
                XCTAssertEqual(one.rows.filter { $0.kind == .student }.count, 2 * 2)
                let teacher = try XCTUnwrap(one.rows.first { $0.kind == .logits }?.testAccuracy)
                for student in one.rows where student.kind == .student { XCTAssertEqual(student.baselineAccuracy, teacher) }
            case "sensitivity":
                let pruned = one.rows.filter { $0.kind == .pruneLayer }
                XCTAssertEqual(pruned.count, 2 * 3 * 2 * 2 * 3)
                XCTAssertTrue(pruned.allSatisfy { $0.deltaAccuracy != nil && $0.deltaLow != nil && $0.mcnemarP != nil && $0.unitIndex != nil })
                // A layer pruned whole by filters: every weight gone, the same count as unstructured at 1.0.
                let whole = pruned.filter { $0.key.hasSuffix("stem.conv/structured/1.0000") || $0.key.hasSuffix("stem.conv/unstructured/1.0000") }
                XCTAssertEqual(whole.count, 4)
                XCTAssertEqual(Set(whole.compactMap(\.paramsMasked)), [16 * 1 * 3 * 3])
                let header = ResultTable.csv(one.rows, study: SensitivityStudy.self).split(separator: "\n")[0]
                XCTAssertTrue(header.hasPrefix("key,study,kind,dataset,model,seed,layer,mask,sparsity,status,"), "\(header)")
                XCTAssertTrue(header.contains("delta_accuracy,delta_low,delta_high,mcnemar_p,params_pruned,unit_index,checkpoint,images_worse,images_better,test_images,error,cached,seconds"), "\(header)")
                let line = String(decoding: try ResultTable.jsonLines(pruned.prefix(1).map { $0 }), as: UTF8.self)
                XCTAssertTrue(line.contains("\"sparsity\":") && line.contains("\"method\":") && line.contains("\"recalibrated\":"), line)
            default:
                let reuse = one.rows.filter { $0.kind == .reuse }
                XCTAssertEqual(reuse.count, 3 * 2)
                XCTAssertTrue(reuse.allSatisfy { ($0.reuse?.rmse ?? 0) > 0 && $0.deltaAccuracy != nil && $0.source == "a" })
            }
        }
    }

    /// An IMP chain cut after some rounds resumes from the last journaled round's artifact.
    func testAnInterruptedPruningChainResumesWhereItStopped() throws {
        let spec = try studySpec(Self.impSpec)
        let full = try run(RunOptions(specPath: spec, output: dir.appendingPathComponent("full").path, localWorkers: 2))
        let cut = dir.appendingPathComponent("cut")
        try FileManager.default.copyItem(at: full.directory.url, to: cut)
        let journal = cut.appendingPathComponent("journal.jsonl")
        let lines = try String(contentsOf: journal, encoding: .utf8).split(separator: "\n")
        // Keep the header and the tasks of rounds 0 and 1 only.
        let kept = [lines[0]] + lines.dropFirst().filter { $0.contains("/round0") || $0.contains("/round1") }
        try (kept.joined(separator: "\n") + "\n").write(to: journal, atomically: true, encoding: .utf8)
        var ran: [String] = []
        let resumed = try XCTUnwrap(try SweepLauncher.run(RunOptions(resumePath: cut.path, localWorkers: 2), log: { ran.append($0) }))
        XCTAssertEqual(stable(resumed.rows), stable(full.rows))
        XCTAssertEqual(ran.filter { $0.hasPrefix("[") }.count, full.rows.count - (kept.count - 1))
    }

    /// The issue's repro: a torn last line, `--resume`, then `sweep report` and another resume.
    func testATornJournalLineIsRepairedByResume() throws {
        let path = dir.appendingPathComponent("noop.yaml").path
        try "name: noop\nstudy: noop\nnoop_tasks: 50\n".write(toFile: path, atomically: true, encoding: .utf8)
        let first = try run(RunOptions(specPath: path, output: dir.appendingPathComponent("r").path))
        let journal = first.directory.journalURL
        let handle = try FileHandle(forUpdating: journal)
        try handle.truncate(atOffset: try handle.seekToEnd() - 40)
        try handle.close()
        let resumed = try run(RunOptions(resumePath: first.directory.url.path))
        XCTAssertEqual(resumed.rows.count, 50)
        let (_, records, _) = try Journal.read(journal)
        XCTAssertEqual(Set(records.map(\.key)).count, records.count, "no task journaled twice")
        XCTAssertEqual(try ReportInput.load(first.directory).rows.count, 50)
        XCTAssertEqual(try run(RunOptions(resumePath: first.directory.url.path)).rows.count, 50)
    }

    /// A checkpoint whose bytes no longer match their hash is set aside and its training runs
    /// again, instead of every worker refusing it on every resume.
    func testADamagedCheckpointIsSetAsideAndItsTaskRunsAgain() throws {
        let spec = try writeSpec()
        let full = try run(RunOptions(specPath: spec, output: dir.appendingPathComponent("full").path, localWorkers: 2))
        let cut = dir.appendingPathComponent("cut")
        try FileManager.default.copyItem(at: full.directory.url, to: cut)
        try? FileManager.default.removeItem(at: cut.appendingPathComponent(RunLock.fileName))
        let journal = cut.appendingPathComponent("journal.jsonl")
        let lines = try String(contentsOf: journal, encoding: .utf8).split(separator: "\n")
        try ((lines.prefix(1) + lines.dropFirst().filter { $0.contains("/train\"") }).joined(separator: "\n") + "\n")
            .write(to: journal, atomically: true, encoding: .utf8)
        let damaged = try XCTUnwrap(full.rows.first { $0.kind == .train && $0.seed == 1 })
        let (_, records, _) = try Journal.read(full.directory.journalURL)
        let hash = try XCTUnwrap(records.first { $0.key == damaged.key }?.outcome.checkpoint)
        let file = RunDirectory(cut.path).checkpointURL(hash)
        var bytes = try Data(contentsOf: file)
        bytes[bytes.count - 3] ^= 0xFF
        try bytes.write(to: file)
        var log: [String] = []
        let resumed = try XCTUnwrap(try SweepLauncher.run(RunOptions(resumePath: cut.path, localWorkers: 2), log: { log.append($0) }))
        XCTAssertEqual(stable(resumed.rows), stable(full.rows))
        XCTAssertTrue(log.contains { $0.contains("\(hash).safetensors: damaged") }, "\(log)")
        XCTAssertTrue(log.contains { $0.contains("seed1 train") }, "the training that made it ran again")
        XCTAssertFalse(log.contains { $0.contains("seed0 train") }, "the intact one did not")
        XCTAssertTrue(FileManager.default.fileExists(atPath: file.path + ".corrupt"), "the damaged bytes are kept aside")
        XCTAssertEqual(contentHash(try Data(contentsOf: file)), hash)
    }

    /// Tasks that failed (a damaged dataset) stay failed on a plain resume, which says how to
    /// retry; `retryFailed` runs them and what they made skip, once the cause is fixed.
    func testFailedTasksRunAgainOnlyWhenAsked() throws {
        let data = dir.appendingPathComponent("data")
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
        func idx(_ name: String, _ dims: [Int], _ bytes: [UInt8]) throws {
            var out: [UInt8] = [0, 0, 8, UInt8(dims.count)]
            for d in dims { out += [UInt8(d >> 24 & 255), UInt8(d >> 16 & 255), UInt8(d >> 8 & 255), UInt8(d & 255)] }
            try Data(out + bytes).write(to: data.appendingPathComponent(name))
        }
        let images = (0..<(64 * 64)).map { UInt8(($0 * 37) % 251) }
        try idx("train-images-idx3-ubyte", [64, 8, 8], Array(images.prefix(100)))   // damaged: truncated
        try idx("train-labels-idx1-ubyte", [64], (0..<64).map { UInt8($0 % 3) })
        try idx("t10k-images-idx3-ubyte", [32, 8, 8], Array(images.prefix(32 * 64)))
        try idx("t10k-labels-idx1-ubyte", [32], (0..<32).map { UInt8($0 % 3) })
        let spec = try studySpec("""
            name: tiny
            datasets: [{name: tiny, data_dir: \(data.path)}]
            models: [fcn-8]
            seeds: 2
            training: {epochs: 1, batch_size: 16}
            """)
        let runDir = dir.appendingPathComponent("run").path
        let broken = try run(RunOptions(specPath: spec, output: runDir))
        XCTAssertEqual(broken.rows.filter { $0.status == .failed }.count, 2)
        XCTAssertTrue(broken.rows.filter { $0.kind != .train }.allSatisfy { $0.status == .skipped })
        try idx("train-images-idx3-ubyte", [64, 8, 8], images)   // fixed
        var log: [String] = []
        let kept = try XCTUnwrap(try SweepLauncher.run(RunOptions(resumePath: runDir), log: { log.append($0) }))
        XCTAssertEqual(kept.rows.filter { $0.status == .failed }.count, 2)
        XCTAssertTrue(log.contains { $0.contains("2 failed: add --retry-failed to run them again") }, "\(log)")
        let retried = try run(RunOptions(resumePath: runDir, retryFailed: true))
        XCTAssertTrue(retried.rows.allSatisfy { $0.status == .ok }, "\(retried.rows.map { "\($0.key) \($0.status)" })")
        let clean = try run(RunOptions(specPath: spec, output: dir.appendingPathComponent("clean").path))
        XCTAssertEqual(stable(retried.rows), stable(clean.rows))
    }

    /// SIGUSR1 (Slurm's warning before a time limit): no new tasks, running ones finish, the
    /// run ends resumable; the resume gives the uninterrupted table.
    func testADrainStopsHandingOutTasksAndResumeCompletesTheTable() throws {
        let spec = try writeSpec()
        let full = try run(RunOptions(specPath: spec, output: dir.appendingPathComponent("full").path, localWorkers: 2))
        let runDir = dir.appendingPathComponent("drained")
        final class Box: @unchecked Sendable { var summary: RunSummary?; var error: Error? }
        let box = Box()
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            do { box.summary = try SweepLauncher.run(RunOptions(specPath: spec, output: runDir.path, localWorkers: 2), log: { _ in }) } catch { box.error = error }
            done.signal()
        }
        thread.stackSize = 16 << 20
        thread.start()
        let journal = runDir.appendingPathComponent("journal.jsonl").path
        while ((try? String(contentsOfFile: journal, encoding: .utf8))?.split(separator: "\n").count ?? 0) < 4 { usleep(2_000) }
        raise(SIGUSR1)
        done.wait()
        StopSignals.reset()
        XCTAssertNil(box.error)
        let drained = try XCTUnwrap(box.summary)
        XCTAssertTrue(drained.drained)
        XCTAssertLessThan(drained.rows.count, full.rows.count)
        let resumed = try run(RunOptions(resumePath: runDir.path, localWorkers: 2))
        XCTAssertFalse(resumed.drained)
        XCTAssertEqual(stable(resumed.rows), stable(full.rows))
    }

    /// Runs sweep `text` with a coordinator and `workers` worker threads in this process, the
    /// links wrapped as a test wants; returns the coordinator, its plan and its journal.
    func coordinate(_ text: String, in name: String, workers: Int,
                    coordinatorLink: (CoordinatorLink, Plan, RunDirectory) -> CoordinatorLink = { link, _, _ in link },
                    workerLink: (WorkerLink) -> WorkerLink = { $0 },
                    prepare: (Coordinator, Plan) throws -> Void = { _, _ in }) throws -> (Coordinator, Plan, Journal, RunDirectory) {
        let spec = try SpecLoader.parse(text, file: "\(name).yaml")
        let plan = try Plan.expand(spec)
        let run = RunDirectory(dir.appendingPathComponent(name).path)
        try run.create(specText: text, sweep: spec.name)
        let journal = try Journal(url: run.journalURL, header: JournalHeader(sweep: spec.name, specHash: RunDirectory.specHash(text), version: "t"))
        let hub = LocalHub(workers: Array(0..<workers))
        let done = DispatchSemaphore(value: 0)
        for w in 0..<workers {
            let link = workerLink(hub.workerLink(w))
            Thread {
                try? WorkerLoop.run(link: link, host: "h", threads: 1)
                done.signal()
            }.start()
        }
        let coordinator = Coordinator(plan: plan, run: run, journal: journal, link: coordinatorLink(hub.coordinatorLink(), plan, run),
                                      specText: text, previous: [], log: { _ in })
        try prepare(coordinator, plan)
        try coordinator.run()
        for _ in 0..<workers { done.wait() }
        return (coordinator, plan, journal, run)
    }

    /// On a cluster of mixed machines, a network is filed in the training store under the
    /// arithmetic kind of the worker that trained it, never under rank 0's.
    func testATrainingIsStoredUnderTheEngineOfTheWorkerThatTrainedIt() throws {
        let text = "name: mixed\ndatasets: [{name: synthetic, train_limit: 64, test_limit: 32}]\nmodels: [fcn-16]\n"
            + "training: {epochs: 1, batch_size: 16}\nmasks: [zeroKernel]\nlayers: [readout]\n"
        let store = TrainingStore(root: dir.appendingPathComponent("store"))
        var expected: TrainingIdentity?
        _ = try coordinate(text, in: "mixed", workers: 1, coordinatorLink: { link, _, _ in OtherEngineLink(link) }, prepare: { coordinator, plan in
            let identities = try TrainingIdentity.of(plan)
            coordinator.store = (store, identities)
            expected = identities.values.first
        })
        var identity = try XCTUnwrap(expected)
        XCTAssertFalse(store.holds(identity.key), "not under rank 0's engine")
        identity.engine = OtherEngineLink.engine
        XCTAssertTrue(store.holds(identity.key), "under the worker's")
        XCTAssertEqual(store.record(identity.key)?.engine, OtherEngineLink.engine)
    }

    /// Artifacts no remaining task needs are released on the workers that hold them.
    func testWorkersAreToldToDropArtifactsNoTaskNeeds() throws {
        var recorder: RecordingWorkerLink?
        let (coordinator, _, _, _) = try coordinate(Self.impSpec, in: "release", workers: 1, workerLink: { link in
            recorder = RecordingWorkerLink(link)
            return recorder!
        })
        let records = Dictionary(uniqueKeysWithValues: coordinator.allRecords.map { ($0.key, $0) })
        let released = Set(try XCTUnwrap(recorder).released)
        // Rounds 0 and 1 of each chain are needed by later tasks only; once those ran, they go.
        for seed in 0..<2 {
            for round in 0...1 {
                let hash = try XCTUnwrap(records["synthetic-28/fcn-32x2-bn/seed\(seed)/round\(round)"]?.outcome.checkpoint)
                XCTAssertTrue(released.contains(hash), "seed \(seed) round \(round) released")
            }
        }
    }

    /// Results are journaled in groups (fewer writes than results), yet no task reaches a worker
    /// before the results it depends on are on disk.
    func testATaskIsSentOnlyAfterItsDependenciesAreJournaled() throws {
        var checked: JournalCheckingLink?
        let (coordinator, plan, _, run) = try coordinate(Self.impSpec, in: "durable", workers: 2, coordinatorLink: { link, plan, run in
            checked = JournalCheckingLink(link, plan: plan, journal: run.journalURL)
            return checked!
        })
        XCTAssertEqual(coordinator.allRecords.count, plan.tasks.count)
        XCTAssertEqual(try XCTUnwrap(checked).violations, [])
        XCTAssertGreaterThan(try XCTUnwrap(checked).tasksSent, 0)
        XCTAssertEqual(try Journal.read(run.journalURL).records.count, plan.tasks.count)
    }

    func testNoopResultsShareFsyncs() throws {
        let (_, _, journal, run) = try coordinate("name: many\nstudy: noop\nnoop_tasks: 400\n", in: "grouped", workers: 3)
        XCTAssertEqual(try Journal.read(run.journalURL).records.count, 400)
        XCTAssertLessThan(journal.commits, 400, "results arriving together share one fsync")
    }
}

/// A coordinator link that, on every task it carries, checks that the task's dependencies are
/// already in the journal file.
/// A link whose workers say they run other kernels than this machine's.
final class OtherEngineLink: CoordinatorLink {
    static let engine = "openblas haswell, onednn cpu_isa_avx2, block 8 (another node)"
    let inner: CoordinatorLink
    init(_ inner: CoordinatorLink) { self.inner = inner }
    var workers: [Int] { inner.workers }
    var gangWorkers: Set<Int> { inner.gangWorkers }
    func send(_ message: Message, to worker: Int) throws { try inner.send(message, to: worker) }
    func receive(timeout: Double) throws -> (worker: Int, message: Message)? { try inner.receive(timeout: timeout).map(Self.rewrite) }
    func poll() throws -> (worker: Int, message: Message)? { try inner.poll().map(Self.rewrite) }
    static func rewrite(_ received: (worker: Int, message: Message)) -> (worker: Int, message: Message) {
        guard case let .hello(host, threads, _) = received.message else { return received }
        return (received.worker, .hello(host: host, threads: threads, engine: engine))
    }
}

final class JournalCheckingLink: CoordinatorLink {
    let inner: CoordinatorLink
    let plan: Plan
    let journal: URL
    private(set) var violations: [String] = []
    private(set) var tasksSent = 0

    init(_ inner: CoordinatorLink, plan: Plan, journal: URL) {
        self.inner = inner
        self.plan = plan
        self.journal = journal
    }

    var workers: [Int] { inner.workers }
    var gangWorkers: Set<Int> { inner.gangWorkers }
    func receive(timeout: Double) throws -> (worker: Int, message: Message)? { try inner.receive(timeout: timeout) }
    func poll() throws -> (worker: Int, message: Message)? { try inner.poll() }
    func send(_ message: Message, to worker: Int) throws {
        if case let .task(sent, _, _, _, _, _) = message, let task = plan[sent.key] {
            let key = sent.key
            tasksSent += 1
            let onDisk = Set(try Journal.read(journal).records.map(\.key))
            for d in task.dependencies where !onDisk.contains(d) { violations.append("\(key) before \(d)") }
        }
        try inner.send(message, to: worker)
    }
}

/// A worker link that remembers which artifacts the coordinator released.
final class RecordingWorkerLink: WorkerLink {
    let inner: WorkerLink
    private(set) var released: [String] = []

    init(_ inner: WorkerLink) { self.inner = inner }

    var id: Int { inner.id }
    func send(_ message: Message) throws { try inner.send(message) }
    func joinGang(_ gang: GangAssignment) throws -> GangLink { try inner.joinGang(gang) }
    func receive() throws -> Message {
        let m = try inner.receive()
        if case let .task(_, _, _, release, _, _) = m { released += release }
        return m
    }
}

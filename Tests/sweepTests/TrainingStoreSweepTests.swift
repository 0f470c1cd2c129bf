import Foundation
import StudyTestSupport
import XCTest

/// The training store as users meet it: a second study on the same recipe trains nothing and
/// measures what an uncached run measures, on one process or three ranks; concurrent sweeps,
/// damaged entries, a full store and a read-only one lose nothing.
final class TrainingStoreSweepTests: StudyTestCase {
    var dir: URL!
    var store: String { dir.appendingPathComponent("store").path }

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("store-sweeps-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(at: dir) }

    /// One recipe (two ResNet-8s on synthetic images), asked by `study`.
    func spec(_ name: String, study: String, seeds: Int = 2) throws -> String {
        let path = dir.appendingPathComponent("\(name).yaml").path
        let own = study == "zeroing" ? "masks: [zeroKernel]\nlayers: [stem.conv, stage2.*, fc]" : "sensitivity: {sparsities: [0.5, 0.9], methods: [unstructured]}\nlayers: [fc, stage3.*]"
        try """
        name: \(name)
        study: \(study)
        seed: 11
        datasets: [{name: synthetic, train_limit: 384, test_limit: 128}]
        models: [resnet8]
        seeds: \(seeds)
        training: {epochs: 2, batch_size: 32, learning_rate: 0.05}
        \(own)
        """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// `sweep ARGS` with the test's store (or none), `mpi` ranks, and a command before it (unshare).
    func sweep(_ arguments: [String], mpi: Int? = nil, store useStore: Bool = true, wrapper: [String] = []) throws -> (status: Int32, stdout: String, stderr: String) {
        let p = SweepProcess.process(arguments, mpi: mpi)
        p.environment?["LAYERSWEEP_CACHE"] = useStore ? store : "off"
        if !wrapper.isEmpty {
            p.arguments = Array(wrapper.dropFirst()) + [p.executableURL!.path] + p.arguments!
            p.executableURL = URL(fileURLWithPath: wrapper[0])
        }
        return try SweepProcess.run(p)
    }

    func output(_ name: String) -> String { dir.appendingPathComponent("runs/\(name)").path }

    /// results.json's rows by key, without the columns that say where and how fast a task ran
    /// (and whether the store served it).
    func measured(_ run: String) throws -> [String: NSDictionary] {
        let data = try Data(contentsOf: URL(fileURLWithPath: output(run)).appendingPathComponent("results.json"))
        let rows = try XCTUnwrap((try JSONSerialization.jsonObject(with: data) as? [String: Any])?["rows"] as? [[String: Any]])
        return Dictionary(uniqueKeysWithValues: rows.map { row in
            (row["key"] as! String, NSDictionary(dictionary: row.filter { !["seconds", "rank", "host", "cached"].contains($0.key) }))
        })
    }

    func trainRows(_ run: String) throws -> [[String: Any]] {
        let data = try Data(contentsOf: URL(fileURLWithPath: output(run)).appendingPathComponent("results.json"))
        let rows = (try JSONSerialization.jsonObject(with: data) as? [String: Any])?["rows"] as? [[String: Any]] ?? []
        return rows.filter { $0["kind"] as? String == "train" }
    }

    func entries() -> [String] { (try? FileManager.default.contentsOfDirectory(atPath: store + "/trainings"))?.sorted() ?? [] }

    func testASensitivitySweepAfterAZeroingSweepTrainsNothingAndMeasuresTheSame() throws {
        let zeroing = try spec("zero", study: "zeroing"), sensitivity = try spec("sens", study: "sensitivity")
        var run = try sweep(["run", zeroing, "-o", output("zero"), "-j", "2"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stderr.contains("0 trainings taken from it, 2 added"), run.stderr)
        XCTAssertEqual(entries().count, 2)

        let plan = try sweep(["plan", sensitivity])
        XCTAssertTrue(plan.stdout.contains("holds 2 of the 2 trainings"), plan.stdout)
        let planJSON = try sweep(["plan", sensitivity, "--json"])
        let forecast = (try JSONSerialization.jsonObject(with: Data(planJSON.stdout.utf8)) as? [String: Any])?["store"] as? [String: Any]
        XCTAssertEqual(forecast?["stored"] as? Int, 2, planJSON.stdout)
        XCTAssertTrue(try sweep(["plan", sensitivity, "--no-cache"]).stdout.contains("training store") == false)

        // Warm, on one process and on three ranks; cold, with the store bypassed.
        run = try sweep(["run", sensitivity, "-o", output("warm"), "-j", "2"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stderr.contains("2 trainings taken from it, 0 added"), run.stderr)
        XCTAssertTrue(run.stderr.contains("(from the training store)"), run.stderr)
        XCTAssertFalse(run.stderr.contains("epoch 1/2"), "nothing trains: \(run.stderr)")
        run = try sweep(["run", sensitivity, "-o", output("warm3")], mpi: 3)
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stderr.contains("2 trainings taken from it, 0 added"), run.stderr)
        run = try sweep(["run", sensitivity, "-o", output("cold"), "-j", "2", "--no-cache"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertFalse(run.stderr.contains("training store"), run.stderr)

        let cold = try measured("cold")
        XCTAssertEqual(cold.count, 2 + 2 + 2 * 2 * 3, "two trainings, two baselines, two sparsities of three layers (fc, stage3.block1.conv1/2) per network")
        XCTAssertEqual(try measured("warm"), cold)
        XCTAssertEqual(try measured("warm3"), cold)
        for row in try trainRows("warm") {
            let origin = try XCTUnwrap(row["cached"] as? String)
            XCTAssertTrue(origin.contains("trained by sweep zero in \(output("zero"))"), origin)
            XCTAssertEqual(row["rank"] as? Int, 0)
        }
        XCTAssertTrue(try trainRows("cold").allSatisfy { $0["cached"] == nil })
        let report = try String(contentsOfFile: output("warm") + "/report.html", encoding: .utf8)
        XCTAssertTrue(report.contains("2 of 2 trained networks came from the training store, trained by sweep zero in"), "the report says so")
        let csv = try String(contentsOfFile: output("warm") + "/results.csv", encoding: .utf8)
        XCTAssertTrue(csv.split(separator: "\n")[0].hasSuffix(",error,cached,seconds,rank,host"))

        // A damaged entry: one line, that network trained again (and stored again), the same results.
        let victim = store + "/trainings/" + entries()[0] + "/checkpoint.safetensors"
        let bytes = try Data(contentsOf: URL(fileURLWithPath: victim))
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: victim))
        run = try sweep(["run", sensitivity, "-o", output("damaged")])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertEqual(run.stderr.components(separatedBy: "is damaged").count - 1, 1, run.stderr)
        XCTAssertTrue(run.stderr.contains("1 training taken from it, 1 added"), run.stderr)
        XCTAssertEqual(try measured("damaged"), cold)

        // One training setting changed, or another sweep seed: every training misses.
        let changed = try String(contentsOfFile: sensitivity, encoding: .utf8)
        for (name, text) in [("lr", changed.replacingOccurrences(of: "learning_rate: 0.05", with: "learning_rate: 0.06")),
                             ("seed", changed.replacingOccurrences(of: "seed: 11", with: "seed: 12"))] {
            let path = dir.appendingPathComponent("\(name).yaml").path
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            XCTAssertTrue(try sweep(["plan", path]).stdout.contains("holds none of the 2 trainings"), name)
        }
    }

    func testTwoSweepsAtOnceOnOneStoreLoseNothing() throws {
        let zeroing = try spec("zero", study: "zeroing"), sensitivity = try spec("sens", study: "sensitivity")
        let first = SweepProcess.process(["run", zeroing, "-o", output("a")]), second = SweepProcess.process(["run", sensitivity, "-o", output("b")])
        for p in [first, second] { p.environment?["LAYERSWEEP_CACHE"] = store }
        final class Box: @unchecked Sendable { var result: (status: Int32, stdout: String, stderr: String)? }
        let other = Box()
        let done = DispatchSemaphore(value: 0)
        Thread {
            other.result = try? SweepProcess.run(second)
            done.signal()
        }.start()
        let mine = try SweepProcess.run(first)
        XCTAssertEqual(done.wait(timeout: .now() + 300), .success)
        XCTAssertEqual(mine.status, 0, mine.stderr)
        XCTAssertEqual(other.result?.status, 0, other.result?.stderr ?? "did not finish")
        XCTAssertEqual(entries().count, 2, "one entry per training, whichever sweep stored it")
        XCTAssertEqual((try? FileManager.default.contentsOfDirectory(atPath: store + "/tmp"))?.count ?? 0, 0, "no staging copy is left")
        // Each network is the same whoever trained it, and the store serves it intact.
        let hashes = { (run: String) in Set(try self.trainRows(run).compactMap { $0["checkpoint"] as? String }) }
        XCTAssertEqual(try hashes("a"), try hashes("b"))
        let again = try sweep(["run", sensitivity, "-o", output("c")])
        XCTAssertTrue(again.stderr.contains("2 trainings taken from it, 0 added"), again.stderr)
        XCTAssertEqual(try measured("c"), try measured("b"))
    }

    /// Needs a private mount namespace (root, `unshare -m`): a 64 KB tmpfs as a full store, and a
    /// read-only bind mount of a filled one.
    func testAFullOrReadOnlyStoreWarnsAndTheSweepFinishes() throws {
        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
        probe.arguments = ["-m", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"]
        probe.standardError = FileHandle.nullDevice
        guard (try? probe.run()) != nil, ({ probe.waitUntilExit(); return probe.terminationStatus == 0 })() else {
            throw XCTSkip("needs root and unshare -m (a private mount namespace) to make a full and a read-only store")
        }
        let zeroing = try spec("zero", study: "zeroing"), sensitivity = try spec("sens", study: "sensitivity", seeds: 3)
        try FileManager.default.createDirectory(atPath: store, withIntermediateDirectories: true)
        // Full: a checkpoint is larger than the whole store.
        var run = try sweep(["run", zeroing, "-o", output("full")],
                            wrapper: ["/usr/bin/unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs \"$0\" && exec \"$@\"", store])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertEqual(run.stderr.components(separatedBy: "cannot take trainings").count - 1, 1, "one warning: \(run.stderr)")
        XCTAssertTrue(run.stderr.contains("No space left on device"), run.stderr)
        XCTAssertTrue(run.stderr.contains("0 trainings taken from it, 0 added"), run.stderr)
        XCTAssertEqual(entries().count, 0, "the tmpfs went with its namespace")
        run = try sweep(["run", zeroing, "-o", output("uncached")], store: false)
        XCTAssertEqual(try measured("full"), try measured("uncached"))

        // Read-only: what it holds is served, what it lacks is trained and not stored.
        run = try sweep(["run", zeroing, "-o", output("fill")])
        XCTAssertEqual(entries().count, 2)
        run = try sweep(["run", sensitivity, "-o", output("readonly")],
                        wrapper: ["/usr/bin/unshare", "-m", "sh", "-c", "mount --bind \"$0\" \"$0\" && mount -o remount,ro,bind \"$0\" && exec \"$@\"", store])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stderr.contains("2 trainings taken from it, 0 added"), run.stderr)
        XCTAssertEqual(run.stderr.components(separatedBy: "cannot take trainings").count - 1, 1, run.stderr)
        XCTAssertTrue(run.stderr.contains("Read-only file system"), run.stderr)
        XCTAssertEqual(entries().count, 2)
        run = try sweep(["run", sensitivity, "-o", output("readonly-cold")], store: false)
        XCTAssertEqual(try measured("readonly"), try measured("readonly-cold"))
    }

    /// IMP's dense round, distillation's teachers, reuse's source and target networks: stored
    /// by the first run, taken by the second, the same results.
    func testEveryStudysTrainingsComeFromTheStore() throws {
        let head = "datasets: [{name: synthetic, train_limit: 256, test_limit: 64}]\ntraining: {epochs: 1, batch_size: 32, learning_rate: 0.05}\n"
        let studies = [
            ("imp", 1, head + "models: [fcn-32-bn]\npruning: {rate: 0.3, rounds: 2, rewind_step: 4, one_shot: true}"),
            ("distill", 1, head + "models: [resnet8]\ndistillation: {conv_layers: [1], budgets: [20000], losses: [logits], teacher_training: {epochs: 2, batch_size: 32, learning_rate: 0.05}}"),
            ("reuse", 2, """
            datasets: [{name: a, base: synthetic, classes: [0, 1], train_limit: 256, test_limit: 64}, {name: b, base: synthetic, classes: [2, 3], train_limit: 256, test_limit: 64}]
            training: {epochs: 1, batch_size: 32, learning_rate: 0.05}
            models: [resnet8]
            layers: [stem.conv]
            reuse: {pairs: [{source: a, target: b}], prefixes: [3], modes: [frozen]}
            """),
        ]
        for (study, trainings, body) in studies {
            let path = dir.appendingPathComponent("\(study).yaml").path
            try "name: \(study)\nstudy: \(study)\n\(body)\n".write(toFile: path, atomically: true, encoding: .utf8)
            let cold = try sweep(["run", path, "-o", output("\(study)-cold")])
            XCTAssertEqual(cold.status, 0, cold.stderr)
            XCTAssertTrue(cold.stderr.contains("0 trainings taken from it, \(trainings) added"), "\(study): \(cold.stderr)")
            let warm = try sweep(["run", path, "-o", output("\(study)-warm")])
            XCTAssertTrue(warm.stderr.contains("\(trainings) training\(trainings == 1 ? "" : "s") taken from it, 0 added"), "\(study): \(warm.stderr)")
            XCTAssertEqual(try measured("\(study)-warm"), try measured("\(study)-cold"), study)
            XCTAssertEqual(try trainRows("\(study)-warm").filter { $0["cached"] != nil }.count, trainings, study)
        }
    }

    func testTheCacheCommandListsShowsRemovesAndPrunes() throws {
        let run = try sweep(["run", try spec("zero", study: "zeroing"), "-o", output("zero")])
        XCTAssertEqual(run.status, 0, run.stderr)
        let keys = entries()
        let list = try sweep(["cache", "list", "--cache", store], store: false)
        XCTAssertTrue(list.stdout.contains("2 trainings"), list.stdout)
        XCTAssertTrue(list.stdout.contains("synthetic/resnet8/seed1 acc 0."), list.stdout)
        let show = try sweep(["cache", "show", String(keys[0].prefix(6))])
        XCTAssertEqual(show.status, 0, show.stderr)
        XCTAssertTrue(show.stdout.contains("key:        \(keys[0])") && show.stdout.contains("epochs: 2, batch_size: 32"), show.stdout)
        let bad = try sweep(["cache", "show", "xyz"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("is not a store key"), bad.stderr)
        let removed = try sweep(["cache", "remove", String(keys[0].prefix(8))])
        XCTAssertTrue(removed.stdout.contains("removed 1 training"), removed.stdout)
        XCTAssertEqual(entries(), [keys[1]])
        XCTAssertTrue(try sweep(["cache", "prune", "--older-than", "30d"]).stdout.contains("removed 0 trainings"))
        let pruned = try sweep(["cache", "prune", "--max-size", "1K"])
        XCTAssertTrue(pruned.stdout.contains("removed 1 training") && pruned.stdout.contains("0 left"), pruned.stdout)
        XCTAssertTrue(try sweep(["cache", "prune", "--max-size", "ten"]).stderr.contains("--max-size"))
    }
}

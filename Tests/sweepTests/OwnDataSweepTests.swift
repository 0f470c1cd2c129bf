import Datasets
import Foundation
import StudyTestSupport
import XCTest

/// A sweep over the user's own data: Fashion-MNIST's first 2,000 images written as IDX, as an
/// image folder of PNGs and of JPEGs and as an .npz (by `Fixtures/fashion_formats.py`, with
/// Pillow). One network evaluated on each gives the same accuracies through IDX, PNG and .npz;
/// ranks started where the files are not read them from rank 0; a changed file is not resumed
/// into old results.
final class OwnDataSweepTests: StudyTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("own-sweep-\(UUID())")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("elsewhere"), withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(at: dir) }

    func fixture() throws {
        guard let python = ProcessInfo.processInfo.environment["LAYERSWEEP_PYTHON"], !python.isEmpty else {
            throw XCTSkip("SKIPPED: LAYERSWEEP_PYTHON is not set (scripts/test sets it to a venv with numpy and Pillow)")
        }
        guard FileManager.default.fileExists(atPath: "/usr/share/datasets/fashion-mnist") else {
            throw XCTSkip("SKIPPED: dataset-fashion-mnist is not installed (scripts/setup installs it)")
        }
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/fashion_formats.py")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: python)
        p.arguments = [script.path, dir.appendingPathComponent("data").path, "2000"]
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, "fashion_formats.py failed (numpy and Pillow in LAYERSWEEP_PYTHON?)")
    }

    /// `mpirun -n 1 (in the run's directory) : -n 2 (in a directory without the data)`.
    func mpmd(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let p = SweepProcess.process([])
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["mpirun", "-n", "1", "--wdir", dir.path, SweepProcess.executable] + arguments
            + [":", "-n", "2", "--wdir", dir.appendingPathComponent("elsewhere").path, SweepProcess.executable] + arguments
        return try SweepProcess.run(p)
    }

    func rows(_ run: String) throws -> [[String: String]] {
        let lines = try String(contentsOfFile: dir.appendingPathComponent("\(run)/results.csv").path, encoding: .utf8).split(separator: "\n")
        let header = lines[0].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        return lines.dropFirst().map { line in
            Dictionary(uniqueKeysWithValues: zip(header, line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)))
        }
    }

    func testOneNetworkThroughIDXPNGAndNpzGivesTheSameAccuracies() throws {
        try fixture()
        let data = dir.appendingPathComponent("data").path

        // JPEG pixels: libjpeg-turbo here, Pillow's bundled libjpeg-turbo there, the same bits.
        let jpeg = try DatasetSource(format: .imagefolder, train: ["\(data)/jpeg/train"], test: ["\(data)/jpeg/test"]).load(name: "j")
        let pillow = try NumPyArchive("\(data)/pillow_jpeg.npz")
        for (split, ours) in [("train", jpeg.train), ("test", jpeg.test)] {
            guard case let .bytes(theirs) = try pillow.array("x_\(split)").elements else { return XCTFail("uint8") }
            let mine = ours.images.map { UInt8(($0 * 255).rounded()) }
            XCTAssertEqual(mine.count, theirs.count)
            XCTAssertEqual(zip(mine, theirs).filter { $0 != $1 }.count, 0, "JPEG \(split) pixels differ from Pillow's decoding")
        }

        let listing = try SweepProcess.run(["datasets", "\(data)/png"])
        XCTAssertEqual(listing.status, 0, listing.stderr)
        XCTAssertTrue(listing.stdout.contains("classes: 10 (0_tshirt, 1_trouser"), listing.stdout)
        XCTAssertTrue(listing.stdout.contains("train: 2000 images"), listing.stdout)
        XCTAssertTrue(listing.stdout.contains("images: 1 x 28 x 28 (grey, 8-bit)"), listing.stdout)
        XCTAssertTrue(listing.stdout.contains("format: imagefolder, train: \(data)/png/train, test: \(data)/png/test"), listing.stdout)

        let trained = try SweepProcess.run(["train", "--dataset", "fashion-mnist", "--data-dir", "\(data)/idx", "--model", "student-c2-w1",
                                            "--epochs", "1", "-o", dir.appendingPathComponent("net.safetensors").path])
        XCTAssertEqual(trained.status, 0, trained.stderr)
        // sweep eval (and sweep train) take a dataset's path as well as its name.
        var evaluated: [String] = []
        for dataset in [["--dataset", "fashion-mnist", "--data-dir", "\(data)/idx"], ["--dataset", "\(data)/png"], ["--dataset", "\(data)/data.npz"]] {
            let eval = try SweepProcess.run(["eval", dir.appendingPathComponent("net.safetensors").path] + dataset + ["--mean", "0.286", "--std", "0.353"])
            XCTAssertEqual(eval.status, 0, eval.stderr)
            evaluated.append(eval.stdout)
        }
        XCTAssertTrue(evaluated[0].contains("test accuracy 0."), evaluated[0])
        XCTAssertEqual(Set(evaluated).count, 1, "the same accuracy and loss through IDX, PNG and npz: \(evaluated)")

        let spec = dir.appendingPathComponent("own.yaml").path
        try """
        name: own
        datasets:
          - {name: fm-idx, format: idx, data_dir: data/idx}
          - {name: fm-png, format: imagefolder, train: data/png/train, test: data/png/test}
          - {name: fm-npz, format: npz, train: data/data.npz, test: data/data.npz}
          - {name: fm-jpeg, format: imagefolder, train: data/jpeg/train, test: data/jpeg/test}
        models:
          - {name: student-c2-w1, checkpoints: [\(dir.path)/net.safetensors], normalization: {mean: [0.286], std: [0.353]}}
        masks: [zeroKernel]
        """.write(toFile: spec, atomically: true, encoding: .utf8)
        let run = try mpmd(["run", spec, "--output", dir.appendingPathComponent("run").path])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stderr.contains("cannot read the files of dataset"), "ranks 1 and 2 run where data/ is not: \(run.stderr)")
        let results = try rows("run")
        XCTAssertEqual(results.filter { $0["status"] == "ok" }.count, results.count)
        var byTask: [String: [String: String]] = [:]
        for row in results where row["kind"] != "load" {
            byTask["\(row["kind"]!)/\(row["layer"]!)/\(row["mask"]!)", default: [:]][row["dataset"]!] = row["test_accuracy"]
        }
        XCTAssertEqual(byTask.count, 5, "a baseline and four units")
        for (task, accuracy) in byTask {
            XCTAssertEqual(accuracy["fm-png"], accuracy["fm-idx"], task)
            XCTAssertEqual(accuracy["fm-npz"], accuracy["fm-idx"], task)
            XCTAssertNotNil(accuracy["fm-jpeg"], task)
        }
        XCTAssertTrue(results.allSatisfy { ($0["key"] ?? "").range(of: "^fm-[a-z]+@[0-9a-f]{12}/", options: .regularExpression) != nil },
                      "own data is named by its fingerprint in keys")

        // One PNG changes: its dataset's tasks run again under a new fingerprint; the others resume.
        let victim = "\(data)/png/test/0_tshirt"
        let files = try FileManager.default.contentsOfDirectory(atPath: victim).sorted()
        try FileManager.default.removeItem(atPath: "\(victim)/\(files[0])")
        try FileManager.default.copyItem(atPath: "\(data)/png/test/1_trouser/" + (try FileManager.default.contentsOfDirectory(atPath: "\(data)/png/test/1_trouser").sorted()[0]),
                                         toPath: "\(victim)/\(files[0])")
        let resume = SweepProcess.process(["run", "--resume", dir.appendingPathComponent("run").path], mpi: 2)
        resume.currentDirectoryURL = dir   // paths in the sweep file are relative to where sweep runs
        let resumed = try SweepProcess.run(resume)
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stderr.contains("warning: dataset fm-png: its files changed since this run started"), resumed.stderr)
        XCTAssertTrue(resumed.stderr.contains("24 tasks (18 journaled before)"), "the load, baseline and four masks of fm-png run again: \(resumed.stderr)")
        let after = try rows("run")
        let pngBaseline = try XCTUnwrap(after.first { $0["dataset"] == "fm-png" && $0["kind"] == "baseline" })
        let before = try XCTUnwrap(results.first { $0["dataset"] == "fm-png" && $0["kind"] == "baseline" })
        XCTAssertNotEqual(pngBaseline["key"], before["key"], "a new fingerprint in the key")
        XCTAssertEqual(after.first { $0["dataset"] == "fm-npz" && $0["kind"] == "baseline" }?["key"],
                       results.first { $0["dataset"] == "fm-npz" && $0["kind"] == "baseline" }?["key"])
    }
}

extension OwnDataSweepTests {
    /// Trainings with torchvision's random crop and flip give the same networks on one worker
    /// and on three ranks, and other networks than without augmentation.
    func testAugmentedTrainingIsTheSameUnderAnyRankCount() throws {
        try fixture()
        func spec(_ augment: String) throws -> String {
            let path = dir.appendingPathComponent("aug-\(augment.isEmpty ? "none" : "on").yaml").path
            try """
            name: aug
            datasets:
              - {name: fm, format: npz, train: \(dir.path)/data/data.npz, test: \(dir.path)/data/data.npz, train_limit: 400, test_limit: 300\(augment)}
            models: [student-c2-w1]
            seeds: 2
            training: {epochs: 2, batch_size: 32}
            masks: [zeroKernel]
            layers: [conv1]
            """.write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }
        let augmented = try spec(", augment: {random_crop: {size: 28, padding: 2}, horizontal_flip: true}")
        for (file, out, ranks) in [(augmented, "one", nil), (augmented, "three", 3), (try spec(""), "plain", nil)] as [(String, String, Int?)] {
            let result = try SweepProcess.run(["run", file, "--output", dir.appendingPathComponent(out).path] + (ranks == nil ? ["-j", "1"] : []), mpi: ranks)
            XCTAssertEqual(result.status, 0, result.stderr)
        }
        func accuracies(_ run: String) throws -> [String: String] {
            Dictionary(uniqueKeysWithValues: try rows(run).map { ($0["key"]!, $0["test_accuracy"]!) })
        }
        XCTAssertEqual(try accuracies("one"), try accuracies("three"))
        XCTAssertNotEqual(try accuracies("one").values.sorted(), try accuracies("plain").values.sorted(), "augmentation changes the training")
    }

    /// A dataset derived from own data (some classes, a transform) runs like any other, named
    /// by its source's fingerprint.
    func testADatasetDerivedFromOwnDataRuns() throws {
        try fixture()
        let spec = dir.appendingPathComponent("derived.yaml").path
        try """
        name: derived
        datasets:
          - {name: fm, format: npz, train: \(dir.path)/data/data.npz, test: \(dir.path)/data/data.npz, train_limit: 300, test_limit: 200}
          - {name: fm-01, base: fm, classes: [0, 1], transform: flip}
        models: [student-c2-w1]
        seeds: 1
        training: {epochs: 1, batch_size: 32}
        masks: [zeroKernel]
        layers: [conv1]
        """.write(toFile: spec, atomically: true, encoding: .utf8)
        let result = try SweepProcess.run(["run", spec, "--output", dir.appendingPathComponent("derived").path, "-j", "2"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let derived = try rows("derived").filter { $0["dataset"] == "fm-01" }
        XCTAssertEqual(derived.count, 3, "train, baseline, conv1")
        XCTAssertTrue(derived.allSatisfy { $0["status"] == "ok" && $0["key"]!.hasPrefix("fm-01@") })
        let fingerprint = { (rows: [[String: String]]) in rows.first!["key"]!.split(separator: "/")[0].split(separator: "@")[1] }
        XCTAssertEqual(fingerprint(derived), fingerprint(try rows("derived").filter { $0["dataset"] == "fm" }))
    }

    /// Bad own data stops `sweep datasets`, `sweep plan` and `sweep run` on one line naming the
    /// file, with a non-zero exit and no run directory.
    func testBadOwnDataStopsEveryCommandOnOneLine() throws {
        let fm = FileManager.default
        try fm.createDirectory(at: dir.appendingPathComponent("folder/train/a"), withIntermediateDirectories: true)
        try fm.createDirectory(at: dir.appendingPathComponent("folder/train/b"), withIntermediateDirectories: true)
        try fm.createDirectory(at: dir.appendingPathComponent("folder/test/a"), withIntermediateDirectories: true)
        try Data().write(to: dir.appendingPathComponent("folder/train/a/x.png"))
        let spec = dir.appendingPathComponent("bad.yaml").path
        let out = dir.appendingPathComponent("run").path
        try """
        name: bad
        datasets: [{name: mine, format: imagefolder, train: \(dir.path)/folder/train, test: \(dir.path)/folder/test}]
        models: [resnet20]
        masks: [zeroKernel]
        output: \(out)
        """.write(toFile: spec, atomically: true, encoding: .utf8)
        for arguments in [["datasets", "\(dir.path)/folder/train"], ["plan", spec], ["run", spec]] {
            let result = try SweepProcess.run(arguments)
            XCTAssertNotEqual(result.status, 0, "\(arguments)")
            let lines = result.stderr.split(separator: "\n").filter { $0.hasPrefix("Error:") }
            XCTAssertEqual(lines.count, 1, result.stderr)
            XCTAssertTrue(result.stderr.contains("folder/train/a/x.png: is empty (0 bytes)"), "\(arguments): \(result.stderr)")
        }
        XCTAssertFalse(fm.fileExists(atPath: out), "nothing started")
        try Data([1, 2, 3]).write(to: dir.appendingPathComponent("folder/train/a/x.png"))
        let empty = try SweepProcess.run(["plan", spec])
        XCTAssertTrue(empty.stderr.contains("folder/train/a: class folder holds no PNG or JPEG images"), empty.stderr)
    }
}

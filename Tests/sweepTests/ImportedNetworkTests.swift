import Foundation
import StudyTestSupport
import XCTest

/// Networks trained elsewhere in a sweep file: `mpirun -n 2 --oversubscribe sweep run FILE` with
/// `models: [{name: resnet8, checkpoints: [net.safetensors]}]`, the PyTorch-named fixture of
/// `Tests/ProceduresTests/Fixtures/pytorch_resnet.py`. Only rank 0 reads the file; the zeroing rows
/// agree with the reference's accuracies; a file that does not fit fails its load task on one line
/// and skips what depends on it.
final class ImportedNetworkTests: StudyTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("imported-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(at: dir) }

    func fixture() throws -> URL {
        guard let python = ProcessInfo.processInfo.environment["LAYERSWEEP_PYTHON"], !python.isEmpty else {
            throw XCTSkip("SKIPPED: LAYERSWEEP_PYTHON is not set (scripts/test sets it to a venv with numpy and safetensors)")
        }
        let out = dir.appendingPathComponent("fixture")
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("ProceduresTests/Fixtures/pytorch_resnet.py")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: python)
        p.arguments = [script.path, out.path, "B"]
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0)
        return out
    }

    struct Reference: Decodable { let accuracy: Double; let masks: [String: Double] }

    func testASweepOverAPyTorchCheckpointMatchesTheReference() throws {
        let fixture = try fixture()
        let reference = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: fixture.appendingPathComponent("reference.json")))
        let spec = dir.appendingPathComponent("imported.yaml").path
        try """
        name: imported
        datasets: [{name: fashion-mnist, data_dir: \(fixture.path)}]
        models:
          - {name: resnet8-b, checkpoints: [\(fixture.path)/net.safetensors]}
        masks: [zeroKernel, zeroBranch]
        """.write(toFile: spec, atomically: true, encoding: .utf8)
        let out = dir.appendingPathComponent("run").path
        let run = try SweepProcess.run(["run", spec, "--output", out], mpi: 2)
        XCTAssertEqual(run.status, 0, run.stderr)
        let rows = try String(contentsOfFile: "\(out)/results.csv", encoding: .utf8).split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        let header = rows[0]
        func column(_ name: String) -> Int { header.firstIndex(of: name)! }
        let body = rows.dropFirst()
        XCTAssertEqual(body.filter { $0[column("kind")] == "load" && $0[column("status")] == "ok" }.count, 1)
        XCTAssertTrue(body.allSatisfy { $0[column("key")].contains("/ckpt-") }, "the checkpoint's hash takes the seed's place in every key")
        let baseline = try XCTUnwrap(body.first { $0[column("kind")] == "baseline" })
        XCTAssertEqual(Double(baseline[column("test_accuracy")])!, reference.accuracy, accuracy: 1e-9)
        var compared = 0
        for row in body where row[column("kind")] == "mask" {
            let key = "\(row[column("layer")])/\(row[column("mask")])"
            guard let expected = reference.masks[key] else { continue }
            XCTAssertEqual(Double(row[column("delta_accuracy")])!, expected - reference.accuracy, accuracy: 0.002, key)
            compared += 1
        }
        XCTAssertEqual(compared, reference.masks.count)

        // sweep layers --checkpoint and sweep eval read the PyTorch file directly.
        let layers = try SweepProcess.run(["layers", "--checkpoint", "\(fixture.path)/net.safetensors", "--input", "1,12,12"])
        XCTAssertEqual(layers.status, 0, layers.stderr)
        XCTAssertTrue(layers.stdout.contains("resnet8-b, 1x12x12 inputs, 10 classes"), layers.stdout)
        XCTAssertTrue(layers.stdout.contains("stage2.block1.shortcut.conv"), layers.stdout)
        let eval = try SweepProcess.run(["eval", "\(fixture.path)/net.safetensors", "--dataset", "fashion-mnist", "--data-dir", fixture.path])
        XCTAssertEqual(eval.status, 0, eval.stderr)
        XCTAssertTrue(eval.stdout.contains(String(format: "test accuracy %.4f", reference.accuracy)), eval.stdout)

        // A checkpoint listed under the wrong architecture: refused on one short line before the
        // run directory is made, by `sweep run` and `sweep plan` alike.
        let wrong = dir.appendingPathComponent("wrong.yaml").path
        try String(contentsOfFile: spec, encoding: .utf8).replacingOccurrences(of: "name: resnet8-b,", with: "name: resnet20,")
            .replacingOccurrences(of: "name: imported", with: "name: wrong").write(toFile: wrong, atomically: true, encoding: .utf8)
        let wrongRun = dir.appendingPathComponent("wrong").path
        for arguments in [["run", wrong, "--output", wrongRun], ["plan", wrong]] {
            let failed = try SweepProcess.run(arguments)
            XCTAssertEqual(failed.status, 1)
            XCTAssertTrue(failed.stderr.hasPrefix("Error: \(fixture.path)/net.safetensors: tensors that do not fit resnet20"), failed.stderr)
            XCTAssertEqual(failed.stderr.split(separator: "\n").count, 1, failed.stderr)
            XCTAssertLessThan(failed.stderr.count, 600 + fixture.path.count, failed.stderr)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: wrongRun))
    }

    /// Study reuse with an imported source network: `sweep run FILE` copies kernels from the
    /// PyTorch-trained network (trained on the source dataset) into a target trained here.
    func testAnImportedNetworkIsAReuseSource() throws {
        let fixture = try fixture()
        let spec = dir.appendingPathComponent("reuse.yaml").path
        try """
        name: reuse-imported
        study: reuse
        datasets:
          - {name: fashion-mnist, data_dir: \(fixture.path)}
          - {name: flipped, base: fashion-mnist, data_dir: \(fixture.path), transform: flip}
        models:
          - {name: resnet8-b, checkpoints: [\(fixture.path)/net.safetensors]}
        training: {epochs: 1, batch_size: 64, learning_rate: 0.05}
        layers: [stage1.block1.conv1]
        reuse: {pairs: [{source: fashion-mnist, target: flipped}], modes: [frozen, finetuned]}
        """.write(toFile: spec, atomically: true, encoding: .utf8)
        let out = dir.appendingPathComponent("reuse").path
        let r = try SweepProcess.run(["run", spec, "--output", out, "-j", "2"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let csv = try String(contentsOfFile: "\(out)/results.csv", encoding: .utf8)
        XCTAssertTrue(csv.contains("/ckpt-") && csv.contains(",reuse,load,"), csv)
        XCTAssertFalse(csv.contains("fashion-mnist/resnet8-b/seed0/train"), "the source network is not trained here")
        let kinds = csv.split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false) }
        XCTAssertEqual(kinds.filter { $0[2] == "reuse" && $0.contains("ok") }.count, 2, csv)
    }
}

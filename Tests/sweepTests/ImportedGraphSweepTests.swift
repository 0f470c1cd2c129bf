import Foundation
import StudyTestSupport
import XCTest

/// The zeroing study on imported ONNX graphs (Tests/ONNXTests/Fixtures/exports), with the real
/// launcher: `mpirun -n 3 --oversubscribe sweep run FILE` with
/// `models: [{name: r18, checkpoints: [resnet18.onnx, ...]}]`. Only rank 0 reads the files (and
/// their external data); the Δs are PyTorch's; the table does not depend on the rank count and
/// a resumed run completes it.
final class ImportedGraphSweepTests: StudyTestCase {
    var dir: URL!
    var exports: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("ONNXTests/Fixtures/exports")
    }

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("graph-sweep-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(at: dir) }

    struct Reference: Decodable {
        struct Network: Decodable { let accuracy: Double; let units: [String: [String: Double]] }
        let networks: [String: Network]
    }

    func writeSpec(_ models: String, masks: String = "[zeroKernel, zeroBranch]", layers: String = "all", extra: String = "") throws -> String {
        let path = dir.appendingPathComponent("graphs.yaml").path
        try """
        name: graphs
        datasets: [{name: fashion-mnist, data_dir: \(exports.path)/data}]
        models:
        \(models)
        layers: \(layers)
        masks: \(masks)
        \(extra)
        """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// results.json's rows.
    func rows(_ run: String) throws -> [[String: Any]] {
        let document = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(run)/results.json"))) as! [String: Any]
        return document["rows"] as! [[String: Any]]
    }

    /// results.csv rows without the run-dependent columns (seconds, rank, host).
    func stable(_ run: String) throws -> [String] {
        try String(contentsOfFile: "\(run)/results.csv", encoding: .utf8).split(separator: "\n").map {
            $0.split(separator: ",", omittingEmptySubsequences: false).dropLast(3).joined(separator: ",")
        }
    }

    func testAZeroingSweepOfGraphsGivesPyTorchsDeltasOnAnyRankCount() throws {
        let reference = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: exports.appendingPathComponent("reference.json")))
        let spec = try writeSpec("""
          - {name: r18, checkpoints: [\(exports.path)/resnet18.onnx, \(exports.path)/resnet18-bn.onnx]}
          - {name: mnv2, checkpoints: [\(exports.path)/mobilenetv2-legacy.onnx]}
          - {name: vgg, checkpoints: [\(exports.path)/vgg.onnx]}
        """)
        let one = dir.appendingPathComponent("one").path
        let r = try SweepProcess.run(["run", spec, "--output", one])
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = try String(contentsOfFile: "\(one)/results.csv", encoding: .utf8).split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        let header = lines[0]
        func column(_ name: String) -> Int { header.firstIndex(of: name)! }
        let rows = lines.dropFirst()
        XCTAssertTrue(rows.allSatisfy { $0[column("status")] == "ok" }, "every task ok")
        let arch = ["r18": "resnet18", "mnv2": "mobilenetv2", "vgg": "vgg"]
        var compared = 0
        for row in rows {
            let expected = reference.networks[arch[row[column("model")]]!]!
            if row[column("kind")] == "baseline" { XCTAssertEqual(Double(row[column("test_accuracy")])!, expected.accuracy, accuracy: 0.002) }
            guard row[column("kind")] == "mask" else { continue }
            let torch = try XCTUnwrap(expected.units[row[column("layer")]]?[row[column("mask")]], "\(row[column("layer")]) \(row[column("mask")])")
            XCTAssertEqual(Double(row[column("delta_accuracy")])!, torch - expected.accuracy, accuracy: 0.002, row[column("key")])
            compared += 1
        }
        XCTAssertEqual(compared, 2 * (21 + 8) + (20 + 3) + 7, "every unit of the three graphs, under each mask that applies")
        let units = try String(contentsOfFile: "\(one)/units.csv", encoding: .utf8)
        XCTAssertTrue(units.contains("fashion-mnist,r18,layer2.0.downsample.0,zeroKernel,2,"), units)

        let three = dir.appendingPathComponent("three").path
        let m = try SweepProcess.run(["run", spec, "--output", three], mpi: 3)
        XCTAssertEqual(m.status, 0, m.stderr)
        XCTAssertEqual(try stable(three), try stable(one), "the same table on 3 ranks as on 1")

        // A run cut short resumes to the same table.
        let journal = "\(three)/journal.jsonl"
        let kept = try String(contentsOfFile: journal, encoding: .utf8).split(separator: "\n").prefix(20)
        try (kept.joined(separator: "\n") + "\n").write(toFile: journal, atomically: true, encoding: .utf8)
        let resumed = try SweepProcess.run(["run", "--resume", three], mpi: 2)
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertEqual(try stable(three), try stable(one))
        let report = try String(contentsOfFile: "\(three)/report.html", encoding: .utf8)
        XCTAssertTrue(report.contains("layer2.0.downsample.0") && report.contains("features.3"), "the heatmap names the graphs' units")
    }

    /// The sensitivity study on graphs with BN nodes: every layer pruned to half (single weights
    /// and whole filters, alone and with BN re-estimated) gives PyTorch's Δ.
    func testASensitivitySweepOfGraphsGivesPyTorchsDeltas() throws {
        let reference = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: exports.appendingPathComponent("reference.json")))
        let path = dir.appendingPathComponent("sensitivity.yaml").path
        try """
        name: graph-sensitivity
        study: sensitivity
        datasets: [{name: fashion-mnist, data_dir: \(exports.path)/data}]
        models:
          - {name: r18, checkpoints: [\(exports.path)/resnet18-bn.onnx]}
          - {name: mnv2, checkpoints: [\(exports.path)/mobilenetv2-bn.onnx]}
          - {name: vgg, checkpoints: [\(exports.path)/vgg-bn.onnx]}
        layers: all
        training: {batch_size: 256}
        evaluation: {recalibration_batches: 1}
        sensitivity: {sparsities: [0.5], methods: [unstructured, structured], recalibrate: true}
        """.write(toFile: path, atomically: true, encoding: .utf8)
        let out = dir.appendingPathComponent("run").path
        let r = try SweepProcess.run(["run", path, "--output", out])
        XCTAssertEqual(r.status, 0, r.stderr)
        let table = try rows(out)
        let arch = ["r18": "resnet18", "mnv2": "mobilenetv2", "vgg": "vgg"]
        var compared = 0
        for row in table where row["kind"] as? String == "pruneLayer" {
            let (model, layer, mask) = (row["model"] as! String, row["layer"] as! String, row["mask"] as! String)
            let expected = reference.networks[arch[model]!]!
            let key = "\(mask)/\(String(format: "%.4f", row["sparsity"] as! Double))"
            let torch = try XCTUnwrap(expected.units[layer]?[key], "\(layer) \(key)")
            XCTAssertEqual(row["delta_accuracy"] as! Double, torch - expected.accuracy, accuracy: 0.002, row["key"] as! String)
            compared += 1
        }
        XCTAssertEqual(compared, 4 * (21 + 20 + 7), "every conv and linear layer of the three graphs, four ways")
    }

    /// zeroKernelRecalibrated gives PyTorch's Δ on a graph with BN nodes; randomInit redraws the
    /// weights by the task's seed alone (the same table on 3 ranks as on 1).
    func testRecalibratedAndRandomInitMasksOnAGraph() throws {
        let reference = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: exports.appendingPathComponent("reference.json")))
        let spec = try writeSpec("  - {name: r18, checkpoints: [\(exports.path)/resnet18-bn.onnx]}", masks: "[zeroKernelRecalibrated, randomInit]",
                                 extra: "training: {batch_size: 256}\nevaluation: {recalibration_batches: 1}")
        let one = dir.appendingPathComponent("one").path
        let r = try SweepProcess.run(["run", spec, "--output", one])
        XCTAssertEqual(r.status, 0, r.stderr)
        let table = try rows(one)
        let r18 = reference.networks["resnet18"]!
        var recalibrated = 0, random = 0
        for row in table where row["kind"] as? String == "mask" {
            XCTAssertEqual(row["status"] as? String, "ok", row["key"] as! String)
            if row["mask"] as? String == "zeroKernelRecalibrated" {
                let torch = try XCTUnwrap(r18.units[row["layer"] as! String]?["zeroKernelRecalibrated"])
                XCTAssertEqual(row["delta_accuracy"] as! Double, torch - r18.accuracy, accuracy: 0.002, row["key"] as! String)
                recalibrated += 1
            } else {
                random += 1
            }
        }
        XCTAssertEqual([recalibrated, random], [20, 21], "every conv recalibrated, every conv and linear redrawn")
        let three = dir.appendingPathComponent("three").path
        let m = try SweepProcess.run(["run", spec, "--output", three], mpi: 3)
        XCTAssertEqual(m.status, 0, m.stderr)
        XCTAssertEqual(try stable(three), try stable(one), "the same redrawn weights on 3 ranks as on 1")
    }

    /// What a graph sweep cannot do is one line before anything runs.
    func testGraphSweepMistakesAreOneLineBeforeAnyWork() throws {
        let r18 = "  - {name: r18, checkpoints: [\(exports.path)/resnet18.onnx]}"
        let cases: [(String, String, String, String)] = [
            (r18, "[zeroKernelRecalibrated]", "all", "resnet18.onnx: has no BatchNormalization nodes to re-estimate (folded at export): export with BN kept"),
            (r18, "[zeroKernel]", "[block9.*]", "'block9.*' matches no unit; units of r18: conv1, layer1.0.conv1"),
            ("  - {name: mixed, checkpoints: [\(exports.path)/resnet18.onnx, \(exports.path)/vgg.onnx]}", "[zeroKernel]", "all",
             "has other units than the first file of model mixed"),
            ("  - {name: r18, checkpoints: [\(exports.path)/resnet18.onnx, net.safetensors]}", "[zeroKernel]", "all",
             "list either ONNX files (.onnx) or safetensors files under one model, not both"),
        ]
        for (models, masks, layers, expected) in cases {
            let spec = try writeSpec(models, masks: masks, layers: layers)
            let out = dir.appendingPathComponent("run").path
            let r = try SweepProcess.run(["run", spec, "--output", out])
            XCTAssertEqual(r.status, 1, r.stderr)
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
            XCTAssertTrue(r.stderr.contains(expected), "\(expected): \(r.stderr)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out), "nothing made")
        }
    }
}

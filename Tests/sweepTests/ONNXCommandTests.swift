import Foundation
import StudyTestSupport
import XCTest

/// `sweep layers net.onnx` and `sweep eval net.onnx` on the PyTorch exports of
/// Tests/ONNXTests/Fixtures/exports, and bad files as one line.
final class ONNXCommandTests: StudyTestCase {
    var exports: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("ONNXTests/Fixtures/exports")
    }

    struct Reference: Decodable {
        struct Network: Decodable { let accuracy: Double }
        let networks: [String: Network]
    }

    func testLayersListsAGraphsUnitsAsTextAndJSON() throws {
        let text = try SweepProcess.run(["layers", exports.appendingPathComponent("resnet18-legacy.onnx").path])
        XCTAssertEqual(text.status, 0, text.stderr)
        let lines = text.stdout.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines[0].hasSuffix("resnet18-legacy.onnx: 1x28x28 inputs, 29 units"), lines[0])
        XCTAssertTrue(lines.contains { $0.hasPrefix("layer2.0.downsample.0 ") && $0.contains(" conv ") && $0.hasSuffix("8x4x4") }, text.stdout)
        XCTAssertTrue(lines.contains { $0.hasPrefix("layer4.1 ") && $0.contains(" branch ") && $0.contains(" Add ") }, text.stdout)
        struct Row: Decodable { let name: String; let kind: String; let op: String; let parameters: Int; let output_shape: [Int] }
        let json = try SweepProcess.run(["layers", exports.appendingPathComponent("mobilenetv2.onnx").path, "--json"])
        XCTAssertEqual(json.status, 0, json.stderr)
        let rows = try JSONDecoder().decode([Row].self, from: Data(json.stdout.utf8))
        XCTAssertEqual(rows.first?.name, "features.0.0")
        XCTAssertEqual(rows.filter { $0.kind == "branch" }.map(\.name), ["features.1", "features.3", "features.5"])
        XCTAssertEqual(rows.last.map { [$0.name, $0.op] }, ["classifier.1", "Gemm"])
    }

    func testEvalOfAnExportGivesPyTorchsAccuracy() throws {
        let reference = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: exports.appendingPathComponent("reference.json")))
        for arch in ["resnet18", "mobilenetv2", "vgg"] {
            let r = try SweepProcess.run(["eval", exports.appendingPathComponent("\(arch).onnx").path, "--dataset", "fashion-mnist",
                                          "--data-dir", exports.appendingPathComponent("data").path])
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertTrue(r.stdout.contains(String(format: "test accuracy %.4f", reference.networks[arch]!.accuracy)), "\(arch): \(r.stdout)")
        }
    }

    /// `sweep bench --onnx FILE --against MODEL` times the graph and the built-in model on the same
    /// images in turn and reports both rates and their ratio; an unknown model is one line.
    func testBenchComparesAGraphWithABuiltInModel() throws {
        let file = exports.appendingPathComponent("resnet18.onnx").path
        let r = try SweepProcess.run(["bench", "--onnx", file, "--against", "resnet20", "--seconds", "0.01", "--batch-size", "4", "--threads", "1", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let row = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], r.stdout)
        let (graph, builtIn, ratio) = (row["images_per_second"] as? Double ?? 0, row["built_in_images_per_second"] as? Double ?? 0, row["ratio"] as? Double ?? 0)
        XCTAssertGreaterThan(graph, 0, r.stdout)
        XCTAssertGreaterThan(builtIn, 0, r.stdout)
        XCTAssertEqual(ratio, graph / builtIn, accuracy: 1e-9 * ratio)
        XCTAssertEqual(row["model"] as? String, "resnet20")
        let unknown = try SweepProcess.run(["bench", "--onnx", file, "--against", "resnet999", "--seconds", "0.01", "--batch-size", "4"])
        XCTAssertNotEqual(unknown.status, 0)
        XCTAssertEqual(unknown.stderr.split(separator: "\n").count, 1, unknown.stderr)
        XCTAssertTrue(unknown.stderr.contains("resnet999"), unknown.stderr)
    }

    /// A graph for other images, a truncated file, a missing external-data file: one line each.
    func testBadGraphsAreOneLine() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("onnx-cli-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let whole = try Data(contentsOf: exports.appendingPathComponent("vgg-legacy.onnx"))
        try whole.prefix(whole.count / 2).write(to: dir.appendingPathComponent("cut.onnx"))
        try FileManager.default.copyItem(at: exports.appendingPathComponent("vgg.onnx"), to: dir.appendingPathComponent("alone.onnx"))
        let cases: [([String], String)] = [
            (["eval", exports.appendingPathComponent("vgg.onnx").path, "--dataset", "synthetic"], "the graph takes 1x28x28 inputs; synthetic has 1x12x12"),
            (["eval", dir.appendingPathComponent("cut.onnx").path, "--dataset", "synthetic"], "not a readable ONNX model"),
            (["layers", dir.appendingPathComponent("alone.onnx").path], "alone.onnx: tensor 'features.0.weight' is stored in vgg.onnx.data, which is missing beside the model"),
        ]
        for (arguments, expected) in cases {
            let r = try SweepProcess.run(arguments)
            XCTAssertEqual(r.status, 1, "\(arguments): \(r.stderr)")
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
            XCTAssertTrue(r.stderr.contains(expected), "\(arguments): \(r.stderr)")
        }
    }
}

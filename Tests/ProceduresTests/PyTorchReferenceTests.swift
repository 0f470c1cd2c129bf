import Datasets
import Foundation
import Models
import Procedures
import TensorEngine
import XCTest

/// A ResNet trained by PyTorch (or, without torch, a NumPy reference network) written with
/// PyTorch's names by `Fixtures/pytorch_resnet.py`: imported, it gives the reference's logits
/// within 1e-4 (relative to their scale), its test accuracy, and every zeroKernel / zeroBranch
/// accuracy change within 0.002 of the reference's.
final class PyTorchReferenceTests: XCTestCase {
    func fixture(option: String) throws -> URL {
        guard let python = ProcessInfo.processInfo.environment["LAYERSWEEP_PYTHON"], !python.isEmpty else {
            throw XCTSkip("SKIPPED: LAYERSWEEP_PYTHON is not set (scripts/test sets it to a venv with numpy and safetensors)")
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("torchref-\(option)-\(UUID())")
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/pytorch_resnet.py")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: python)
        p.arguments = [script.path, dir.path, option]
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, "the fixture script failed")
        return dir
    }

    struct Reference: Decodable {
        let framework: String
        let accuracy: Double
        let masks: [String: Double]
    }

    func testImportedNetworkMatchesTheReferenceAndItsMasks() throws {
        Parallel.configure(threads: 2)
        for option in ["A", "B"] {
            let dir = try fixture(option: option)
            defer { try? FileManager.default.removeItem(at: dir) }
            let reference = try JSONDecoder().decode(Reference.self, from: try Data(contentsOf: dir.appendingPathComponent("reference.json")))
            let data = try DatasetCatalog.load("fashion-mnist", dataDirectory: dir.path)
            let file = try SafeTensorsFile.read(dir.appendingPathComponent("net.safetensors"))
            func network() throws -> Network { try TorchImport.network(from: file, path: "net.safetensors", inputShape: data.test.shape) }
            let net = try network()
            XCTAssertEqual(net.spec.name, option == "A" ? "resnet8" : "resnet8-b")

            let expected = try XCTUnwrap(try SafeTensorsFile.read(dir.appendingPathComponent("reference.safetensors"))["logits"])
            let (x, _) = data.test.batch(Array(0..<data.test.count)[...])
            let logits = net.forward(x, training: false)
            XCTAssertEqual(logits.shape, expected.shape)
            let scale = (0..<expected.count).map { abs(expected.data[$0]) }.max() ?? 1
            let worst = (0..<expected.count).map { abs(logits.data[$0] - expected.data[$0]) }.max() ?? 0
            XCTAssertLessThanOrEqual(worst / scale, 1e-4, "\(reference.framework), option \(option): logits differ by \(worst) at scale \(scale)")
            let base = Evaluation.run(net, on: data.test)
            XCTAssertEqual(base.accuracy, reference.accuracy, accuracy: 1e-9, "\(reference.framework), option \(option)")

            XCTAssertGreaterThan(reference.masks.count, 10)
            for (key, maskedAccuracy) in reference.masks.sorted(by: { $0.key < $1.key }) {
                let parts = key.split(separator: "/")
                let masked = try network()
                let unit = try XCTUnwrap(masked.unit(String(parts[0])), key)
                try Masking.apply(try XCTUnwrap(MaskKind(rawValue: String(parts[1]))), to: unit, of: masked, context: MaskContext(seed: 0))
                let ours = Evaluation.run(masked, on: data.test).accuracy - base.accuracy
                XCTAssertEqual(ours, maskedAccuracy - reference.accuracy, accuracy: 0.002, "\(reference.framework), option \(option), \(key)")
            }
        }
    }
}

import Datasets
import Foundation
@testable import ONNX
import TensorEngine
import XCTest

/// Networks as PyTorch 2.13 exports them (Fixtures/make_onnx_fixtures.py): a torchvision-style
/// ResNet-18 (7x7 stem, MaxPool, 1x1 downsample projections), a MobileNetV2 (depthwise
/// convolutions, ReLU6 as Clip, residual Adds) and a VGG (MaxPool, Dropout, Linear), each from
/// the default exporter (BN folded, weights in `.onnx.data`), the TorchScript exporter (BN folded)
/// and with BatchNormalization nodes kept. Every file gives onnxruntime's logits within 1e-4.
final class PyTorchExportTests: XCTestCase {
    static var fixtures: URL { Bundle.module.url(forResource: "exports", withExtension: nil)! }

    struct Reference: Decodable {
        struct Normalization: Decodable { let mean: [Float]; let std: [Float] }
        struct Network: Decodable { let accuracy: Double; let units: [String: [String: Double]] }
        let normalization: Normalization
        let networks: [String: Network]
    }

    func testEveryExportGivesOnnxruntimesLogits() throws {
        Parallel.configure(threads: 2)
        let root = PyTorchExportTests.fixtures
        let reference = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: root.appendingPathComponent("reference.json")))
        // The images as layersweep normalises them (the training split's mean and deviation).
        let test = try DatasetCatalog.load("fashion-mnist", dataDirectory: root.appendingPathComponent("data").path).test
        XCTAssertEqual(test.count, 256)
        let x = ONNXValue.floats([test.count] + test.shape, test.images)
        for arch in ["resnet18", "mobilenetv2", "vgg"] {
            let stored = try Data(contentsOf: root.appendingPathComponent("\(arch).logits"))
            let expected: [Float] = stored.withUnsafeBytes { raw in
                (0..<(stored.count / 4)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
            }
            for variant in ["", "-legacy", "-bn"] {
                let program = try ONNXProgram(contentsOf: root.appendingPathComponent("\(arch)\(variant).onnx"))
                XCTAssertEqual(program.inputNames.count, 1, "\(arch)\(variant)")
                let logits = try XCTUnwrap(try program.run([program.inputNames[0]: x])[program.outputNames[0]])
                XCTAssertEqual(logits.shape, [256, 10], "\(arch)\(variant)")
                var worst: Float = 0
                for (a, b) in zip(logits.floatValues, expected) { worst = max(worst, abs(a - b) / max(1, abs(b))) }
                XCTAssertLessThanOrEqual(worst, 1e-4, "\(arch)\(variant): worst relative difference \(worst)")
                var correct = 0
                for i in 0..<test.count {
                    let row = logits.floatValues[(i * 10)..<((i + 1) * 10)]
                    if row.firstIndex(of: row.max()!)! - i * 10 == Int(test.labels[i]) { correct += 1 }
                }
                XCTAssertEqual(Double(correct) / Double(test.count), reference.networks[arch]!.accuracy, accuracy: 1.0 / 256, "\(arch)\(variant)")
            }
        }
    }

    /// Units carry PyTorch's module paths in all three exports, and every zeroKernel and zeroBranch
    /// accuracy is PyTorch's within 0.002 (BN folded or not: the folded bias is the norm's constant).
    func testUnitsAreNamedByModulePathAndMasksGivePyTorchsAccuracies() throws {
        Parallel.configure(threads: 2)
        let root = PyTorchExportTests.fixtures
        let reference = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: root.appendingPathComponent("reference.json")))
        let test = try DatasetCatalog.load("fashion-mnist", dataDirectory: root.appendingPathComponent("data").path).test
        let x = ONNXValue.floats([test.count] + test.shape, test.images)
        func accuracy(_ program: ONNXProgram) throws -> Double {
            let logits = try XCTUnwrap(try program.run([program.inputNames[0]: x])[program.outputNames[0]]).floatValues
            var correct = 0
            for i in 0..<test.count {
                let row = logits[(i * 10)..<((i + 1) * 10)]
                if row.firstIndex(of: row.max()!)! - i * 10 == Int(test.labels[i]) { correct += 1 }
            }
            return Double(correct) / Double(test.count)
        }
        for (arch, expected) in reference.networks.sorted(by: { $0.key < $1.key }) {
            for variant in ["", "-legacy", "-bn"] {
                let program = try ONNXProgram(contentsOf: root.appendingPathComponent("\(arch)\(variant).onnx"))
                let names = Set(program.units.map(\.name))
                XCTAssertEqual(names, Set(expected.units.keys), "\(arch)\(variant): units \(program.units.map(\.name))")
                for (unit, masks) in expected.units.sorted(by: { $0.key < $1.key }) where names.contains(unit) {
                    // (The other references, recalibration and pruning, are the sweep tests'.)
                    for (mask, torchAccuracy) in masks {
                        guard let graphMask = ONNXProgram.Mask(rawValue: mask) else { continue }
                        let masked = try program.masked(graphMask, unit: unit)
                        XCTAssertEqual(try accuracy(masked), torchAccuracy, accuracy: 0.002, "\(arch)\(variant) \(unit) \(mask)")
                    }
                }
            }
        }
    }
}

import Foundation
@testable import ONNX
import TensorEngine
import XCTest

/// The ONNX backend node tests (Debian's `libonnx-testdata`, which `scripts/setup` installs):
/// every test whose operators layersweep runs gives the stored outputs (rtol 1e-3, atol 1e-5).
/// A test is skipped only when it uses an operator outside `ONNXProgram.supported`, a value
/// type layersweep does not read (strings, float16, ...), or a variant listed in `excluded`
/// with its reason; anything else that fails, fails the test.
final class NodeConformanceTests: XCTestCase {
    static var dataDirectory: URL {
        URL(fileURLWithPath: ProcessInfo.processInfo.environment["LAYERSWEEP_ONNX_NODE_TESTS"] ?? "/usr/share/libonnx-testdata/data/node")
    }

    /// Variants of supported operators that layersweep deliberately does not run, and why.
    static let excluded: [String: String] = [
        "test_averagepool_3d_default": "3-D windows (layersweep runs 1-D and 2-D)",
        "test_maxpool_3d_default": "3-D windows (layersweep runs 1-D and 2-D)",
        "test_convtranspose_3d": "3-D windows (layersweep runs 1-D and 2-D)",
        "test_batchnorm_epsilon_training_mode": "training-mode batch norm (networks are exported in eval mode)",
        "test_batchnorm_example_training_mode": "training-mode batch norm (networks are exported in eval mode)",
        "test_maxpool_with_argmax_2d_precomputed_pads": "MaxPool's indices output",
        "test_maxpool_with_argmax_2d_precomputed_strides": "MaxPool's indices output",
        "test_training_dropout": "training-mode dropout (random)",
        "test_training_dropout_default": "training-mode dropout (random)",
        "test_training_dropout_default_mask": "training-mode dropout (random)",
        "test_training_dropout_mask": "training-mode dropout (random)",
    ]

    enum Verdict: Equatable {
        case passed
        case skipped(String)
        case failed(String)
    }

    /// Runs one node test folder.
    static func verdict(_ folder: URL) -> Verdict {
        let model: ONNXModel
        do { model = try ONNXModel(try Data(contentsOf: folder.appendingPathComponent("model.onnx"))) } catch {
            return .failed("model.onnx: \(error)")
        }
        let ops = Set(model.graph.nodes.map(\.opType))
        if let missing = ops.subtracting(ONNXProgram.supported).sorted().first { return .skipped("operator \(missing)") }
        if let reason = excluded[folder.lastPathComponent] { return .skipped(reason) }
        if (model.graph.inputs + model.graph.outputs).contains(where: { $0.elementType == 0 }) { return .skipped("sequence or optional values") }
        let set = folder.appendingPathComponent("test_data_set_0")
        func tensors(_ prefix: String) throws -> [ONNXValue]? {
            var out: [ONNXValue] = []
            var i = 0
            while let data = FileManager.default.contents(atPath: set.appendingPathComponent("\(prefix)_\(i).pb").path) {
                let proto = try ONNXTensorProto(file: data)
                guard [1, 6, 7, 9, 11].contains(proto.dataType) else { return nil }
                out.append(try proto.value(directory: nil))
                i += 1
            }
            return out
        }
        do {
            guard let inputs = try tensors("input"), let expected = try tensors("output") else { return .skipped("value type") }
            let program = try ONNXProgram(model, directory: folder)
            guard inputs.count == program.inputNames.count else { return .failed("\(inputs.count) inputs for \(program.inputNames)") }
            let outputs = try program.run(Dictionary(uniqueKeysWithValues: zip(program.inputNames, inputs)))
            for (name, want) in zip(program.outputNames, expected) {
                guard let got = outputs[name] else { return .failed("no output \(name)") }
                guard got.shape == want.shape else { return .failed("\(name): shape \(got.shape), expected \(want.shape)") }
                for (i, (a, b)) in zip(got.floatValues, want.floatValues).enumerated() where !(a.isNaN && b.isNaN) {
                    guard abs(a - b) <= 1e-5 + 1e-3 * abs(b) else { return .failed("\(name)[\(i)] = \(a), expected \(b)") }
                }
            }
            return .passed
        } catch {
            return .failed("\(error)")
        }
    }

    func testEveryNodeTestOfTheSupportedOperatorsGivesTheStoredOutputs() throws {
        let root = NodeConformanceTests.dataDirectory
        guard let folders = try? FileManager.default.contentsOfDirectory(atPath: root.path), !folders.isEmpty else {
            throw XCTSkip("SKIPPED: no ONNX node tests at \(root.path) (scripts/setup installs libonnx-testdata)")
        }
        var (passed, failed, skipped) = (0, [String](), 0)
        for name in folders.sorted() where name.hasPrefix("test_") {
            switch NodeConformanceTests.verdict(root.appendingPathComponent(name)) {
            case .passed: passed += 1
            case .skipped: skipped += 1
            case .failed(let why): failed.append("\(name): \(why)")
            }
        }
        print("onnx node tests: \(passed) passed, \(failed.count) failed, \(skipped) skipped (unsupported op or type)")
        for f in failed { print("  FAILED \(f)") }
        XCTAssertEqual(failed, [])
        XCTAssertGreaterThanOrEqual(passed, 116, "the inference tests of the supported operators")
    }
}

/// The real architectures of the onnx wheel's `backend/test/data/light/` (ResNet-50,
/// DenseNet-121, SqueezeNet, ShuffleNet, Inception, VGG-19, AlexNet, ZFNet; weights made by
/// ConstantOfShape), on the input the ONNX backend tests feed them (arange(n)/n): each gives its
/// stored output, or names the operator it lacks. `LAYERSWEEP_ONNX_LIGHT` is the folder
/// (`scripts/test` points it into the venv it makes).
final class LightModelTests: XCTestCase {
    func testTheLightModelsGiveTheirStoredOutputsOrNameTheirMissingOperator() throws {
        guard let path = ProcessInfo.processInfo.environment["LAYERSWEEP_ONNX_LIGHT"],
              let names = try? FileManager.default.contentsOfDirectory(atPath: path) else {
            throw XCTSkip("SKIPPED: LAYERSWEEP_ONNX_LIGHT is not set (scripts/test sets it to the onnx wheel's light models)")
        }
        Parallel.configure(threads: 2)
        var ran = 0
        for name in names.sorted() where name.hasSuffix(".onnx") {
            let url = URL(fileURLWithPath: path).appendingPathComponent(name)
            let program: ONNXProgram
            do { program = try ONNXProgram(contentsOf: url) } catch {
                let text = "\(error)"
                XCTAssertTrue(text.contains("is not supported; layersweep runs"), "\(name): \(text)")
                print("onnx light: \(name): \(text.components(separatedBy: " is not supported").first ?? text)")
                continue
            }
            guard let input = program.model.graph.inputs.first(where: { $0.name == program.inputNames.first }),
                  let dims = input.shape?.map({ Int($0 ?? 1) }) else { XCTFail("\(name): no input shape"); continue }
            let count = dims.reduce(1, *)
            let x = ONNXValue.floats(dims, (0..<count).map { Float(Double($0) / Double(count)) })
            let expected = try ONNXTensorProto(file: try Data(contentsOf: url.deletingPathExtension().appendingPathExtension("").appendingPathComponent("").deletingLastPathComponent()
                .appendingPathComponent(name.replacingOccurrences(of: ".onnx", with: "_output_0.pb")))).value(directory: nil)
            let got = try XCTUnwrap(try program.run([program.inputNames[0]: x])[program.outputNames[0]])
            XCTAssertEqual(got.shape, expected.shape, name)
            var worst: Float = 0
            for (a, b) in zip(got.floatValues, expected.floatValues) { worst = max(worst, abs(a - b) / (1e-5 + 1e-3 * abs(b))) }
            XCTAssertLessThanOrEqual(worst, 1, "\(name): worst error \(worst) of the tolerance")
            print("onnx light: \(name): stored output reproduced (worst error \(String(format: "%.3f", worst)) of the tolerance)")
            ran += 1
        }
        XCTAssertGreaterThan(ran, 0)
    }
}

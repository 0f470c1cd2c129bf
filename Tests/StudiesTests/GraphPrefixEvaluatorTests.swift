import Datasets
import Foundation
import ONNX
import Studies
import TensorEngine
import XCTest

/// Masked runs of an imported graph started at the masked unit's first node, from the unmasked
/// run's live values, give the bits of whole runs (Tests/ONNXTests/Fixtures/exports).
final class GraphPrefixEvaluatorTests: XCTestCase {
    func testMaskedRunsFromTheCutEqualWholeRunsBitForBit() throws {
        Parallel.configure(threads: 2)
        let exports = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("ONNXTests/Fixtures/exports")
        let test = try DatasetCatalog.load("fashion-mnist", dataDirectory: exports.appendingPathComponent("data").path).test.prefix(96)
        for arch in ["resnet18", "mobilenetv2-legacy", "vgg-bn"] {
            let program = try ONNXProgram(contentsOf: exports.appendingPathComponent("\(arch).onnx"))
            let cached = try GraphPrefixEvaluator(program, data: test, batchSize: 40, budgetBytes: 64 << 20)
            let none = try GraphPrefixEvaluator(program, data: test, batchSize: 40, budgetBytes: 0)
            XCTAssertGreaterThan(cached.bytes, 0, arch)
            XCTAssertEqual(none.bytes, 0)
            let whole = try GraphEvaluation.run(program, on: test, batchSize: 40)
            XCTAssertEqual(cached.baseline, whole, arch)
            XCTAssertEqual(cached.baseline.hits, whole.hits)
            for unit in program.units {
                let mask: ONNXProgram.Mask = unit.kind == .branch ? .zeroBranch : .zeroKernel
                let masked = try program.masked(mask, unit: unit.name)
                let expected = try GraphEvaluation.run(masked, on: test, batchSize: 40)
                for evaluator in [cached, none] {
                    let got = try evaluator.evaluate(masked, cut: unit.nodes.min()!)
                    XCTAssertEqual(got.loss.bitPattern, expected.loss.bitPattern, "\(arch) \(unit.name)")
                    XCTAssertEqual(got.accuracy, expected.accuracy)
                    XCTAssertEqual(got.hits, expected.hits)
                }
            }
        }
    }
}

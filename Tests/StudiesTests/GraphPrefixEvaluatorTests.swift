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

    /// Cuts share values (a block's input is live at both of its convolutions): the budget pays
    /// for each value once, so a budget of exactly the distinct values keeps every cut.
    func testTheBudgetCountsAValueSharedByCutsOnce() throws {
        Parallel.configure(threads: 2)
        let exports = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("ONNXTests/Fixtures/exports")
        let test = try DatasetCatalog.load("fashion-mnist", dataDirectory: exports.appendingPathComponent("data").path).test.prefix(80)
        let program = try ONNXProgram(contentsOf: exports.appendingPathComponent("resnet18.onnx"))
        let cuts = Set(program.units.compactMap { $0.nodes.min() }).filter { $0 > 0 }
        let distinct = cuts.reduce(into: Set<String>()) { $0.formUnion(program.liveValues(at: $1)) }
        var perBatch = 0
        let x = ONNXValue.floats([40] + test.shape, Array(test.images.prefix(40 * test.imageSize)))
        _ = try program.run([program.inputNames[0]: x]) { name, value in
            if distinct.contains(name) { perBatch += value.count * 4 }
        }
        let shared = cuts.reduce(0) { $0 + program.liveValues(at: $1).count } - distinct.count
        XCTAssertGreaterThan(shared, 0, "a residual graph's cuts share values")
        let exact = try GraphPrefixEvaluator(program, data: test, batchSize: 40, budgetBytes: 2 * perBatch)
        XCTAssertEqual(exact.bytes, 2 * perBatch, "every cut kept, each value paid once")
        let short = try GraphPrefixEvaluator(program, data: test, batchSize: 40, budgetBytes: 2 * perBatch - 4)
        XCTAssertLessThan(short.bytes, 2 * perBatch)
    }
}

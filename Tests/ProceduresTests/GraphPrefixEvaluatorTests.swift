import Datasets
import Foundation
import ONNX
import Procedures
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

    /// A budget for part of the cuts keeps the ones `CachePlan` chooses, within the budget; a
    /// masked run whose own cut is not kept starts at the deepest kept cut before it and still
    /// gives the bits of a whole run.
    func testCutsThatDoNotFitResumeFromAnEarlierKeptCut() throws {
        Parallel.configure(threads: 2)
        let exports = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("ONNXTests/Fixtures/exports")
        let test = try DatasetCatalog.load("fashion-mnist", dataDirectory: exports.appendingPathComponent("data").path).test.prefix(80)
        let program = try ONNXProgram(contentsOf: exports.appendingPathComponent("resnet18.onnx"))
        let cuts = Set(program.units.compactMap { $0.nodes.min() }).filter { $0 > 0 }.sorted()
        let all = try GraphPrefixEvaluator(program, data: test, batchSize: 40, budgetBytes: 1 << 30)
        // Room for every cut: the frugal plan still leaves out those whose values would save
        // less than 1% of the work (a cut one cheap node after a kept one).
        XCTAssertTrue(Set(all.cachedCuts).isSubset(of: cuts))
        XCTAssertGreaterThan(all.cachedCuts.count, cuts.count / 2)
        let part = try GraphPrefixEvaluator(program, data: test, batchSize: 40, budgetBytes: all.bytes / 3)
        XCTAssertLessThanOrEqual(part.bytes, all.bytes / 3)
        XCTAssertFalse(part.cachedCuts.isEmpty)
        XCTAssertLessThan(part.cachedCuts.count, cuts.count)
        var resumedEarlier = 0
        for unit in program.units {
            let cut = unit.nodes.min()!
            if !part.cachedCuts.contains(cut), part.cachedCuts.contains(where: { $0 < cut }) { resumedEarlier += 1 }
            let masked = try program.masked(unit.kind == .branch ? .zeroBranch : .zeroKernel, unit: unit.name)
            let expected = try GraphEvaluation.run(masked, on: test, batchSize: 40)
            let got = try part.evaluate(masked, cut: cut)
            XCTAssertEqual(got.loss.bitPattern, expected.loss.bitPattern, unit.name)
            XCTAssertEqual(got.hits, expected.hits, unit.name)
        }
        XCTAssertGreaterThan(resumedEarlier, 0, "some masks start at an earlier kept cut")
    }
}

import Datasets
import Models
import Studies
import TensorEngine
import XCTest

final class PrefixEvaluatorTests: XCTestCase {
    override func setUp() { Parallel.configure(threads: 2) }

    /// Every (unit, mask) evaluated from reused prefixes equals a full forward pass, bit for bit,
    /// and the reuse saves layer passes.
    func testReusedPrefixesGiveIdenticalResultsWithLessWork() throws {
        let splits = DatasetSplits(rawTrain: SyntheticSpec().generate().train, rawTest: SyntheticSpec().generate().test)
        let net = Network.build(try ModelSpec(name: "resnet8", inputShape: [1, 12, 12], classes: 4), seed: 3)
        try Training.train(net, on: splits.train, config: TrainingConfig(epochs: 1, batchSize: 32, learningRate: 0.05))
        let file = Checkpoint.file(of: net)
        let evaluator = PrefixEvaluator(checkpoint: file, data: splits.test, batchSize: 50, budgetBytes: 64 << 20)
        var fullPasses = 0
        for unit in net.units {
            for mask in MaskKind.allCases where mask.applies(to: unit.kind) && mask != .zeroKernelRecalibrated {
                let context = MaskContext(seed: 9)
                let (fast, masked) = try evaluator.evaluate(mask: mask, unit: unit.name, context: context)
                let reference = try Checkpoint.network(from: file)
                try Masking.apply(mask, to: unit, of: reference, context: context)
                let full = Evaluation.run(reference, on: splits.test, batchSize: 50)
                XCTAssertEqual(fast, full, "\(unit.name) \(mask)")
                XCTAssertEqual(masked, unit.parameterCount)
                fullPasses += (reference.root as! Sequential).children.count * 6  // 256 test images in 6 batches
            }
        }
        let (baseline, _) = try evaluator.evaluate(mask: nil, unit: nil, context: MaskContext(seed: 0))
        XCTAssertEqual(baseline, Evaluation.run(try Checkpoint.network(from: file), on: splits.test, batchSize: 50))
        XCTAssertLessThan(evaluator.layerPasses, fullPasses * 2 / 3, "\(evaluator.layerPasses) of \(fullPasses) layer passes")
    }

    func testZeroBudgetStillCorrect() throws {
        let splits = DatasetSplits(rawTrain: SyntheticSpec().generate().train, rawTest: SyntheticSpec().generate().test)
        let net = Network.build(try ModelSpec(name: "resnet8", inputShape: [1, 12, 12], classes: 4), seed: 4)
        let file = Checkpoint.file(of: net)
        let evaluator = PrefixEvaluator(checkpoint: file, data: splits.test, batchSize: 64, budgetBytes: 0)
        let (a, _) = try evaluator.evaluate(mask: .zeroBranch, unit: "stage2.block1", context: MaskContext(seed: 1))
        let reference = try Checkpoint.network(from: file)
        try Masking.apply(.zeroBranch, to: reference.unit("stage2.block1")!, of: reference, context: MaskContext(seed: 1))
        XCTAssertEqual(a, Evaluation.run(reference, on: splits.test, batchSize: 64))
    }
}

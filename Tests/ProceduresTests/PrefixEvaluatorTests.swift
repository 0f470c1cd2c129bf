import Datasets
import Models
import Procedures
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

    /// A budget that holds part of the cache: what is kept stays within it, counted in the bytes
    /// actually held, and every result is still that of a full evaluation.
    func testATightBudgetIsKeptAndResultsStayExact() throws {
        let splits = DatasetSplits(rawTrain: SyntheticSpec().generate().train, rawTest: SyntheticSpec().generate().test)
        let net = Network.build(try ModelSpec(name: "resnet8", inputShape: [1, 12, 12], classes: 4), seed: 5)
        try Training.train(net, on: splits.train, config: TrainingConfig(epochs: 1, batchSize: 32, learningRate: 0.05))
        let file = Checkpoint.file(of: net)
        let budget = 1_000_000
        let evaluator = PrefixEvaluator(checkpoint: file, data: splits.test, batchSize: 50, budgetBytes: budget)
        let roomy = PrefixEvaluator(checkpoint: file, data: splits.test, batchSize: 50, budgetBytes: 64 << 20)
        for unit in net.units where unit.kind == .conv {
            let (fast, _) = try evaluator.evaluate(mask: .zeroKernel, unit: unit.name, context: MaskContext(seed: 2))
            XCTAssertEqual(fast, try roomy.evaluate(mask: .zeroKernel, unit: unit.name, context: MaskContext(seed: 2)).0, unit.name)
            let reference = try Checkpoint.network(from: file)
            try Masking.apply(.zeroKernel, to: unit, of: reference, context: MaskContext(seed: 2))
            XCTAssertEqual(fast, Evaluation.run(reference, on: splits.test, batchSize: 50), unit.name)
            XCTAssertLessThanOrEqual(evaluator.cachedBytes, budget)
        }
        XCTAssertGreaterThan(evaluator.cachedBytes, 0, "something fits in the budget")
        XCTAssertGreaterThan(roomy.cachedBytes, budget, "the budget left something out")
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

    /// The cache plan is the best subset: checked against every subset on random instances, and
    /// on a ResNet-20-shaped one where keeping the deepest inputs first (the old rule) wastes the
    /// budget on the pool's input, which no unit starts from.
    func testTheCachePlanIsTheBestSubsetWithinTheBudget() {
        func time(_ kept: Set<Int>, _ seconds: [Double], _ demand: [Double]) -> Double {
            CachePlan.prefixTime(kept, seconds: seconds, demand: demand)
        }
        var rng = RandomSource(seed: 12)
        for _ in 0..<40 {
            let n = 2 + Int(rng.nextUniform() * 7)
            let sizes = (0..<n).map { _ in Double(1 + Int(rng.nextUniform() * 100)) }
            let seconds = (0..<n).map { _ in Double(rng.nextUniform()) }
            let demand = (0..<n).map { _ in Double(Int(rng.nextUniform() * 4)) }
            let budget = Double(Int(rng.nextUniform() * 250))
            let chosen = CachePlan.choose(sizes: sizes, seconds: seconds, demand: demand, budget: budget)
            XCTAssertLessThanOrEqual(chosen.reduce(0) { $0 + sizes[$1] }, budget)
            XCTAssertFalse(chosen.contains(0))
            var bestTime = Double.infinity
            for mask in 0..<(1 << (n - 1)) {
                let subset = Set((1..<n).filter { mask & (1 << ($0 - 1)) != 0 })
                guard subset.reduce(0, { $0 + sizes[$1] }) <= budget else { continue }
                bestTime = min(bestTime, time(subset, seconds, demand))
            }
            XCTAssertEqual(time(chosen, seconds, demand), bestTime, accuracy: 1e-9)
        }
        // ResNet-20 on 10,000 28x28 images: stem, 9 blocks, pool, fc; MB per step input.
        let sizes: [Double] = [31, 500, 500, 500, 500, 250, 250, 250, 125, 125, 125, 0.3]
        let seconds: [Double] = [0.1] + [Double](repeating: 1, count: 9) + [0.01, 0.001]
        let demand: [Double] = [1] + [Double](repeating: 3, count: 9) + [0, 1]
        let chosen = CachePlan.choose(sizes: sizes, seconds: seconds, demand: demand, budget: 512)
        XCTAssertFalse(chosen.contains(10), "the pool's input helps no unit")
        XCTAssertTrue(chosen.isSuperset(of: [8, 9, 11]), "\(chosen.sorted())")
        let deepestFirst: Set = [11, 10, 9, 8]   // the old rule: deepest inputs while they fit
        XCTAssertLessThan(time(chosen, seconds, demand), 0.8 * time(deepestFirst, seconds, demand))
        // The frugal plan: the same time within 1% of all the work, in less memory where the
        // last bytes buy almost nothing (a deep input whose stretch is nearly free).
        for (budget, slack) in [(512.0, 0.01), (2000, 0.01), (2000, 0.1)] {
            let best = CachePlan.choose(sizes: sizes, seconds: seconds, demand: demand, budget: budget)
            let frugal = CachePlan.frugal(sizes: sizes, seconds: seconds, demand: demand, budget: budget, slack: slack)
            let whole = demand.reduce(0, +) * seconds.reduce(0, +)
            XCTAssertLessThanOrEqual(time(frugal, seconds, demand), time(best, seconds, demand) + slack * whole + 1e-9)
            XCTAssertLessThanOrEqual(frugal.reduce(0) { $0 + sizes[$1] }, best.reduce(0) { $0 + sizes[$1] })
        }
        let cheap: [Double] = [0.1] + [Double](repeating: 1, count: 9) + [0.01, 0.001]
        var tail = cheap
        tail[10] = 0.0001  // the last block's output before a nearly free pool: keeping it saves ~nothing
        let wasteful = CachePlan.choose(sizes: [31, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 900], seconds: tail, demand: demand, budget: 1000)
        let spare = CachePlan.frugal(sizes: [31, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 900], seconds: tail, demand: demand, budget: 1000)
        XCTAssertTrue(wasteful.contains(11))
        XCTAssertFalse(spare.contains(11), "900 bytes that save 0.0001 s of \(tail.reduce(0, +) * demand.reduce(0, +)) are not spent")
    }
}

import Foundation
@testable import SweepCore
import XCTest

/// The intervals and the paired test behind the trivial / harmful calls.
final class IntervalTests: XCTestCase {
    /// McNemar's exact p against hand-computed binomial tails.
    func testMcNemarMatchesHandComputedTables() {
        // b = 0, c = 5: 2 · (1/2)^5 = 0.0625.
        XCTAssertEqual(Statistics.mcnemar(worse: 0, better: 5), 0.0625, accuracy: 1e-12)
        // b = 1, c = 9: 2 · (1 + 10) / 1024 = 0.021484375.
        XCTAssertEqual(Statistics.mcnemar(worse: 1, better: 9), 22.0 / 1024, accuracy: 1e-12)
        // b = 3, c = 7: 2 · (1 + 10 + 45 + 120) / 1024 = 0.34375.
        XCTAssertEqual(Statistics.mcnemar(worse: 7, better: 3), 352.0 / 1024, accuracy: 1e-12)
        XCTAssertEqual(Statistics.mcnemar(worse: 4, better: 4), 1)
        XCTAssertEqual(Statistics.mcnemar(worse: 0, better: 0), 1)
        // Large counts stay finite (logs): 5000 vs 5200 discordant images.
        let p = Statistics.mcnemar(worse: 5000, better: 5200)
        XCTAssertTrue(p > 0.04 && p < 0.06, "\(p)")
    }

    func testPairedIntervalOfTheDifferenceOfPairedProportions() {
        // 1000 images, 60 worse, 20 better: Δ = -0.04, se = sqrt(80 - 1.6) / 1000.
        let (low, high) = Statistics.pairedInterval(worse: 60, better: 20, count: 1000)
        let se = (80 - 1.6).squareRoot() / 1000
        XCTAssertEqual(low, -0.04 - 1.959964 * se, accuracy: 1e-12)
        XCTAssertEqual(high, -0.04 + 1.959964 * se, accuracy: 1e-12)
        XCTAssertEqual(Statistics.call(low: low, high: high, threshold: 0.01), .harmful)
        XCTAssertEqual(Statistics.call(low: -0.004, high: 0.006, threshold: 0.01), .trivial)
        XCTAssertEqual(Statistics.call(low: -0.02, high: 0.001, threshold: 0.01), .undecided)
    }

    /// Coverage by simulation: a known Δ, seeds drawn around it; the 95% t interval over n seeds
    /// holds the true Δ in 93–97% of 4,000 trials, for n = 2, 3, 5 and 10.
    func testSeedIntervalCoverageIsNinetyFivePercent() {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func uniform() -> Double {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Double(state >> 11) / Double(1 << 53)
        }
        func normal() -> Double { (-2 * log(max(uniform(), 1e-300))).squareRoot() * cos(2 * .pi * uniform()) }
        let truth = -0.023
        for n in [2, 3, 5, 10] {
            var held = 0
            let trials = 4000
            for _ in 0..<trials {
                let seeds = (0..<n).map { _ in truth + 0.015 * normal() }
                let i = Statistics.meanInterval(seeds)!
                if i.low <= truth && truth <= i.high { held += 1 }
            }
            let coverage = Double(held) / Double(trials)
            XCTAssertTrue((0.93...0.97).contains(coverage), "n = \(n): coverage \(coverage)")
        }
        XCTAssertNil(Statistics.meanInterval([0.1]), "one seed has no interval over seeds")
    }

    func testUnitSummariesUseSeedsOrTheTestImagesAndFlagUnstableRanks() {
        func row(_ layer: String, seed: Int, delta: Double, low: Double? = nil, high: Double? = nil) -> ResultRow {
            var r = ResultRow(key: "d/m/seed\(seed)/\(layer)/zeroKernel", study: .zeroing, kind: .mask, dataset: "d", model: "m",
                              seed: seed, layer: layer, mask: "zeroKernel", status: .ok, testAccuracy: 0.9 + delta, testLoss: 0.3,
                              baselineAccuracy: 0.9, deltaAccuracy: delta, paramsMasked: 1, seconds: 1, rank: 0, host: "h")
            (r.deltaLow, r.deltaHigh) = (low, high)
            return r
        }
        // Four units over three seeds: a and b swap between the extremes from seed to seed.
        let rows = [row("a", seed: 0, delta: -0.30), row("a", seed: 1, delta: 0.001), row("a", seed: 2, delta: -0.31),
                    row("b", seed: 0, delta: 0.002), row("b", seed: 1, delta: -0.29), row("b", seed: 2, delta: 0.001),
                    row("c", seed: 0, delta: -0.001), row("c", seed: 1, delta: 0.001), row("c", seed: 2, delta: 0.000),
                    row("d", seed: 0, delta: -0.2), row("d", seed: 1, delta: -0.21), row("d", seed: 2, delta: -0.19)]
        let units = Dictionary(UnitSummary.summaries(rows).map { ($0.layer, $0) }, uniquingKeysWith: { a, _ in a })
        XCTAssertEqual(units["c"]?.call, .trivial)
        XCTAssertEqual(units["d"]?.call, .harmful)
        XCTAssertEqual(units["a"]?.call, .undecided)
        XCTAssertEqual(units["a"]?.interval, "seeds")
        XCTAssertEqual(units["a"]?.seeds, 3)
        XCTAssertEqual(units["a"]?.rankUnstable, true)
        XCTAssertEqual(units["d"]?.rankUnstable, false)
        // One network: its paired interval decides.
        let single = UnitSummary.summaries([row("e", seed: 0, delta: -0.002, low: -0.006, high: 0.002)])
        XCTAssertEqual(single.first?.interval, "test images")
        XCTAssertEqual(single.first?.call, .trivial)
        XCTAssertTrue(UnitSummary.csv(single).hasPrefix("dataset,model,layer,mask,seeds,delta_mean,delta_low,delta_high,interval,call,rank_unstable\nd,m,e,zeroKernel,1,"))
    }
}

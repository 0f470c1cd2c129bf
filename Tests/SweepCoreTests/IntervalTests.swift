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

    func testPairedIntervalIsBonettPricesAdjustedWald() {
        // 1000 images, 60 worse, 20 better: one pseudo-image in each discordant cell.
        let (low, high) = Statistics.pairedInterval(worse: 60, better: 20, count: 1000)
        let (pb, pw) = (21.0 / 1002, 61.0 / 1002)
        let se = ((pb + pw - (pb - pw) * (pb - pw)) / 1002).squareRoot()
        XCTAssertEqual(low, pb - pw - 1.959964 * se, accuracy: 1e-6)
        XCTAssertEqual(high, pb - pw + 1.959964 * se, accuracy: 1e-6)
        XCTAssertEqual(Statistics.call(low: low, high: high, threshold: 0.01), .harmful)
        XCTAssertEqual(Statistics.call(low: -0.004, high: 0.006, threshold: 0.01), .trivial)
        XCTAssertEqual(Statistics.call(low: -0.02, high: 0.001, threshold: 0.01), .undecided)
        XCTAssertEqual(Statistics.call(low: 0.19, high: 0.25, threshold: 0.01), .helpful)
        XCTAssertNil(Statistics.network(worse: 600, better: 500, count: 1000), "more discordant images than images")
    }

    /// Student's t against tabulated quantiles, and the normal at infinite degrees of freedom.
    func testStudentTQuantilesMatchTheTables() {
        for (df, q) in [(1.0, 12.706), (2, 4.303), (4, 2.776), (10, 2.228), (30, 2.042)] {
            XCTAssertEqual(Statistics.tQuantile(0.975, degreesOfFreedom: df), q, accuracy: 0.001, "df \(df)")
        }
        XCTAssertEqual(Statistics.tQuantile(0.975, degreesOfFreedom: .infinity), 1.959964, accuracy: 1e-5)
        XCTAssertEqual(Statistics.tCDF(0, degreesOfFreedom: 3), 0.5, accuracy: 1e-12)
        XCTAssertEqual(Statistics.tCDF(-12.706, degreesOfFreedom: 1), 0.025, accuracy: 1e-5)
    }

    /// Holm and Benjamini–Hochberg adjusted p-values, computed by hand.
    func testHolmAndBenjaminiHochbergAgainstHandComputedExamples() {
        let p = [0.01, 0.04, 0.03, 0.005]
        // Holm: sorted 0.005·4, 0.01·3, 0.03·2, 0.04·1, each at least the one before.
        zip(Correction.holm.adjusted(p), [0.03, 0.06, 0.06, 0.02]).forEach { XCTAssertEqual($0, $1, accuracy: 1e-12) }
        // BH: m·p/rank = 0.02, 0.02, 0.04, 0.04, each at most the one after.
        zip(Correction.bh.adjusted(p), [0.02, 0.04, 0.04, 0.02]).forEach { XCTAssertEqual($0, $1, accuracy: 1e-12) }
        XCTAssertEqual(Correction.none.adjusted(p), p)
        XCTAssertEqual(Correction.holm.adjusted([0.5, 0.9]), [1, 1].map { min($0, 1.0) })
    }

    /// A unit whose interval alone says harmful, among 30 tested at once: uncorrected it is
    /// called harmful; Holm and BH leave it undecided.
    func testCorrectionsWithdrawACallThatOneTestAmongManyWouldMake() {
        let weak = DeltaEstimate(delta: -0.036, center: -0.036, variance: 0.01 * 0.01, degreesOfFreedom: .infinity, networks: 1, sources: .testImages)
        let flat = DeltaEstimate(delta: -0.01, center: -0.01, variance: 0.01 * 0.01, degreesOfFreedom: .infinity, networks: 1, sources: .testImages)
        let family = [weak] + Array(repeating: flat, count: 29)
        var settings = StatisticsSection()
        settings.correction = .none
        XCTAssertEqual(Statistics.calls(family, settings: settings)[0].call, .harmful)
        for correction in [Correction.holm, .bh] {
            settings.correction = correction
            let decision = Statistics.calls(family, settings: settings)[0]
            XCTAssertEqual(decision.call, .undecided, correction.rawValue)
            XCTAssertEqual(decision.candidate, .harmful)
            XCTAssertEqual(decision.adjustedP, min(1, 30 * decision.p), accuracy: 1e-12)
        }
    }

    /// The four calls on hand-made rows (three networks of 10,000 test images each), the
    /// summary's "most harmful" listing harmful units only, and each network's own call.
    func testTheFourCallsOnHandMadeRows() {
        func row(_ layer: String, seed: Int, worse: Int, better: Int) -> ResultRow {
            let delta = Double(better - worse) / 10000
            var r = ResultRow(key: "d/m/seed\(seed)/\(layer)/zeroKernel", study: .zeroing, kind: .mask, dataset: "d", model: "m",
                              seed: seed, layer: layer, mask: "zeroKernel", status: .ok, testAccuracy: 0.6 + delta, testLoss: 0.3,
                              baselineAccuracy: 0.6, deltaAccuracy: delta, paramsMasked: 1, seconds: 1, rank: 0, host: "h")
            (r.imagesWorse, r.imagesBetter, r.testImages) = (worse, better, 10000)
            return r
        }
        let rows = [row("harm", seed: 0, worse: 3100, better: 100), row("harm", seed: 1, worse: 3200, better: 100), row("harm", seed: 2, worse: 3000, better: 100),
                    row("help", seed: 0, worse: 100, better: 2300), row("help", seed: 1, worse: 100, better: 2000), row("help", seed: 2, worse: 100, better: 2600),
                    row("flat", seed: 0, worse: 20, better: 20), row("flat", seed: 1, worse: 15, better: 25), row("flat", seed: 2, worse: 25, better: 15),
                    row("mixed", seed: 0, worse: 3000, better: 0), row("mixed", seed: 1, worse: 10, better: 20), row("mixed", seed: 2, worse: 3100, better: 0)]
        let units = Dictionary(UnitSummary.summaries(rows).map { ($0.layer, $0) }, uniquingKeysWith: { a, _ in a })
        XCTAssertEqual(units["harm"]?.call, .harmful)
        XCTAssertEqual(units["help"]?.call, .helpful)
        XCTAssertEqual(units["flat"]?.call, .trivial)
        XCTAssertEqual(units["mixed"]?.call, .undecided)
        XCTAssertEqual(units["harm"]?.networkCallText, "harmful in each of 3 networks")
        XCTAssertEqual(units["mixed"]?.networkCalls, [.harmful, .trivial, .harmful])
        XCTAssertEqual(units["mixed"]?.interval, "seeds and test images")
        let finding = ZeroingFinding.compute(rows, statistics: StatisticsSection()).first!
        XCTAssertEqual(finding.mostHarmful.map(\.unit), ["harm"], "a unit whose removal helps, or is undecided, is not among the most harmful")
        XCTAssertEqual(finding.calls[.helpful], 1)
        XCTAssertTrue(finding.answer.hasPrefix("1 of 4 units are trivial under zeroKernel for this recipe (3 trained networks): flat; 1 harmful to remove; 1 helpful to remove (accuracy rises): help; 1 undecided."), finding.answer)
    }

    func testUnitSummariesFlagUnstableRanksAndOneNetworkUsesItsTestImages() {
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
        XCTAssertEqual(units["a"]?.seeds, 3)
        XCTAssertEqual(units["a"]?.rankUnstable, true)
        XCTAssertEqual(units["d"]?.rankUnstable, false)
        XCTAssertEqual(units["a"]?.interval, "none", "no counts and no per-network interval: no interval, no call")
        XCTAssertEqual(units["a"]?.call, .undecided)
        // One network of an older results file (an interval, no image counts): its paired interval decides.
        let single = UnitSummary.summaries([row("e", seed: 0, delta: -0.002, low: -0.006, high: 0.002)])
        XCTAssertEqual(single.first?.interval, "test images")
        XCTAssertEqual(single.first?.call, .trivial)
        XCTAssertEqual(single.first?.deltaLow ?? 0, -0.006, accuracy: 1e-6)
        let answer = ZeroingFinding.compute([row("e", seed: 0, delta: -0.002, low: -0.006, high: 0.002)], statistics: StatisticsSection()).first?.answer ?? ""
        XCTAssertTrue(answer.contains("for this network (one trained network: the interval covers its test images only)"), "one network says so: \(answer)")
        XCTAssertTrue(UnitSummary.csv(single).hasPrefix("dataset,model,layer,mask,seeds,delta_mean,delta_low,delta_high,interval,call,rank_unstable,p,p_adjusted,network_calls\nd,m,e,zeroKernel,1,"))
    }
}

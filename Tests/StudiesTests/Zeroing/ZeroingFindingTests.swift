import Foundation
@testable import Studies
@testable import SweepCore
import StudyTestSupport
import SweepFile
@testable import SweepRecords
import XCTest

/// The zeroing study's answer from its units' summaries: the four calls, the most harmful units,
/// unstable ranks, and what one trained network can say.
final class ZeroingFindingTests: StudyTestCase {
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

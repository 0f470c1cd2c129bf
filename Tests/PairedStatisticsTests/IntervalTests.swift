import Foundation
import PairedStatistics
@testable import SweepCore
import StudyTestSupport
import SweepFile
import XCTest

/// The intervals and the paired test behind the trivial / harmful calls.
final class IntervalTests: StudyTestCase {
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
}


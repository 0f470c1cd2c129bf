import Foundation
import PairedStatistics
import Rendering

/// The `statistics:` section: how intervals and calls are made.
public struct StatisticsSection: SettingsSection, Equatable, Sendable {
    /// Confidence of every interval and call (0.95: 95% intervals, 5% error rate).
    public var level = 0.95
    /// |Δ| below this is trivial, beyond it harmful or helpful (Wang et al.'s 1-point cut).
    public var threshold = 0.01
    /// Over the units and masks of one (dataset, model).
    public var correction = Correction.holm

    public init() {}

    public static let settings: [Setting<StatisticsSection>] = [
        Setting("level", \.level), Setting("threshold", \.threshold), Setting("correction", \.correction),
    ]

    /// What is wrong with the values, by field.
    public var problems: [(field: String, requirement: String)] {
        var out: [(String, String)] = []
        if !(level.isFinite && level >= 0.5 && level < 1) { out.append(("level", "must be at least 0.5 and below 1 (0.95: 95% intervals)")) }
        if !(threshold.isFinite && threshold > 0 && threshold < 1) { out.append(("threshold", "must lie between 0 and 1 (0.01: one point of accuracy)")) }
        return out
    }

    /// "95% intervals, |Δ| < 0.01 trivial, Holm-corrected over 29 tests".
    public func describe(tests: Int) -> String {
        let percent = Format.percent(level)
        let corrected: String
        switch correction {
        case .holm: corrected = "calls Holm-corrected over \(tests) tests (family-wise error ≤ \(Format.percent(1 - level)))"
        case .bh: corrected = "calls Benjamini–Hochberg-corrected over \(tests) tests (false discovery rate ≤ \(Format.percent(1 - level)))"
        case .none: corrected = "calls uncorrected for the \(tests) tests"
        }
        return "\(percent) intervals, |Δ| < \(threshold) trivial, \(corrected)"
    }
}

extension Statistics {
    /// The calls of one family of estimates, made as the `statistics:` section says.
    public static func calls(_ estimates: [DeltaEstimate], settings: StatisticsSection) -> [CallDecision] {
        calls(estimates, level: settings.level, threshold: settings.threshold, correction: settings.correction)
    }
}

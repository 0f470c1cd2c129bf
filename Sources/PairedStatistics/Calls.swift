import Foundation
import Rendering

/// Δ test accuracy of a mask, as an estimate with its uncertainty: one network's on its paired
/// test images, or a recipe's over several trained networks (`Statistics.population`).
public struct DeltaEstimate: Equatable, Sendable {
    /// What the interval accounts for.
    public enum Sources: String, Codable, Sendable {
        case testImages = "test images"
        case seedsAndTestImages = "seeds and test images"
    }

    /// The point estimate shown (the observed Δ, or the mean of the networks' Δ).
    public let delta: Double
    /// The interval's centre (for one network, Bonett & Price's adjusted difference).
    public let center: Double
    /// Variance of `center`.
    public let variance: Double
    /// Of the t distribution the interval and tests use (infinite: the normal).
    public let degreesOfFreedom: Double
    public let networks: Int
    public let sources: Sources

    public init(delta: Double, center: Double, variance: Double, degreesOfFreedom: Double, networks: Int, sources: Sources) {
        (self.delta, self.center, self.variance, self.degreesOfFreedom, self.networks, self.sources) =
            (delta, center, variance, degreesOfFreedom, networks, sources)
    }

    public var standardError: Double { variance.squareRoot() }

    /// The two-sided interval at `level` (0.95: 95%), clipped to [−1, 1] where an accuracy change lies.
    public func interval(level: Double) -> (low: Double, high: Double) {
        let half = Statistics.tQuantile(1 - (1 - level) / 2, degreesOfFreedom: degreesOfFreedom) * standardError
        return (max(-1, center - half), min(1, center + half))
    }

    /// The p-value of `call` at `threshold`: twice the one-sided p of its alternative (Δ < −t for
    /// harmful, Δ > t for helpful, both |Δ| < t bounds for trivial, Schuirmann's two one-sided
    /// tests), so that, uncorrected, p < 1 − level exactly when the interval at `level` lies
    /// where the call needs it.
    public func pValue(_ call: Statistics.Call, threshold t: Double) -> Double {
        let se = max(standardError, .leastNormalMagnitude)
        /// p of "Δ < x" (small when the centre lies well below x) and of "Δ > x".
        func below(_ x: Double) -> Double { Statistics.tCDF((center - x) / se, degreesOfFreedom: degreesOfFreedom) }
        func above(_ x: Double) -> Double { Statistics.tCDF((x - center) / se, degreesOfFreedom: degreesOfFreedom) }
        let oneSided: Double
        switch call {
        case .harmful: oneSided = below(-t)
        case .helpful: oneSided = above(t)
        case .trivial: oneSided = max(above(-t), below(t))
        case .undecided: return 1
        }
        return min(1, 2 * oneSided)
    }
}

/// How the calls of many units at once are kept honest.
public enum Correction: String, Codable, Sendable, CaseIterable {
    /// Holm's step-down: the chance of any wrong call among the family stays below 1 − level.
    case holm
    /// Benjamini–Hochberg: the expected share of wrong calls among the calls made stays below 1 − level.
    case bh
    /// Each unit on its own (the interval alone decides).
    case none

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        let text = try c.decode(String.self)
        guard let known = Correction(rawValue: text) else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription:
                "correction is holm (family-wise error), bh (Benjamini–Hochberg false discovery rate) or none; got '\(SafeText.terminal(text))'")
        }
        self = known
    }

    /// Adjusted p-values of `p` (in the same order): a hypothesis is rejected at level α exactly
    /// when its adjusted p is below α.
    public func adjusted(_ p: [Double]) -> [Double] {
        let m = Double(p.count)
        let order = p.indices.sorted { (p[$0], $0) < (p[$1], $1) }
        var out = p
        switch self {
        case .none:
            break
        case .holm:
            var running = 0.0
            for (i, index) in order.enumerated() {
                running = max(running, min(1, (m - Double(i)) * p[index]))
                out[index] = running
            }
        case .bh:
            var running = 1.0
            for (i, index) in order.enumerated().reversed() {
                running = min(running, min(1, m * p[index] / Double(i + 1)))
                out[index] = running
            }
        }
        return out
    }
}

/// A call with the evidence behind it.
public struct CallDecision: Equatable, Sendable {
    public var call: Statistics.Call
    /// The call the estimate leans to (the smallest p), made or not.
    public var candidate: Statistics.Call
    public var p: Double
    public var adjustedP: Double
}

extension Statistics {
    /// The calls of one family of estimates (the units and masks of one dataset and model, or
    /// of one network): each estimate's likeliest call, made when its p-value, adjusted for the
    /// family by `correction`, is below 1 − `level`.
    public static func calls(_ estimates: [DeltaEstimate], level: Double, threshold: Double, correction: Correction) -> [CallDecision] {
        let candidates: [(Call, Double)] = estimates.map { e in
            [Call.trivial, .harmful, .helpful].map { ($0, e.pValue($0, threshold: threshold)) }.min { $0.1 < $1.1 }!
        }
        let adjusted = correction.adjusted(candidates.map(\.1))
        return zip(candidates, adjusted).map { candidate, adjusted in
            CallDecision(call: adjusted < 1 - level ? candidate.0 : .undecided, candidate: candidate.0, p: candidate.1, adjustedP: adjusted)
        }
    }
}

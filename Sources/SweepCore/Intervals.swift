import Foundation

/// The statistics behind "this layer is trivial": intervals for a mask's accuracy change over
/// trained networks (seeds) and, within one network, a paired test on the same test images.
public enum Statistics {
    /// Two-sided exact McNemar test: `worse` images the unmasked network got right and the
    /// masked one wrong, `better` the reverse. The p-value of "masking changes nothing":
    /// P(|K − n/2| ≥ |worse − n/2|) for K ~ Binomial(n = worse + better, 1/2).
    /// Counts that are no counts (negative, or overflowing) give NaN.
    public static func mcnemar(worse: Int, better: Int) -> Double {
        let (n, overflow) = worse.addingReportingOverflow(better)
        guard worse >= 0, better >= 0, !overflow else { return .nan }
        guard n > 0 else { return 1 }
        let k = min(worse, better)
        // Σ_{i ≤ k} C(n, i) / 2^n, in logs (n can be the whole test set), from the largest term
        // down until the rest cannot change a double: about √n terms, however large n is.
        var tail = 0.0
        for i in stride(from: k, through: 0, by: -1) {
            let term = exp(logChoose(n, i) - Double(n) * log(2))
            tail += term
            if term <= tail * 1e-18 { break }
        }
        return min(1, 2 * tail)
    }

    static func logChoose(_ n: Int, _ k: Int) -> Double {
        lgamma(Double(n + 1)) - lgamma(Double(k + 1)) - lgamma(Double(n - k + 1))
    }

    /// 95% interval of one network's accuracy change on `count` paired test images (the
    /// difference of paired proportions: Δ = (better − worse)/n, its variance from the
    /// discordant pairs).
    public static func pairedInterval(worse: Int, better: Int, count: Int) -> (low: Double, high: Double) {
        guard worse >= 0, better >= 0, count >= 0 else { return (.nan, .nan) }
        let n = Double(max(count, 1))
        let delta = Double(better - worse) / n
        let variance = max(Double(better + worse) - Double(better - worse) * Double(better - worse) / n, 0) / (n * n)
        let half = 1.959964 * variance.squareRoot()
        return (delta - half, delta + half)
    }

    /// Mean and 95% Student-t interval of `values` (one per trained network); nil interval with
    /// fewer than two values.
    public static func meanInterval(_ values: [Double]) -> (mean: Double, low: Double, high: Double)? {
        guard !values.isEmpty else { return nil }
        let n = Double(values.count)
        let mean = values.reduce(0, +) / n
        guard values.count > 1 else { return nil }
        let variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / (n - 1)
        let half = tQuantile975(degreesOfFreedom: values.count - 1) * (variance / n).squareRoot()
        return (mean, mean - half, mean + half)
    }

    /// The 97.5% quantile of Student's t (two-sided 95%); the normal's beyond 30 degrees of freedom
    /// is within 2% of it.
    static func tQuantile975(degreesOfFreedom df: Int) -> Double {
        let table = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
                     2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]
        guard df >= 1 else { return .infinity }
        if df <= table.count { return table[df - 1] }
        if df <= 60 { return 2.042 - (2.042 - 2.000) * Double(df - 30) / 30 }
        if df <= 120 { return 2.000 - (2.000 - 1.980) * Double(df - 60) / 60 }
        return 1.960
    }

    /// What an interval of Δ says about a unit, for a threshold t: trivial when the whole
    /// interval lies within (−t, t) (the drop is below t with 95% confidence), harmful when it lies
    /// below −t, undecided otherwise (including a gain beyond t).
    public enum Call: String, Codable, Sendable {
        case trivial, harmful, undecided
    }

    public static func call(low: Double, high: Double, threshold: Double) -> Call {
        if low > -threshold && high < threshold { return .trivial }
        if high < -threshold { return .harmful }
        return .undecided
    }
}

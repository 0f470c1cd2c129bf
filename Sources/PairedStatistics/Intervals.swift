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

    /// One network's accuracy change on `count` paired test images, as an estimate: Δ and the
    /// variance of Bonett & Price's adjusted Wald interval (one pseudo-image added to each
    /// discordant cell), which covers well for small counts and is never zero width: a mask
    /// that changed no image still leaves the Δ of the image population uncertain.
    public static func network(worse: Int, better: Int, count: Int) -> DeltaEstimate? {
        guard worse >= 0, better >= 0, count > 0, worse <= count, better <= count - worse else { return nil }
        let n = Double(count) + 2
        let (pb, pw) = (Double(better + 1) / n, Double(worse + 1) / n)
        let variance = max(pb + pw - (pb - pw) * (pb - pw), 0) / n
        return DeltaEstimate(delta: Double(better - worse) / Double(count), center: pb - pw, variance: variance,
                             degreesOfFreedom: .infinity, networks: 1, sources: .testImages)
    }

    /// The 95% interval of one network's Δ on its paired test images (`network(worse:better:count:)`).
    public static func pairedInterval(worse: Int, better: Int, count: Int) -> (low: Double, high: Double) {
        guard let e = network(worse: worse, better: better, count: count) else { return (.nan, .nan) }
        return e.interval(level: 0.95)
    }

    /// The recipe's Δ from several trained networks, each an estimate on its own test images:
    /// a random-effects combination. The spread of the networks' Δ estimates the seed variance
    /// plus the test-set variance; it is never taken below the test-set variance the networks
    /// report (two networks that agree by chance still each saw a finite test set), and the
    /// interval is Student's t with n − 1 degrees of freedom. Satterthwaite's larger degrees of
    /// freedom were tried and held the population Δ in only 83–91% of simulated 2-seed sweeps
    /// (the seeds' spread dominates on Fashion-MNIST); n − 1 holds it in 95%. One network gives
    /// its own estimate unchanged.
    public static func population(_ networks: [DeltaEstimate]) -> DeltaEstimate? {
        guard let first = networks.first else { return nil }
        guard networks.count > 1 else { return first }
        let n = Double(networks.count)
        let mean = networks.reduce(0) { $0 + $1.delta } / n
        let spread = networks.reduce(0) { $0 + ($1.delta - mean) * ($1.delta - mean) } / (n - 1)
        let testSet = networks.reduce(0) { $0 + $1.variance } / n
        return DeltaEstimate(delta: mean, center: mean, variance: max(spread, testSet) / n, degreesOfFreedom: n - 1, networks: networks.count,
                             sources: .seedsAndTestImages)
    }

    /// P(T ≤ t) for Student's t with `df` degrees of freedom (the normal for infinite df), from
    /// the regularised incomplete beta function.
    public static func tCDF(_ t: Double, degreesOfFreedom df: Double) -> Double {
        guard !t.isNaN, !df.isNaN, df > 0 else { return .nan }
        if df.isInfinite || df > 1e7 { return 0.5 * erfc(-t / 2.0.squareRoot()) }
        let tail = 0.5 * incompleteBeta(df / 2, 0.5, df / (df + t * t))
        return t >= 0 ? 1 - tail : tail
    }

    /// The `p` quantile of Student's t with `df` degrees of freedom, by bisection on `tCDF`.
    public static func tQuantile(_ p: Double, degreesOfFreedom df: Double) -> Double {
        guard p > 0, p < 1, df > 0 else { return .nan }
        if p < 0.5 { return -tQuantile(1 - p, degreesOfFreedom: df) }
        var (low, high) = (0.0, 1.0)
        while tCDF(high, degreesOfFreedom: df) < p { high *= 2; if high > 1e12 { return .infinity } }
        for _ in 0..<200 where high - low > 1e-12 * max(1, high) {
            let mid = (low + high) / 2
            if tCDF(mid, degreesOfFreedom: df) < p { low = mid } else { high = mid }
        }
        return (low + high) / 2
    }

    /// I_x(a, b), the regularised incomplete beta function (continued fraction, modified Lentz).
    static func incompleteBeta(_ a: Double, _ b: Double, _ x: Double) -> Double {
        guard x > 0 else { return 0 }
        guard x < 1 else { return 1 }
        if x > (a + 1) / (a + b + 2) { return 1 - incompleteBeta(b, a, 1 - x) }
        let logGammas: Double = lgamma(a + b) - lgamma(a) - lgamma(b)
        let logPowers: Double = a * log(x) + b * log(1 - x)
        let front = exp(logGammas + logPowers) / a
        let tiny = 1e-300
        var (c, d) = (1.0, 1 - (a + b) * x / (a + 1))
        d = 1 / (abs(d) < tiny ? tiny : d)
        var f = d
        for m in 1...400 {
            let m = Double(m)
            let even: Double = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
            let odd: Double = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
            for numerator in [even, odd] {
                d = 1 + numerator * d
                d = 1 / (abs(d) < tiny ? tiny : d)
                c = 1 + numerator / c
                if abs(c) < tiny { c = tiny }
                f *= c * d
            }
            if abs(c * d - 1) < 1e-15 { break }
        }
        return front * f
    }

    /// What an estimate of Δ says about a unit, for a threshold t: trivial when |Δ| < t with
    /// confidence, harmful when Δ < −t (masking it costs accuracy), helpful when Δ > t (masking it
    /// improves accuracy), undecided otherwise.
    public enum Call: String, Codable, Sendable, CaseIterable {
        case trivial, harmful, helpful, undecided
    }

    /// The call a 95% interval [low, high] supports by itself (no correction for other units).
    public static func call(low: Double, high: Double, threshold: Double) -> Call {
        if low > -threshold && high < threshold { return .trivial }
        if high < -threshold { return .harmful }
        if low > threshold { return .helpful }
        return .undecided
    }
}

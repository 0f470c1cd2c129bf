import Foundation

/// Numbers in progress lines, formatted with integer arithmetic: `String(format:)` goes through
/// CoreFoundation and costs microseconds a call, which the coordinator pays on every task line.
public enum FixedText {
    /// `value` with `places` decimals (at most 9), `-` when negative and `+` when `plus` and not.
    public static func of(_ value: Double, places: Int, plus: Bool = false) -> String {
        guard value.isFinite else { return value.isNaN ? "nan" : (value < 0 ? "-inf" : "inf") }
        var scale = 1.0
        for _ in 0..<places { scale *= 10 }
        let scaled = (abs(value) * scale).rounded()
        guard scaled < 9e15 else { return String(value) }
        let units = UInt64(scaled)
        let whole = units / UInt64(scale), fraction = units % UInt64(scale)
        let sign = value < 0 && units > 0 ? "-" : (plus ? "+" : "")
        guard places > 0 else { return sign + String(whole) }
        let digits = String(fraction)
        return sign + String(whole) + "." + String(repeating: "0", count: places - digits.count) + digits
    }
}

/// Durations as people read them: 4.2s, 3m05s, 2h10m.
public enum DurationText {
    public static func of(_ seconds: Double) -> String {
        guard seconds.isFinite else { return "?" }
        if seconds < 60 { return FixedText.of(seconds, places: 1) + "s" }
        let s = Int(seconds.rounded())
        if s < 3600 { return "\(s / 60)m\(twoDigits(s % 60))s" }
        return "\(s / 3600)h\(twoDigits((s % 3600) / 60))m"
    }

    private static func twoDigits(_ n: Int) -> String { n < 10 ? "0\(n)" : String(n) }
}

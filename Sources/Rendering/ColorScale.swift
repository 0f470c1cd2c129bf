import Foundation

/// Colour scales for the report, from ColorBrewer (designed for perceptual ordering and for
/// colour-vision deficiencies), interpolated in linear RGB between their anchors.
public struct ColorScale {
    private let anchors: [(Double, Double, Double)]

    /// Diverging red–white–blue (ColorBrewer RdBu, 11 classes): negative values red, zero
    /// white, positive blue. Used for accuracy deltas, where red means the mask hurt.
    public static let diverging = ColorScale(hex: ["67001f", "b2182b", "d6604d", "f4a582", "fddbc7", "f7f7f7",
                                            "d1e5f0", "92c5de", "4393c3", "2166ac", "053061"])

    /// Sequential (ColorBrewer YlGnBu, 9 classes) for magnitudes.
    static let sequential = ColorScale(hex: ["ffffd9", "edf8b1", "c7e9b4", "7fcdbb", "41b6c4", "1d91c0", "225ea8", "253494", "081d58"])

    /// Qualitative (ColorBrewer Set2) for categories such as task kinds.
    public static let categories = ["#66c2a5", "#fc8d62", "#8da0cb", "#e78ac3", "#a6d854", "#ffd92f", "#e5c494", "#b3b3b3"]

    init(hex: [String]) {
        anchors = hex.map { h in
            let v = Int(h, radix: 16) ?? 0
            return (ColorScale.linear(Double((v >> 16) & 255) / 255), ColorScale.linear(Double((v >> 8) & 255) / 255),
                    ColorScale.linear(Double(v & 255) / 255))
        }
    }

    /// The colour at t ∈ [0, 1] (clamped), as `#rrggbb`.
    public func color(_ t: Double) -> String {
        let x = min(max(t.isFinite ? t : 0.5, 0), 1) * Double(anchors.count - 1)
        let i = min(Int(x), anchors.count - 2)
        let f = x - Double(i)
        let (a, b) = (anchors[i], anchors[i + 1])
        func channel(_ p: Double, _ q: Double) -> Int { Int((ColorScale.gamma(p + (q - p) * f) * 255).rounded()) }
        return String(format: "#%02x%02x%02x", channel(a.0, b.0), channel(a.1, b.1), channel(a.2, b.2))
    }


    /// Dark text on light cells, light text on dark ones (by relative luminance).
    public static func textColor(on hex: String) -> String {
        let v = Int(hex.dropFirst(), radix: 16) ?? 0
        let l = 0.2126 * linear(Double((v >> 16) & 255) / 255) + 0.7152 * linear(Double((v >> 8) & 255) / 255)
            + 0.0722 * linear(Double(v & 255) / 255)
        return l > 0.25 ? "#111111" : "#ffffff"
    }

    private static func linear(_ c: Double) -> Double { c <= 0.04045 ? c / 12.92 : pow((c + 0.055) / 1.055, 2.4) }
    private static func gamma(_ c: Double) -> Double { c <= 0.0031308 ? 12.92 * c : 1.055 * pow(c, 1 / 2.4) - 0.055 }

    /// The smallest of 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1 not below `value`: a legend range that
    /// keeps small effects visible and stays comparable between heatmaps.
    public static func niceLimit(_ value: Double) -> Double {
        for step in [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0] where value <= step { return step }
        return max(1, value)
    }
}

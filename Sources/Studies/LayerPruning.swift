import Models
import TensorEngine

/// Pruning one layer alone by weight magnitude, without retraining: the per-layer sensitivity
/// scan that pruning papers use to choose per-layer rates (Han et al. 2015; Li et al. 2017).
public enum LayerPruning {
    public enum Method: String, Codable, CaseIterable, Sendable {
        /// Single weights with the smallest |w|.
        case unstructured
        /// Whole filters (output channels or output units) with the smallest L1 norm.
        case structured
    }

    /// Zeroes `fraction` of `weight`: round(fraction × entries) single entries of smallest
    /// magnitude (unstructured) or round(fraction × filters) whole filters of smallest L1 norm
    /// (structured; a filter is everything along dimension 0). Ties go to the lower index, so the
    /// result depends on the weights alone. Returns the number of entries zeroed; every other
    /// entry keeps its exact bits.
    @discardableResult
    public static func prune(_ weight: Tensor, fraction: Double, method: Method) -> Int {
        let w = weight.data
        switch method {
        case .unstructured:
            let k = count(fraction, of: weight.count)
            var order = Array(0..<weight.count)
            order.sort { abs(w[$0]) != abs(w[$1]) ? abs(w[$0]) < abs(w[$1]) : $0 < $1 }
            for i in order.prefix(k) { w[i] = 0 }
            return k
        case .structured:
            let filters = weight.shape.first ?? 0
            guard filters > 0 else { return 0 }
            let size = weight.count / filters
            let norms = (0..<filters).map { f in (0..<size).reduce(0.0) { $0 + Double(abs(w[f * size + $1])) } }
            let k = count(fraction, of: filters)
            let chosen = (0..<filters).sorted { norms[$0] != norms[$1] ? norms[$0] < norms[$1] : $0 < $1 }.prefix(k)
            for f in chosen { (w + f * size).update(repeating: 0, count: size) }
            return k * size
        }
    }

    /// How many of `total` items a fraction prunes (rounded to the nearest; half rounds up).
    public static func count(_ fraction: Double, of total: Int) -> Int {
        min(total, max(0, Int((fraction * Double(total)).rounded(.toNearestOrAwayFromZero))))
    }

    /// The weight tensor of a conv or linear unit (its `.weight` parameter).
    public static func weightName(of unit: MaskableUnit) -> String? {
        unit.parameterNames.first { $0.hasSuffix(".weight") }
    }
}

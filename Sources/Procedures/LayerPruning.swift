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
        prune(UnsafeMutableBufferPointer(start: weight.data, count: weight.count), shape: weight.shape, outputAxis: 0,
              fraction: fraction, method: method)
    }

    /// `prune` on a weight of `shape` whose filters (output channels or units) lie along
    /// `outputAxis` (1 for ConvTranspose and MatMul weights of imported graphs).
    @discardableResult
    public static func prune(_ w: UnsafeMutableBufferPointer<Float>, shape: [Int], outputAxis: Int, fraction: Double, method: Method) -> Int {
        switch method {
        case .unstructured:
            let k = count(fraction, of: w.count)
            var order = Array(0..<w.count)
            order.sort { abs(w[$0]) != abs(w[$1]) ? abs(w[$0]) < abs(w[$1]) : $0 < $1 }
            for i in order.prefix(k) { w[i] = 0 }
            return k
        case .structured:
            guard outputAxis < shape.count, shape[outputAxis] > 0 else { return 0 }
            let filters = shape[outputAxis]
            let (outer, inner) = (shape.prefix(outputAxis).reduce(1, *), shape.dropFirst(outputAxis + 1).reduce(1, *))
            // Filter f is every block of `inner` values at f along the axis, in each outer slice.
            func entries(_ f: Int) -> [Range<Int>] {
                (0..<outer).map { o in let start = (o * filters + f) * inner; return start..<(start + inner) }
            }
            let norms = (0..<filters).map { f in entries(f).reduce(0.0) { sum, r in r.reduce(sum) { $0 + Double(abs(w[$1])) } } }
            let k = count(fraction, of: filters)
            let chosen = (0..<filters).sorted { norms[$0] != norms[$1] ? norms[$0] < norms[$1] : $0 < $1 }.prefix(k)
            for f in chosen { for r in entries(f) { for i in r { w[i] = 0 } } }
            return k * (w.count / filters)
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

import Foundation

/// A value flowing through an ONNX graph: a float32 tensor, or integers (shapes, indices, axes).
/// Row-major; a scalar has shape [].
public enum ONNXValue: Equatable {
    case floats([Int], [Float])
    case ints([Int], [Int64])

    /// More elements than any tensor layersweep reads (a hostile dimension is refused before
    /// anything is allocated).
    public static let maxElements = 1 << 31

    public var shape: [Int] {
        switch self {
        case let .floats(s, _), let .ints(s, _): return s
        }
    }

    public var count: Int { shape.reduce(1, *) }

    /// The float values (integers converted).
    public var floatValues: [Float] {
        switch self {
        case let .floats(_, v): return v
        case let .ints(_, v): return v.map { Float($0) }
        }
    }

    /// The integer values (floats truncated toward zero, as Cast does), or nil for a float that
    /// is not finite or does not fit.
    public var intValues: [Int64]? {
        switch self {
        case let .ints(_, v): return v
        case let .floats(_, v):
            var out: [Int64] = []
            out.reserveCapacity(v.count)
            for x in v {
                guard x.isFinite, abs(x) < 9.2e18 else { return nil }
                out.append(Int64(x))
            }
            return out
        }
    }

    /// The same values under another shape of the same element count.
    func reshaped(_ shape: [Int]) -> ONNXValue {
        switch self {
        case let .floats(_, v): return .floats(shape, v)
        case let .ints(_, v): return .ints(shape, v)
        }
    }
}

/// Row-major strides of `shape`.
func strides(_ shape: [Int]) -> [Int] {
    var s = [Int](repeating: 1, count: shape.count)
    var acc = 1
    for i in stride(from: shape.count - 1, through: 0, by: -1) {
        s[i] = acc
        acc *= shape[i]
    }
    return s
}

/// Numpy's multidirectional broadcasting: the shape both inputs stretch to, or nil.
func broadcastShape(_ a: [Int], _ b: [Int]) -> [Int]? {
    let n = max(a.count, b.count)
    let pa = [Int](repeating: 1, count: n - a.count) + a, pb = [Int](repeating: 1, count: n - b.count) + b
    var out: [Int] = []
    for (x, y) in zip(pa, pb) {
        guard x == y || x == 1 || y == 1 else { return nil }
        out.append(x == 1 ? y : x)
    }
    return out
}

/// For each element of `output` (row-major), the index of the element of `input` it reads
/// under broadcasting.
func broadcastIndices(_ input: [Int], to output: [Int]) -> [Int] {
    let padded = [Int](repeating: 1, count: output.count - input.count) + input
    let inStrides = strides(padded).enumerated().map { padded[$0.offset] == 1 ? 0 : $0.element }
    let total = output.reduce(1, *)
    var indices = [Int](repeating: 0, count: total)
    guard total > 0 else { return indices }
    var counter = [Int](repeating: 0, count: output.count)
    var offset = 0
    for i in 0..<total {
        indices[i] = offset
        var d = output.count - 1
        while d >= 0 {
            counter[d] += 1
            offset += inStrides[d]
            if counter[d] < output[d] { break }
            offset -= inStrides[d] * counter[d]
            counter[d] = 0
            d -= 1
        }
    }
    return indices
}

/// An axis attribute (negative counts from the end) within `rank`, or nil.
func normalisedAxis(_ axis: Int64, rank: Int) -> Int? {
    let a = axis < 0 ? Int(axis) + rank : Int(axis)
    return (0..<max(rank, 1)).contains(a) ? a : nil
}

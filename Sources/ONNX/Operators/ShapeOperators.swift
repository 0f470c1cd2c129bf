import Foundation

/// Operators that move, select or make values without arithmetic: the shape plumbing exporters
/// emit around a CNN (Reshape, Flatten, Shape, Gather, Slice, Concat, ...), and constants.
extension ONNXOperators {
    static func shapeOperator(_ op: String, _ n: NodeContext) throws -> [ONNXValue] {
        switch op {
        case "Reshape": return [try reshape(n)]
        case "Flatten":
            let x = try n.input(0)
            let rank = x.shape.count, given = try n.int("axis", default: 1)
            let axis = given < 0 ? Int(given) + rank : Int(given)
            guard (0...rank).contains(axis) else { throw n.error("axis \(given) for rank \(rank)") }
            return [x.reshaped([x.shape[..<axis].reduce(1, *), x.shape[axis...].reduce(1, *)])]
        case "Squeeze", "Unsqueeze": return [try squeeze(n, adding: op == "Unsqueeze")]
        case "Transpose": return [try transpose(n)]
        case "Concat": return [try concat(n)]
        case "Pad": return [try pad(n)]
        case "Shape":
            let shape = try n.input(0).shape.map(Int64.init)
            let r = Int64(shape.count)
            func clamp(_ v: Int64) -> Int { Int(Swift.min(Swift.max(v < 0 ? v + r : v, 0), r)) }
            let (start, end) = (clamp(try n.int("start", default: 0)), clamp(try n.int("end", default: r)))
            let picked = start < end ? Array(shape[start..<end]) : []
            return [.ints([picked.count], picked)]
        case "Gather": return [try gather(n)]
        case "GatherND": return [try gatherND(n)]
        case "Where": return [try select(n)]
        case "Slice": return [try slice(n)]
        case "Cast": return [try cast(n)]
        case "Constant": return [try constant(n)]
        case "ConstantOfShape":
            let dims = try n.ints(of: try n.input(0))
            guard dims.allSatisfy({ $0 >= 0 }), let shape = checkedShape(dims.map(Int.init)) else { throw n.error("shape \(dims)") }
            let fill: ONNXValue
            if case let .tensor(t)? = n.node.attributes["value"] { fill = try t.value(directory: nil) } else { fill = .floats([1], [0]) }
            guard fill.count == 1 else { throw n.error("value must hold one element") }
            switch fill {
            case let .floats(_, v): return [.floats(shape, Array(repeating: v[0], count: shape.reduce(1, *)))]
            case let .ints(_, v): return [.ints(shape, Array(repeating: v[0], count: shape.reduce(1, *)))]
            }
        case "Expand":
            let x = try n.input(0)
            let dims = try n.ints(of: try n.input(1)).map(Int.init)
            guard let shape = broadcastShape(x.shape, dims), checkedShape(shape) != nil else { throw n.error("cannot expand \(x.shape) to \(dims)") }
            return [gatherElements(x, broadcastIndices(x.shape, to: shape), shape: shape)]
        case "Split": return try split(n)
        default: throw n.error("unsupported operator")
        }
    }

    /// `shape` if its element count is within bounds.
    static func checkedShape(_ shape: [Int]) -> [Int]? {
        var count = 1
        for d in shape {
            guard d >= 0 else { return nil }
            let (p, o) = count.multipliedReportingOverflow(by: d)
            guard !o, p <= ONNXValue.maxElements else { return nil }
            count = p
        }
        return shape
    }

    /// The elements of `x` at `indices`, as a value of `shape`.
    static func gatherElements(_ x: ONNXValue, _ indices: [Int], shape: [Int]) -> ONNXValue {
        switch x {
        case let .floats(_, v):
            return .floats(shape, v.withUnsafeBufferPointer { src in indices.map { src[$0] } })
        case let .ints(_, v): return .ints(shape, indices.map { v[$0] })
        }
    }

    static func reshape(_ n: NodeContext) throws -> ONNXValue {
        let x = try n.input(0)
        let wanted = try n.optionalInput(1).map { try n.ints(of: $0) } ?? n.intList("shape") ?? []
        let allowZero = try n.int("allowzero", default: 0) != 0
        var shape: [Int] = []
        var inferred: Int?
        for (i, d) in wanted.enumerated() {
            switch d {
            case -1:
                guard inferred == nil else { throw n.error("two dimensions of -1 in \(wanted)") }
                inferred = i
                shape.append(1)
            case 0 where !allowZero:
                guard i < x.shape.count else { throw n.error("0 copies dimension \(i) of \(x.shape), which has none") }
                shape.append(x.shape[i])
            default:
                guard d >= 0, d <= Int64(Int32.max) else { throw n.error("dimension \(d)") }
                shape.append(Int(d))
            }
        }
        if let i = inferred {
            let rest = shape.reduce(1, *)
            guard rest > 0, x.count % rest == 0 else { throw n.error("cannot reshape \(x.shape) to \(wanted)") }
            shape[i] = x.count / rest
        }
        guard shape.reduce(1, *) == x.count else { throw n.error("cannot reshape \(x.shape) (\(x.count) values) to \(wanted)") }
        return x.reshaped(shape)
    }

    static func squeeze(_ n: NodeContext, adding: Bool) throws -> ONNXValue {
        let x = try n.input(0)
        let axes = try n.optionalInput(1).map { try n.ints(of: $0) } ?? n.intList("axes")
        if adding {
            guard let axes else { throw n.error("no axes") }
            let rank = x.shape.count + axes.count
            let positions = try axes.map { a -> Int in
                guard let p = normalisedAxis(a, rank: rank) else { throw n.error("axis \(a) for rank \(rank)") }
                return p
            }
            guard Set(positions).count == positions.count else { throw n.error("repeated axes \(axes)") }
            var shape: [Int] = []
            var rest = x.shape.makeIterator()
            for i in 0..<rank { shape.append(positions.contains(i) ? 1 : rest.next() ?? 1) }
            return x.reshaped(shape)
        }
        let remove = try Set((axes ?? x.shape.indices.filter { x.shape[$0] == 1 }.map(Int64.init)).map { a -> Int in
            guard let p = normalisedAxis(a, rank: x.shape.count), x.shape[p] == 1 else { throw n.error("cannot squeeze axis \(a) of \(x.shape)") }
            return p
        })
        return x.reshaped(x.shape.enumerated().filter { !remove.contains($0.offset) }.map(\.element))
    }

    static func transpose(_ n: NodeContext) throws -> ONNXValue {
        let x = try n.input(0)
        let rank = x.shape.count
        let perm = try n.intList("perm").map { $0.map(Int.init) } ?? Array((0..<rank).reversed())
        guard perm.sorted() == Array(0..<rank) else { throw n.error("perm \(perm) for rank \(rank)") }
        let shape = perm.map { x.shape[$0] }
        let inStrides = strides(x.shape)
        var indices = [Int](repeating: 0, count: x.count)
        var counter = [Int](repeating: 0, count: rank)
        for i in 0..<x.count {
            indices[i] = (0..<rank).reduce(0) { $0 + counter[$1] * inStrides[perm[$1]] }
            var d = rank - 1
            while d >= 0 { counter[d] += 1; if counter[d] < shape[d] { break }; counter[d] = 0; d -= 1 }
        }
        return gatherElements(x, indices, shape: shape)
    }

    static func concat(_ n: NodeContext) throws -> ONNXValue {
        let parts = try (0..<n.inputCount).compactMap { try n.optionalInput($0) }
        guard let first = parts.first else { throw n.error("no inputs") }
        guard let axis = normalisedAxis(try n.int("axis", default: 0), rank: first.shape.count) else { throw n.error("axis for rank \(first.shape.count)") }
        for p in parts where p.shape.count != first.shape.count || zip(p.shape, first.shape).enumerated().contains(where: { $0.offset != axis && $0.element.0 != $0.element.1 }) {
            throw n.error("cannot join \(p.shape) to \(first.shape) along axis \(axis)")
        }
        let outer = first.shape[..<axis].reduce(1, *), inner = first.shape[(axis + 1)...].reduce(1, *)
        var shape = first.shape
        shape[axis] = parts.reduce(0) { $0 + $1.shape[axis] }
        let allInts = parts.allSatisfy { if case .ints = $0 { return true } else { return false } }
        if allInts {
            var out: [Int64] = []
            for o in 0..<outer { for p in parts { let v = p.intValues!, run = p.shape[axis] * inner; out += v[(o * run)..<((o + 1) * run)] } }
            return .ints(shape, out)
        }
        var out: [Float] = []
        for o in 0..<outer { for p in parts { let v = p.floatValues, run = p.shape[axis] * inner; out += v[(o * run)..<((o + 1) * run)] } }
        return .floats(shape, out)
    }

    /// A Pad node's amounts for an input of `rank` axes (all begins, then all ends; negative
    /// ones crop), its mode and its constant value.
    static func padding(_ n: NodeContext, rank: Int) throws -> (pads: [Int64], mode: String, value: Float) {
        let mode = try n.string("mode", default: "constant")
        var pads = try n.optionalInput(1).map { try n.ints(of: $0) } ?? n.intList("pads") ?? []
        let value = try n.optionalInput(2).map { try n.scalar($0) } ?? n.float("value", default: 0)
        if let axesValue = try n.optionalInput(3) {
            let axes = try n.ints(of: axesValue).map { a -> Int in
                guard let p = normalisedAxis(a, rank: rank) else { throw n.error("axis \(a)") }
                return p
            }
            guard pads.count == 2 * axes.count else { throw n.error("pads \(pads) for axes \(axes)") }
            var full = [Int64](repeating: 0, count: 2 * rank)
            for (i, a) in axes.enumerated() { (full[a], full[a + rank]) = (pads[i], pads[i + axes.count]) }
            pads = full
        }
        guard pads.count == 2 * rank, pads.allSatisfy({ abs($0) <= 1 << 20 }) else { throw n.error("pads \(pads) for rank \(rank)") }
        return (pads, mode, value)
    }

    static func pad(_ n: NodeContext) throws -> ONNXValue {
        let x = try n.input(0)
        let rank = x.shape.count
        let (pads, mode, value) = try padding(n, rank: rank)
        let shape = (0..<rank).map { x.shape[$0] + Int(pads[$0]) + Int(pads[$0 + rank]) }
        guard shape.allSatisfy({ $0 >= 0 }), checkedShape(shape) != nil else { throw n.error("padded shape \(shape)") }
        if mode != "constant", x.shape.contains(0) { throw n.error("\(mode) padding of an empty tensor") }
        if mode == "constant", pads.allSatisfy({ $0 >= 0 }), rank >= 1, case let .floats(_, v) = x {
            // Zero-or-more padding: the value everywhere, then each input row copied into place
            // (a ResNet's option-A shortcut pads channels on every block).
            var y = [Float](repeating: value, count: shape.reduce(1, *))
            let (row, outStrides) = (x.shape[rank - 1], strides(shape))
            let rows = x.count / Swift.max(row, 1)
            var counter = [Int](repeating: 0, count: Swift.max(rank - 1, 0))
            y.withUnsafeMutableBufferPointer { out in
                v.withUnsafeBufferPointer { src in
                    for r in 0..<(row == 0 ? 0 : rows) {
                        var offset = Int(pads[rank - 1])
                        for d in 0..<(rank - 1) { offset += (counter[d] + Int(pads[d])) * outStrides[d] }
                        for i in 0..<row { out[offset + i] = src[r * row + i] }
                        var d = rank - 2
                        while d >= 0 { counter[d] += 1; if counter[d] < x.shape[d] { break }; counter[d] = 0; d -= 1 }
                    }
                }
            }
            return .floats(shape, y)
        }
        let inStrides = strides(x.shape), total = shape.reduce(1, *)
        var indices = [Int](repeating: -1, count: total)
        var counter = [Int](repeating: 0, count: rank)
        for i in 0..<total {
            var offset = 0
            for d in 0..<rank {
                var p = counter[d] - Int(pads[d])
                let size = x.shape[d]
                switch mode {
                case "edge": p = Swift.min(Swift.max(p, 0), size - 1)
                case "reflect":
                    guard size > 1 else { p = 0; break }
                    let period = 2 * (size - 1)
                    p = ((p % period) + period) % period
                    if p >= size { p = period - p }
                case "wrap": p = ((p % size) + size) % size
                case "constant": break
                default: throw n.error("mode \(mode)")
                }
                if p < 0 || p >= size { offset = -1; break }
                offset += p * inStrides[d]
            }
            indices[i] = offset
            var d = rank - 1
            while d >= 0 { counter[d] += 1; if counter[d] < shape[d] { break }; counter[d] = 0; d -= 1 }
        }
        switch x {
        case let .floats(_, v): return .floats(shape, indices.map { $0 < 0 ? value : v[$0] })
        case let .ints(_, v): return .ints(shape, indices.map { $0 < 0 ? Int64(value) : v[$0] })
        }
    }

    static func gather(_ n: NodeContext) throws -> ONNXValue {
        let x = try n.input(0), iv = try n.input(1)
        let indices = try n.ints(of: iv)
        guard let axis = normalisedAxis(try n.int("axis", default: 0), rank: x.shape.count) else { throw n.error("axis for rank \(x.shape.count)") }
        let size = x.shape[axis]
        let outer = x.shape[..<axis].reduce(1, *), inner = x.shape[(axis + 1)...].reduce(1, *)
        let picked = try indices.map { i -> Int in
            let j = i < 0 ? Int(i) + size : Int(i)
            guard (0..<size).contains(j) else { throw n.error("index \(i) outside 0..<\(size)") }
            return j
        }
        var map: [Int] = []
        map.reserveCapacity(outer * picked.count * inner)
        for o in 0..<outer { for j in picked { for i in 0..<inner { map.append((o * size + j) * inner + i) } } }
        return gatherElements(x, map, shape: Array(x.shape[..<axis]) + iv.shape + Array(x.shape[(axis + 1)...]))
    }

    /// GatherND: each row of the last axis of `indices` picks a slice of `data` (after the
    /// first `batch_dims` axes, shared by both). The default exporter writes it for an
    /// AdaptiveAvgPool2d whose output does not divide its input (torchvision's VGG and AlexNet
    /// on images smaller than 224).
    static func gatherND(_ n: NodeContext) throws -> ONNXValue {
        let x = try n.input(0), iv = try n.input(1)
        let indices = try n.ints(of: iv)
        let b = Int(try n.int("batch_dims", default: 0))
        let (ds, ks) = (x.shape, iv.shape)
        guard b >= 0, b < ks.count, b < ds.count, Array(ds[..<b]) == Array(ks[..<b]), let k = ks.last, k >= 1, b + k <= ds.count else {
            throw n.error("indices of shape \(ks) for data of shape \(ds) and batch_dims \(b)")
        }
        let slice = ds[(b + k)...].reduce(1, *)
        let batches = ds[..<b].reduce(1, *)
        let rowsPerBatch = ks[b..<(ks.count - 1)].reduce(1, *)
        let dataStrides = strides(ds), batchStride = b > 0 ? dataStrides[b - 1] : x.count
        var map: [Int] = []
        map.reserveCapacity(batches * rowsPerBatch * slice)
        for batch in 0..<batches {
            for row in 0..<rowsPerBatch {
                var offset = batch * batchStride
                for j in 0..<k {
                    let size = ds[b + j], i = indices[(batch * rowsPerBatch + row) * k + j]
                    let at = i < 0 ? Int(i) + size : Int(i)
                    guard (0..<size).contains(at) else { throw n.error("index \(i) outside 0..<\(size)") }
                    offset += at * dataStrides[b + j]
                }
                for i in 0..<slice { map.append(offset + i) }
            }
        }
        return gatherElements(x, map, shape: Array(ks.dropLast()) + Array(ds[(b + k)...]))
    }

    /// Where: per element, X where the condition is non-zero, else Y (all three broadcast). The
    /// default exporter's masked fills (an AdaptiveAvgPool2d's windows) read constant conditions.
    static func select(_ n: NodeContext) throws -> ONNXValue {
        let c = try n.input(0), a = try n.input(1), b = try n.input(2)
        guard let ab = broadcastShape(a.shape, b.shape), let shape = broadcastShape(c.shape, ab), checkedShape(shape) != nil else {
            throw n.error("cannot broadcast \(c.shape), \(a.shape) and \(b.shape)")
        }
        let condition = c.floatValues
        let (ic, ia, ib) = (broadcastIndices(c.shape, to: shape), broadcastIndices(a.shape, to: shape), broadcastIndices(b.shape, to: shape))
        if case let .ints(_, av) = a, case let .ints(_, bv) = b {
            return .ints(shape, (0..<ic.count).map { condition[ic[$0]] != 0 ? av[ia[$0]] : bv[ib[$0]] })
        }
        let (av, bv) = (a.floatValues, b.floatValues)
        return .floats(shape, (0..<ic.count).map { condition[ic[$0]] != 0 ? av[ia[$0]] : bv[ib[$0]] })
    }

    static func slice(_ n: NodeContext) throws -> ONNXValue {
        let x = try n.input(0)
        let rank = x.shape.count
        let (begin, step, count) = try sliceWindow(n, shape: x.shape)
        let inStrides = strides(x.shape), total = count.reduce(1, *)
        guard rank >= 1, total > 0 else { return gatherElements(x, [], shape: count) }
        // Row by row: the outer dimensions' offset once per row, then the last axis in steps.
        let (inner, innerStep) = (count[rank - 1], step[rank - 1] * inStrides[rank - 1])
        var map = [Int](repeating: 0, count: total)
        var counter = [Int](repeating: 0, count: rank - 1)
        for r in 0..<(total / inner) {
            var offset = begin[rank - 1] * inStrides[rank - 1]
            for d in 0..<(rank - 1) { offset += (begin[d] + counter[d] * step[d]) * inStrides[d] }
            for i in 0..<inner { map[r * inner + i] = offset + i * innerStep }
            var d = rank - 2
            while d >= 0 { counter[d] += 1; if counter[d] < count[d] { break }; counter[d] = 0; d -= 1 }
        }
        return gatherElements(x, map, shape: count)
    }

    /// What a Slice node keeps of an input of `shape`: per axis, the first index, the step and
    /// how many (starts and ends clamped as ONNX says, negative steps counting down).
    static func sliceWindow(_ n: NodeContext, shape: [Int]) throws -> (begin: [Int], step: [Int], count: [Int]) {
        let rank = shape.count
        let old = n.opset < 10
        guard let starts = old ? try n.intList("starts") : try n.ints(of: try n.input(1)),
              let ends = old ? try n.intList("ends") : try n.ints(of: try n.input(2)) else { throw n.error("no starts or ends") }
        let axes = old ? try n.intList("axes") : try n.optionalInput(3).map { try n.ints(of: $0) }
        let steps = old ? nil : try n.optionalInput(4).map { try n.ints(of: $0) }
        let axisList = axes ?? (0..<starts.count).map(Int64.init)
        guard starts.count == ends.count, axisList.count == starts.count, (steps?.count ?? starts.count) == starts.count else {
            throw n.error("starts, ends, axes and steps differ in length")
        }
        var begin = [Int](repeating: 0, count: rank), step = [Int](repeating: 1, count: rank), count = shape
        for (i, a) in axisList.enumerated() {
            guard let axis = normalisedAxis(a, rank: rank) else { throw n.error("axis \(a) for rank \(rank)") }
            let size = Int64(shape[axis])
            let s = steps?[i] ?? 1
            guard s != 0, abs(s) <= Int64(Int32.max) else { throw n.error("step \(s)") }
            var lo = starts[i] < 0 ? starts[i] &+ size : starts[i], hi = ends[i] < 0 ? ends[i] &+ size : ends[i]
            if s > 0 {
                lo = Swift.min(Swift.max(lo, 0), size); hi = Swift.min(Swift.max(hi, 0), size)
                count[axis] = hi > lo ? Int((hi - lo + s - 1) / s) : 0
            } else {
                lo = Swift.min(Swift.max(lo, -1), size - 1); hi = Swift.min(Swift.max(hi, -1), size - 1)
                count[axis] = lo > hi ? Int((lo - hi + (-s) - 1) / (-s)) : 0
            }
            (begin[axis], step[axis]) = (Int(lo), Int(s))
        }
        return (begin, step, count)
    }

    static func cast(_ n: NodeContext) throws -> ONNXValue {
        let x = try n.input(0)
        switch try n.int("to", default: 1) {
        case 1, 11: return .floats(x.shape, x.floatValues)
        case 6, 7, 2, 3:
            guard let v = x.intValues else { throw n.error("a value that is not a finite integer") }
            return .ints(x.shape, v)
        case 9: return .ints(x.shape, x.floatValues.map { $0 != 0 ? 1 : 0 })
        case let t: throw n.error("cast to \(ONNXTensorProto.typeNames[t] ?? "type \(t)") is not supported")
        }
    }

    static func constant(_ n: NodeContext) throws -> ONNXValue {
        switch n.node.attributes.first?.value {
        case let .tensor(t)?: return try t.value(directory: nil)
        case let .float(f)?: return .floats([], [f])
        case let .floats(v)?: return .floats([v.count], v)
        case let .int(i)?: return .ints([], [i])
        case let .ints(v)?: return .ints([v.count], v)
        default: throw n.error("no value attribute")
        }
    }

    static func split(_ n: NodeContext) throws -> [ONNXValue] {
        let x = try n.input(0)
        guard let axis = normalisedAxis(try n.int("axis", default: 0), rank: x.shape.count) else { throw n.error("axis") }
        let size = x.shape[axis], parts = n.node.outputs.count
        var sizes = try n.optionalInput(1).map { try n.ints(of: $0).map(Int.init) } ?? n.intList("split")?.map(Int.init) ?? []
        if sizes.isEmpty {
            let each = (size + parts - 1) / Swift.max(parts, 1)
            sizes = (0..<parts).map { Swift.max(0, Swift.min(each, size - $0 * each)) }
        }
        guard sizes.count == parts, sizes.allSatisfy({ $0 >= 0 }), sizes.reduce(0, +) == size else { throw n.error("split \(sizes) of \(size)") }
        let outer = x.shape[..<axis].reduce(1, *), inner = x.shape[(axis + 1)...].reduce(1, *)
        var start = 0
        return sizes.map { s in
            var shape = x.shape
            shape[axis] = s
            var map: [Int] = []
            for o in 0..<outer { for j in start..<(start + s) { for i in 0..<inner { map.append((o * size + j) * inner + i) } } }
            start += s
            return gatherElements(x, map, shape: shape)
        }
    }
}

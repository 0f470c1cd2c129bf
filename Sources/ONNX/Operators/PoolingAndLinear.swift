import Foundation
import TensorEngine

/// Pooling, reductions, matrix products and softmax (reference kernels).
extension ONNXOperators {
    // x: (N, C, H, W) -> y: (N, C, H', W')
    static func pool(_ n: NodeContext, max isMax: Bool) throws -> ONNXValue {
        if n.node.outputs.count > 1, !n.node.outputs[1].isEmpty { throw n.error("the indices output is not supported") }
        let (xs, x) = try n.floats(0)
        let (batch, c, h, w, oneD) = try as2D(xs, node: n)
        let rank = oneD ? 1 : 2
        guard let k = try n.intList("kernel_shape"), k.count == rank, k.allSatisfy({ (1...(1 << 16)).contains($0) }) else {
            throw n.error("kernel_shape must hold \(rank) sizes")
        }
        let kernel = oneD ? [1, Int(k[0])] : k.map(Int.init)
        let g = try window(n, input: [h, w], kernel: kernel, oneD: oneD, ceil: try n.int("ceil_mode", default: 0) != 0)
        let includePad = try n.int("count_include_pad", default: 0) != 0
        let (oh, ow) = (g.output[0], g.output[1])
        let (kh, kw) = (kernel[0], kernel[1])
        let (sy, sx, dy, dx) = (g.strides[0], g.strides[1], g.dilations[0], g.dilations[1])
        let (top, left, bottom, right) = (g.pads[0], g.pads[1], g.pads[2], g.pads[3])
        var y = [Float](repeating: 0, count: batch * c * oh * ow)
        x.withUnsafeBufferPointer { xp in
            y.withUnsafeMutableBufferPointer { yp in
                let (xb, yb) = (xp.baseAddress!, yp.baseAddress!)
                // Planes are independent: each on one thread, in any order.
                Parallel.forEach(batch * c) { plane in
                    let src = xb + plane * h * w, dst = yb + plane * oh * ow
                    if isMax {
                        // The window's rows and columns inside the image, worked out once per
                        // output: no test per tap (a ResNet's stem pooling ran 12% of its time).
                        for yy in 0..<oh {
                            let y0 = yy * sy - top
                            let (kyLow, kyHigh) = (Swift.max(0, (-y0 + dy - 1) / dy), Swift.min(kh, (h - y0 + dy - 1) / dy))
                            for xx in 0..<ow {
                                let x0 = xx * sx - left
                                let (kxLow, kxHigh) = (Swift.max(0, (-x0 + dx - 1) / dx), Swift.min(kw, (w - x0 + dx - 1) / dx))
                                var acc: Float = -.infinity
                                if kyLow < kyHigh, kxLow < kxHigh {
                                    for ky in kyLow..<kyHigh {
                                        let row = src + (y0 + ky * dy) * w + x0
                                        for kx in kxLow..<kxHigh { acc = Swift.max(acc, row[kx * dx]) }
                                    }
                                }
                                dst[yy * ow + xx] = acc
                            }
                        }
                        return
                    }
                    for yy in 0..<oh {
                        for xx in 0..<ow {
                            var acc: Float = isMax ? -.infinity : 0
                            var counted = 0
                            for ky in 0..<kh {
                                let iy = yy * sy - top + ky * dy
                                for kx in 0..<kw {
                                    let ix = xx * sx - left + kx * dx
                                    let inside = iy >= 0 && iy < h && ix >= 0 && ix < w
                                    if includePad, iy >= -top, iy < h + bottom, ix >= -left, ix < w + right { counted += 1 }
                                    guard inside else { continue }
                                    if !includePad { counted += 1 }
                                    let v = src[iy * w + ix]
                                    acc = isMax ? Swift.max(acc, v) : acc + v
                                }
                            }
                            dst[yy * ow + xx] = isMax ? acc : acc / Float(Swift.max(counted, 1))
                        }
                    }
                }
            }
        }
        return .floats(oneD ? [batch, c, ow] : [batch, c, oh, ow], y)
    }

    // x: (N, C, ...) -> y: (N, C, 1, ...)
    static func globalPool(_ n: NodeContext, max isMax: Bool) throws -> ONNXValue {
        let (xs, x) = try n.floats(0)
        guard xs.count >= 2 else { throw n.error("input of rank \(xs.count)") }
        let inner = xs.dropFirst(2).reduce(1, *), planes = xs[0] * xs[1]
        let y = (0..<planes).map { p -> Float in
            let slice = x[(p * inner)..<((p + 1) * inner)]
            return isMax ? (slice.max() ?? 0) : slice.reduce(0, +) / Float(Swift.max(inner, 1))
        }
        return .floats([xs[0], xs[1]] + Array(repeating: 1, count: xs.count - 2), y)
    }

    /// Local response normalisation across channels (AlexNet's): x / (bias + α/size · Σ x²)^β
    /// over the `size` channels around each.
    static func localResponseNorm(_ n: NodeContext) throws -> ONNXValue {
        let (xs, x) = try n.floats(0)
        guard xs.count >= 2 else { throw n.error("input of rank \(xs.count)") }
        let size = Int(try n.int("size", default: 0))
        guard (1...1024).contains(size) else { throw n.error("size \(size)") }
        let alpha = try n.float("alpha", default: 1e-4), beta = try n.float("beta", default: 0.75), bias = try n.float("bias", default: 1)
        let (c, inner) = (xs[1], xs.dropFirst(2).reduce(1, *))
        let (below, above) = ((size - 1) / 2, size - 1 - (size - 1) / 2)
        var y = x
        for b in 0..<xs[0] {
            for ch in 0..<c {
                for p in 0..<inner {
                    var sum: Float = 0
                    for other in Swift.max(0, ch - below)...Swift.min(c - 1, ch + above) {
                        let v = x[(b * c + other) * inner + p]
                        sum += v * v
                    }
                    let at = (b * c + ch) * inner + p
                    y[at] = x[at] / Foundation.pow(bias + alpha / Float(size) * sum, beta)
                }
            }
        }
        return .floats(xs, y)
    }

    /// ReduceMean / ReduceSum / ReduceMax over `axes` (an attribute, or input 1 from opset 18;
    /// ReduceSum from 13), keeping the reduced dimensions when `keepdims`.
    static func reduce(_ n: NodeContext) throws -> ONNXValue {
        let x = try n.input(0)
        let shape = x.shape, values = x.floatValues
        let listed = try n.optionalInput(1).map { try n.ints(of: $0) } ?? n.intList("axes")
        let all = listed?.isEmpty ?? true
        if all, try n.int("noop_with_empty_axes", default: 0) != 0 { return x }
        var axes = Set<Int>()
        for a in listed ?? [] {
            guard let axis = normalisedAxis(a, rank: shape.count) else { throw n.error("axis \(a) for rank \(shape.count)") }
            axes.insert(axis)
        }
        if all { axes = Set(0..<shape.count) }
        let keep = try n.int("keepdims", default: 1) != 0
        let kept = shape.enumerated().map { axes.contains($0.offset) ? 1 : $0.element }
        let outCount = kept.reduce(1, *)
        let op = n.node.opType
        var acc = [Float](repeating: op == "ReduceMax" ? -.infinity : 0, count: outCount)
        let inner = values.count / Swift.max(outCount, 1)
        if !axes.isEmpty, axes == Set((shape.count - axes.count)..<shape.count), op != "ReduceMax" {
            // Trailing axes (a spatial mean): each output sums its contiguous run, in index
            // order as below, without the index table.
            values.withUnsafeBufferPointer { v in
                for o in 0..<outCount { var sum: Float = 0; for i in (o * inner)..<((o + 1) * inner) { sum += v[i] }; acc[o] = sum }
            }
        } else {
            let map = broadcastIndices(kept, to: shape)
            for (i, v) in values.enumerated() { acc[map[i]] = op == "ReduceMax" ? Swift.max(acc[map[i]], v) : acc[map[i]] + v }
        }
        if op == "ReduceMean" {
            let n = Float(Swift.max(shape.count == 0 ? 1 : values.count / Swift.max(outCount, 1), 1))
            acc = acc.map { $0 / n }
        }
        let outShape = keep ? kept : shape.enumerated().filter { !axes.contains($0.offset) }.map(\.element)
        return .floats(outShape, acc)
    }

    /// Y = alpha · A' · B' + beta · C, A' and B' transposed when asked.
    static func gemm(_ n: NodeContext) throws -> ONNXValue {
        let (sa, a) = try n.floats(0), (sb, b) = try n.floats(1)
        guard sa.count == 2, sb.count == 2 else { throw n.error("inputs of shapes \(sa), \(sb) are not matrices") }
        let ta = try n.int("transA", default: 0) != 0, tb = try n.int("transB", default: 0) != 0
        let (m, k) = ta ? (sa[1], sa[0]) : (sa[0], sa[1])
        let (k2, cols) = tb ? (sb[1], sb[0]) : (sb[0], sb[1])
        guard k == k2 else { throw n.error("inner sizes \(k) and \(k2) differ") }
        let alpha = try n.float("alpha", default: 1), beta = try n.float("beta", default: 1)
        var y = [Float](repeating: 0, count: m * cols)
        a.withUnsafeBufferPointer { ap in
            b.withUnsafeBufferPointer { bp in
                y.withUnsafeMutableBufferPointer { yp in
                    TensorEngine.gemm(transA: ta, transB: tb, m: m, n: cols, k: k, alpha: alpha, a: ap.baseAddress!, lda: sa[1], b: bp.baseAddress!, ldb: sb[1],
                         c: yp.baseAddress!, ldc: cols)
                }
            }
        }
        if let c = try n.optionalInput(2) {
            guard let shape = broadcastShape(c.shape, [m, cols]), shape == [m, cols] else { throw n.error("C of shape \(c.shape) for output [\(m), \(cols)]") }
            let map = broadcastIndices(c.shape, to: [m, cols]), cv = c.floatValues
            for i in 0..<y.count { y[i] += beta * cv[map[i]] }
        }
        return .floats([m, cols], y)
    }

    /// numpy.matmul: vectors promoted to matrices, batch dimensions broadcast.
    static func matMul(_ n: NodeContext) throws -> ONNXValue {
        var (sa, a) = try n.floats(0)
        var (sb, b) = try n.floats(1)
        guard !sa.isEmpty, !sb.isEmpty else { throw n.error("scalar inputs") }
        let vectorA = sa.count == 1, vectorB = sb.count == 1
        if vectorA { sa = [1, sa[0]] }
        if vectorB { sb = [sb[0], 1] }
        let (m, k) = (sa[sa.count - 2], sa[sa.count - 1]), (k2, cols) = (sb[sb.count - 2], sb[sb.count - 1])
        guard k == k2, let batch = broadcastShape(Array(sa.dropLast(2)), Array(sb.dropLast(2))) else {
            throw n.error("shapes \(sa) and \(sb) do not multiply")
        }
        let batches = batch.reduce(1, *)
        let ia = broadcastIndices(Array(sa.dropLast(2)), to: batch), ib = broadcastIndices(Array(sb.dropLast(2)), to: batch)
        var y = [Float](repeating: 0, count: batches * m * cols)
        a.withUnsafeBufferPointer { ap in
            b.withUnsafeBufferPointer { bp in
                y.withUnsafeMutableBufferPointer { yp in
                    for t in 0..<batches {
                        TensorEngine.gemm(m: m, n: cols, k: k, a: ap.baseAddress! + ia[t] * m * k, lda: k, b: bp.baseAddress! + ib[t] * k * cols, ldb: cols,
                             c: yp.baseAddress! + t * m * cols, ldc: cols)
                    }
                }
            }
        }
        var shape = batch + [m, cols]
        if vectorB { shape.removeLast() }
        if vectorA { shape.remove(at: shape.count - (vectorB ? 1 : 2)) }
        return .floats(shape, y)
    }

    /// Softmax along `axis` (opset 13 and up), or over the flattened dimensions from `axis` on
    /// (before 13).
    static func softmax(_ n: NodeContext, log: Bool) throws -> ONNXValue {
        let (xs, x) = try n.floats(0)
        let newStyle = n.opset >= 13
        guard let axis = normalisedAxis(try n.int("axis", default: newStyle ? -1 : 1), rank: xs.count) else { throw n.error("axis for rank \(xs.count)") }
        let (outer, length, inner) = newStyle
            ? (xs[..<axis].reduce(1, *), xs.isEmpty ? 1 : xs[axis], xs[(axis + 1)...].reduce(1, *))
            : (xs[..<axis].reduce(1, *), xs[axis...].reduce(1, *), 1)
        var y = x
        for o in 0..<outer {
            for i in 0..<inner {
                let at = { (j: Int) in (o * length + j) * inner + i }
                var peak = -Float.infinity
                for j in 0..<length { peak = Swift.max(peak, x[at(j)]) }
                var sum: Float = 0
                for j in 0..<length { sum += Foundation.exp(x[at(j)] - peak) }
                for j in 0..<length { y[at(j)] = log ? x[at(j)] - peak - Foundation.log(sum) : Foundation.exp(x[at(j)] - peak) / sum }
            }
        }
        return .floats(xs, y)
    }
}

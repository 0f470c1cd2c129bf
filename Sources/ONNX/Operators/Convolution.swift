import Foundation
import TensorEngine

/// Convolutions and batch normalisation (reference kernels: plain loops, exact to ONNX's
/// definitions; 1-D inputs run as 2-D with a height of 1).
extension ONNXOperators {
    /// The geometry of a 2-D window operator (convolution or pooling) along both axes.
    struct Window {
        var kernel: [Int]
        var strides: [Int]
        var dilations: [Int]
        /// [top, left, bottom, right].
        var pads: [Int]
        var output: [Int]
    }

    /// Input (…, H, W) seen as 2-D: 1-D inputs get a height of 1.
    static func as2D(_ shape: [Int], node: NodeContext) throws -> (n: Int, c: Int, h: Int, w: Int, oneD: Bool) {
        switch shape.count {
        case 3: return (shape[0], shape[1], 1, shape[2], true)
        case 4: return (shape[0], shape[1], shape[2], shape[3], false)
        default: throw node.error("input of rank \(shape.count); layersweep runs 1-D and 2-D windows (N, C, [H,] W)")
        }
    }

    /// Pads, output size and strides of a window of `kernel` over `input` (H, W), from the
    /// node's `auto_pad`, `pads`, `strides`, `dilations` and (pooling) `ceil_mode`.
    static func window(_ n: NodeContext, input: [Int], kernel: [Int], oneD: Bool, ceil: Bool = false) throws -> Window {
        let rank = oneD ? 1 : 2
        func lift(_ v: [Int], _ fill: Int) -> [Int] { oneD ? [fill] + v : v }
        let strides = lift(try n.sizes("strides", count: rank, default: 1), 1)
        let dilations = lift(try n.sizes("dilations", count: rank, default: 1), 1)
        guard strides.allSatisfy({ $0 >= 1 }), dilations.allSatisfy({ $0 >= 1 }) else { throw n.error("strides and dilations must be at least 1") }
        var pads = try n.sizes("pads", count: 2 * rank, default: 0)
        if oneD { pads = [0, pads[0], 0, pads[1]] }
        let autoPad = try n.string("auto_pad", default: "NOTSET")
        var output = [0, 0]
        for d in 0..<2 {
            let extent = (kernel[d] - 1) * dilations[d] + 1
            switch autoPad {
            case "SAME_UPPER", "SAME_LOWER":
                output[d] = (input[d] + strides[d] - 1) / strides[d]
                let total = max(0, (output[d] - 1) * strides[d] + extent - input[d])
                let small = total / 2
                (pads[d], pads[d + 2]) = autoPad == "SAME_UPPER" ? (small, total - small) : (total - small, small)
            case "VALID":
                (pads[d], pads[d + 2]) = (0, 0)
                output[d] = input[d] >= extent ? (input[d] - extent) / strides[d] + 1 : 0
            case "NOTSET":
                let span = input[d] + pads[d] + pads[d + 2] - extent
                guard span >= 0 else { throw n.error("window of \(extent) does not fit an input of \(input[d]) with its pads") }
                output[d] = (ceil ? (span + strides[d] - 1) / strides[d] : span / strides[d]) + 1
                // ceil_mode: a last window that starts in the right padding is dropped (PyTorch's rule).
                if ceil, (output[d] - 1) * strides[d] >= input[d] + pads[d] { output[d] -= 1 }
            default: throw n.error("auto_pad \(autoPad)")
            }
        }
        return Window(kernel: kernel, strides: strides, dilations: dilations, pads: pads, output: output)
    }

    // x: (N, C, H, W), w: (M, C/group, kH, kW), b: (M) -> y: (N, M, H', W')
    static func convolution(_ n: NodeContext) throws -> ONNXValue {
        let (xs, x) = try n.floats(0), (ws, w) = try n.floats(1)
        let (batch, c, h, width, oneD) = try as2D(xs, node: n)
        guard ws.count == xs.count else { throw n.error("weight of shape \(ws) for input \(xs)") }
        let group = Int(try n.int("group", default: 1))
        let m = ws[0], kernel = oneD ? [1, ws[2]] : [ws[2], ws[3]]
        guard group >= 1, c % group == 0, m % group == 0, ws[1] == c / group else {
            throw n.error("weight \(ws) does not fit \(c) input channels in \(group) groups")
        }
        let bias = try n.optionalInput(2)?.floatValues ?? [Float](repeating: 0, count: m)
        guard bias.count == m else { throw n.error("bias of \(bias.count) values for \(m) outputs") }
        let g = try window(n, input: [h, width], kernel: kernel, oneD: oneD)
        let (oh, ow) = (g.output[0], g.output[1])
        let (cg, mg) = (c / group, m / group)
        let spatial = oh * ow, taps = cg * kernel[0] * kernel[1]
        var y = [Float](repeating: 0, count: batch * m * spatial)
        let chunk = imagesPerCall, chunks = (batch + chunk - 1) / chunk
        // Images in fixed chunks, one chunk per thread and one BLAS call per chunk and group:
        // values do not depend on the thread count. Columns: (input channel, ky, kx) rows × (image,
        // output position).
        x.withUnsafeBufferPointer { xp in
            w.withUnsafeBufferPointer { wp in
                y.withUnsafeMutableBufferPointer { yp in
                    let (xb, wb, yb) = (xp.baseAddress!, wp.baseAddress!, yp.baseAddress!)
                    if cg == 1, mg == 1 {
                        depthwise(xb, wb, yb, bias: bias, images: batch, channels: c, h: h, w: width, kernel: kernel, g: g)
                        return
                    }
                    let (kh, kw) = (kernel[0], kernel[1])
                    let (sy, sx, py, px, dy, dx) = (g.strides[0], g.strides[1], g.pads[0], g.pads[1], g.dilations[0], g.dilations[1])
                    Parallel.forEach(chunks) { k in
                        let first = k * chunk, images = min(chunk, batch - first), width2 = images * spatial
                        var columns = [Float](repeating: 0, count: taps * width2)
                        var out = [Float](repeating: 0, count: mg * width2)
                        columns.withUnsafeMutableBufferPointer { cp in
                            out.withUnsafeMutableBufferPointer { op in
                                let (col, result) = (cp.baseAddress!, op.baseAddress!)
                                for gi in 0..<group {
                                    for i in 0..<images {
                                        for ci in 0..<cg {
                                            let plane = xb + ((first + i) * c + gi * cg + ci) * h * width
                                            for ky in 0..<kh {
                                                for kx in 0..<kw {
                                                    let row = col + ((ci * kh + ky) * kw + kx) * width2 + i * spatial
                                                    // The output columns whose input column lies inside the image.
                                                    let offset = kx * dx - px
                                                    let lo = min(ow, max(0, (-offset + sx - 1) / sx)), hi = max(lo, min(ow, (width - offset + sx - 1) / sx))
                                                    for yy in 0..<oh {
                                                        let iy = yy * sy - py + ky * dy
                                                        let dst = row + yy * ow
                                                        guard iy >= 0, iy < h else { dst.update(repeating: 0, count: ow); continue }
                                                        let src = plane + iy * width + offset
                                                        for xx in 0..<lo { dst[xx] = 0 }
                                                        if sx == 1 {
                                                            dst.advanced(by: lo).update(from: src.advanced(by: lo), count: hi - lo)
                                                        } else {
                                                            for xx in lo..<hi { dst[xx] = src[xx * sx] }
                                                        }
                                                        for xx in hi..<ow { dst[xx] = 0 }
                                                    }
                                                }
                                            }
                                        }
                                    }
                                    TensorEngine.gemm(m: mg, n: width2, k: taps, a: wb + gi * mg * taps, lda: taps, b: col, ldb: width2, c: result, ldc: width2)
                                    for i in 0..<images {
                                        for o in 0..<mg {
                                            let add = bias[gi * mg + o]
                                            let src = result + o * width2 + i * spatial, dst = yb + ((first + i) * m + gi * mg + o) * spatial
                                            for p in 0..<spatial { dst[p] = src[p] + add }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return .floats(oneD ? [batch, m, ow] : [batch, m, oh, ow], y)
    }

    /// Images per BLAS call of a convolution: enough columns to amortise the call, a fixed
    /// number so that no value depends on how the batch is spread over threads.
    static let imagesPerCall = 16

    // x: (N, C, H, W), w: (C, 1, kH, kW) -> y: (N, C, H', W'), each channel with its own kernel
    static func depthwise(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, bias: [Float],
                          images: Int, channels: Int, h: Int, w width: Int, kernel: [Int], g: Window) {
        let (oh, ow, kh, kw) = (g.output[0], g.output[1], kernel[0], kernel[1])
        let (sy, sx, py, px, dy, dx) = (g.strides[0], g.strides[1], g.pads[0], g.pads[1], g.dilations[0], g.dilations[1])
        // Each plane is copied into a zero-padded buffer first, so the taps need no bounds checks
        // and a row of outputs accumulates one tap at a time (vectorised for stride 1).
        let (ph, pw) = ((oh - 1) * sy + (kh - 1) * dy + 1, (ow - 1) * sx + (kw - 1) * dx + 1)
        let planes = images * channels, perTask = 64
        bias.withUnsafeBufferPointer { bp in
            let biases = bp.baseAddress!
            // Planes in fixed runs of 64 per task, one padded buffer each (planes are small).
            Parallel.forEach((planes + perTask - 1) / perTask) { task in
              var padded = [Float](repeating: 0, count: ph * pw)
              padded.withUnsafeMutableBufferPointer { pp in
                let p = pp.baseAddress!
                for plane in (task * perTask)..<min(planes, (task + 1) * perTask) {
                    let ch = plane % channels
                    let src = x + plane * h * width, dst = y + plane * oh * ow, taps = w + ch * kh * kw
                    p.update(repeating: 0, count: ph * pw)
                    for iy in 0..<h where iy + py < ph {
                        let cols = min(width, pw - px)
                        if cols > 0 { (p + (iy + py) * pw + px).update(from: src + iy * width, count: cols) }
                    }
                    for yy in 0..<oh {
                        let out = dst + yy * ow
                        out.update(repeating: biases[ch], count: ow)
                        for ky in 0..<kh {
                            let row = p + (yy * sy + ky * dy) * pw
                            for kx in 0..<kw {
                                let tap = taps[ky * kw + kx], start = row + kx * dx
                                if sx == 1 {
                                    for xx in 0..<ow { out[xx] += tap * start[xx] }
                                } else {
                                    for xx in 0..<ow { out[xx] += tap * start[xx * sx] }
                                }
                            }
                        }
                    }
                }
              }
            }
        }
    }

    // x: (N, C, H, W), w: (C, M/group, kH, kW), b: (M) -> y: (N, M, H', W')
    static func transposedConvolution(_ n: NodeContext) throws -> ONNXValue {
        let (xs, x) = try n.floats(0), (ws, w) = try n.floats(1)
        let (batch, c, h, width, oneD) = try as2D(xs, node: n)
        let rank = oneD ? 1 : 2
        guard ws.count == xs.count, ws[0] == c else { throw n.error("weight of shape \(ws) for input \(xs)") }
        let group = Int(try n.int("group", default: 1))
        guard group >= 1, c % group == 0 else { throw n.error("\(c) channels in \(group) groups") }
        let mg = ws[1], m = mg * group
        let kernel = oneD ? [1, ws[2]] : [ws[2], ws[3]]
        func lift(_ v: [Int], _ fill: Int) -> [Int] { oneD ? [fill] + v : v }
        let strides = lift(try n.sizes("strides", count: rank, default: 1), 1)
        let dilations = lift(try n.sizes("dilations", count: rank, default: 1), 1)
        let extra = lift(try n.sizes("output_padding", count: rank, default: 0), 0)
        guard strides.allSatisfy({ $0 >= 1 }), dilations.allSatisfy({ $0 >= 1 }) else { throw n.error("strides and dilations must be at least 1") }
        var pads = try n.sizes("pads", count: 2 * rank, default: 0)
        if oneD { pads = [0, pads[0], 0, pads[1]] }
        let input = [h, width]
        /// The output size before padding is taken off.
        func full(_ d: Int) -> Int {
            let extent: Int = (kernel[d] - 1) * dilations[d] + 1
            return strides[d] * (input[d] - 1) + extra[d] + extent
        }
        var output: [Int] = [full(0) - pads[0] - pads[2], full(1) - pads[1] - pads[3]]
        let autoPad = try n.string("auto_pad", default: "NOTSET")
        if let shape = try n.intList("output_shape") {
            guard shape.count == rank, shape.allSatisfy({ (1...(1 << 20)).contains($0) }) else { throw n.error("output_shape \(shape)") }
            let wanted = lift(shape.map(Int.init), 1)
            for d in 0..<2 {
                let total = full(d) - wanted[d]
                (pads[d], pads[d + 2]) = split(total, upper: autoPad == "SAME_UPPER")
                output[d] = wanted[d]
            }
        } else if autoPad == "SAME_UPPER" || autoPad == "SAME_LOWER" {
            for d in 0..<2 {
                let wanted = input[d] * strides[d]
                let total = full(d) - wanted
                (pads[d], pads[d + 2]) = split(total, upper: autoPad == "SAME_UPPER")
                output[d] = wanted
            }
        }
        guard output.allSatisfy({ $0 >= 1 && $0 <= 1 << 20 }) else { throw n.error("output size \(output)") }
        guard pads.allSatisfy({ abs($0) <= 1 << 20 }) else { throw n.error("pads \(pads)") }
        let bias = try n.optionalInput(2)?.floatValues ?? [Float](repeating: 0, count: m)
        guard bias.count == m else { throw n.error("bias of \(bias.count) values for \(m) outputs") }
        let oh: Int = output[0], ow: Int = output[1]
        let cg = c / group
        var y = [Float](repeating: 0, count: batch * m * oh * ow)
        for b in 0..<batch {
            for o in 0..<m { for p in 0..<(oh * ow) { y[(b * m + o) * oh * ow + p] = bias[o] } }
            for ci in 0..<c {
                let gi = ci / cg
                for iy in 0..<h {
                    for ix in 0..<width {
                        let v = x[((b * c + ci) * h + iy) * width + ix]
                        for mo in 0..<mg {
                            let o = gi * mg + mo
                            for ky in 0..<kernel[0] {
                                let yy = iy * strides[0] - pads[0] + ky * dilations[0]
                                guard yy >= 0, yy < oh else { continue }
                                for kx in 0..<kernel[1] {
                                    let xx = ix * strides[1] - pads[1] + kx * dilations[1]
                                    guard xx >= 0, xx < ow else { continue }
                                    let at: Int = ((b * m + o) * oh + yy) * ow + xx
                                    let tap: Int = ((ci * mg + mo) * kernel[0] + ky) * kernel[1] + kx
                                    y[at] += v * w[tap]
                                }
                            }
                        }
                    }
                }
            }
        }
        return .floats(oneD ? [batch, m, ow] : [batch, m, oh, ow], y)
    }

    /// A total padding split into (begin, end) as ONNX's ConvTranspose does, with floor division
    /// (a negative total, when `output_shape` asks for more, extends the end).
    static func split(_ total: Int, upper: Bool) -> (Int, Int) {
        let half = total >= 0 ? total / 2 : -((-total + 1) / 2)
        return upper ? (half, total - half) : (total - half, half)
    }

    /// Inference batch norm over dimension 1: scale · (x − mean) / √(var + ε) + bias.
    static func batchNorm(_ n: NodeContext) throws -> ONNXValue {
        guard try n.int("training_mode", default: 0) == 0, n.node.outputs.count <= 1 || n.opset < 9 else {
            throw n.error("training mode is not supported (export the network in eval mode)")
        }
        let (xs, x) = try n.floats(0)
        guard xs.count >= 2 else { throw n.error("input of rank \(xs.count)") }
        let c = xs[1]
        let params = try (1...4).map { try n.input($0).floatValues }
        guard params.allSatisfy({ $0.count == c }) else { throw n.error("parameters do not have \(c) values each") }
        let eps = try n.float("epsilon", default: 1e-5)
        let inner = xs.dropFirst(2).reduce(1, *)
        var y = x
        for ch in 0..<c {
            let inverse = 1 / (params[3][ch] + eps).squareRoot()
            let (mean, scale, shift) = (params[2][ch], params[0][ch], params[1][ch])
            for plane in stride(from: ch * inner, to: x.count, by: c * inner) {
                for i in plane..<(plane + inner) { y[i] = scale * (x[i] - mean) * inverse + shift }
            }
        }
        return .floats(xs, y)
    }

    /// LayerNormalization (ConvNeXt's norms): each group of the axes from `axis` on normalised
    /// by its own mean and variance, then scaled and shifted elementwise (Scale and B broadcast
    /// to those axes). Mean and InvStdDev, when asked for, have the input's shape with those
    /// axes set to 1. Statistics are summed in double: the stored outputs' float sums agree
    /// within rounding.
    static func layerNorm(_ n: NodeContext) throws -> [ONNXValue] {
        let (xs, x) = try n.floats(0)
        let rank = xs.count
        guard let axis = normalisedAxis(try n.int("axis", default: -1), rank: rank) else { throw n.error("axis for rank \(rank)") }
        let inner = xs[axis...].reduce(1, *), outer = xs[..<axis].reduce(1, *)
        let normShape = Array(xs[axis...])
        func broadcast(_ v: ONNXValue) throws -> [Float] {
            guard let shape = broadcastShape(v.shape, normShape), shape == normShape else {
                throw n.error("scale or bias of shape \(v.shape) does not broadcast to \(normShape)")
            }
            let values = v.floatValues
            return v.shape == normShape ? values : broadcastIndices(v.shape, to: normShape).map { values[$0] }
        }
        let scale = try broadcast(try n.input(1))
        let bias = try n.optionalInput(2).map(broadcast)
        let eps = Double(try n.float("epsilon", default: 1e-5))
        var y = x
        var means = [Float](repeating: 0, count: outer), inverses = [Float](repeating: 0, count: outer)
        guard inner > 0 else { return [.floats(xs, y)] }
        for o in 0..<outer {
            let base = o * inner
            var sum = 0.0
            for i in 0..<inner { sum += Double(x[base + i]) }
            let mean = sum / Double(inner)
            var squares = 0.0
            for i in 0..<inner { let d = Double(x[base + i]) - mean; squares += d * d }
            let inverse = 1 / (squares / Double(inner) + eps).squareRoot()
            for i in 0..<inner {
                let normalised = Float((Double(x[base + i]) - mean) * inverse)
                y[base + i] = normalised * scale[i] + (bias?[i] ?? 0)
            }
            (means[o], inverses[o]) = (Float(mean), Float(inverse))
        }
        let statsShape = Array(xs[..<axis]) + Array(repeating: 1, count: rank - axis)
        return [.floats(xs, y), .floats(statsShape, means), .floats(statsShape, inverses)]
    }

    /// BatchNormalization in training mode: `x` normalised by each channel's batch mean and
    /// biased variance; returns those means and the unbiased variances (what a running
    /// estimate averages).
    static func batchNormOnBatch(_ n: NodeContext) throws -> (ONNXValue, [Double], [Double]) {
        let (xs, x) = try n.floats(0)
        guard xs.count >= 2 else { throw n.error("input of rank \(xs.count)") }
        let c = xs[1]
        let (scale, shift) = (try n.input(1).floatValues, try n.input(2).floatValues)
        guard scale.count == c, shift.count == c else { throw n.error("parameters do not have \(c) values each") }
        let eps = Double(try n.float("epsilon", default: 1e-5))
        let inner = xs.dropFirst(2).reduce(1, *)
        let m = x.count / max(c, 1)
        guard m > 1 else { throw n.error("a batch of one value per channel has no variance; re-estimate on batches of two or more images") }
        var y = x
        var means = [Double](repeating: 0, count: c), variances = [Double](repeating: 0, count: c)
        for ch in 0..<c {
            var sum = 0.0
            for plane in stride(from: ch * inner, to: x.count, by: c * inner) { for i in plane..<(plane + inner) { sum += Double(x[i]) } }
            let mean = sum / Double(m)
            var squares = 0.0
            for plane in stride(from: ch * inner, to: x.count, by: c * inner) {
                for i in plane..<(plane + inner) { let d = Double(x[i]) - mean; squares += d * d }
            }
            let biased = squares / Double(m)
            (means[ch], variances[ch]) = (mean, squares / Double(m - 1))
            let (a, b) = (Float(Double(scale[ch]) / (biased + eps).squareRoot()), Float(mean))
            for plane in stride(from: ch * inner, to: x.count, by: c * inner) {
                for i in plane..<(plane + inner) { y[i] = a * (x[i] - b) + shift[ch] }
            }
        }
        return (.floats(xs, y), means, variances)
    }
}

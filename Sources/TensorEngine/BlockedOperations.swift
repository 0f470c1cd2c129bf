import CWinograd

// Operations of an imported graph's nodes on evaluation activations in either layout, so that a
// blocked activation need not be made plain between engine kernels: element-wise clamps and sums,
// max pooling (a vector kernel per channel block), global averages, and the spatial slices and
// channel padding of an option-A shortcut.

extension LayoutTensor {
    /// min(max(x, low), high) of every value, in a new activation of the same layout
    /// (element-wise operations do not care how channels are ordered). A padded activation whose
    /// zero channels the clamp would move is made plain first.
    public func clamped(_ low: Float, _ high: Float) -> LayoutTensor {
        if padded, !(low <= 0 && 0 <= high) { return LayoutTensor(plain: plain).clamped(low, high) }
        let y = Tensor.uninitialized(storage.shape)
        let (x, out) = (storage.data, y.data)
        for i in 0..<storage.count { out[i] = min(max(x[i], low), high) }
        return LayoutTensor(storage: y, shape: shape, blocked: blocked)
    }

    /// Clips every value at `high`, in place.
    func clampAbove(_ high: Float) {
        let x = storage.data
        for i in 0..<storage.count { x[i] = min(x[i], high) }
    }

    /// The element-wise sum of two activations of the same shape and layout.
    public func adding(_ other: LayoutTensor) -> LayoutTensor {
        precondition(other.shape == shape && other.blocked == blocked && other.storage.shape == storage.shape,
                     "adding \(other.shape) to \(shape)")
        let y = Tensor.uninitialized(storage.shape)
        let (a, b, out) = (storage.data, other.storage.data, y.data)
        for i in 0..<storage.count { out[i] = a[i] + b[i] }
        return LayoutTensor(storage: y, shape: shape, blocked: blocked)
    }

    init(storage: Tensor, shape: [Int], blocked: Bool) {
        self.storage = storage
        self.shape = shape
        self.blocked = blocked
    }
}

extension LayoutTensor {
    /// Max pooling of a blocked activation (dilation 1): windows of `kernel` at `strides`, the
    /// first `pads` (top, left) outside the image, `output` (height, width); nil when this is not
    /// a blocked activation the vector kernels take.
    public func maxPooled(kernel: [Int], strides: [Int], pads: [Int], output: [Int]) -> LayoutTensor? {
        guard blocked, !padded, shape.count == 4, kernel.count == 2, strides.count == 2, pads.count == 2, output.count == 2 else { return nil }
        let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        let y = LayoutTensor.uninitializedBlocked([n, c, output[0], output[1]])
        let (inSize, outSize) = (c * h * w, c * output[0] * output[1])
        let groups = evaluationGroups(n)
        let (xp, yp) = (storage.data, y.storage.data)
        guard kernel.allSatisfy({ $0 >= 1 }), strides.allSatisfy({ $0 >= 1 }), pads.allSatisfy({ $0 >= 0 }), output.allSatisfy({ $0 >= 1 }),
              c % BlockedLayout.block == 0 else { return nil }
        Parallel.forEach(groups.count) { g in
            let r = groups[g]
            let status = maxpool_blocked_forward(Int32(BlockedLayout.block), Int32(r.count), Int32(c), Int32(h), Int32(w),
                                                 Int32(kernel[0]), Int32(kernel[1]), Int32(strides[0]), Int32(strides[1]),
                                                 Int32(pads[0]), Int32(pads[1]), Int32(output[0]), Int32(output[1]),
                                                 xp + r.lowerBound * inSize, yp + r.lowerBound * outSize)
            precondition(status == 0, "blocked max pooling failed")
        }
        return y
    }
}

extension LayoutTensor {
    /// Each channel's mean over its h·w values, (n, c): a global average pooling. Each sum runs
    /// over the channel's values in index order, as a plain plane's does, so both layouts give
    /// the same bits.
    public func spatialMeans() -> Tensor {
        precondition(shape.count == 4, "spatial means of \(shape)")
        if padded { return LayoutTensor(plain: plain).spatialMeans() }
        let (n, c, pixels) = (shape[0], shape[1], shape[2] * shape[3])
        let y = Tensor.uninitialized([n, c])
        let (x, out) = (storage.data, y.data)
        if !blocked {
            for p in 0..<(n * c) { var sum: Float = 0; for i in 0..<pixels { sum += x[p * pixels + i] }; out[p] = sum / Float(max(pixels, 1)) }
            return y
        }
        let b = BlockedLayout.block
        // Images in parallel, each lane's sum in pixel order (the plain layout's order).
        Parallel.forEach(n) { i in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: b) { sums in
                for cb in 0..<(c / b) {
                    let block = x + (i * c + cb * b) * pixels
                    for l in 0..<b { sums[l] = 0 }
                    for p in 0..<pixels { for l in 0..<b { sums[l] += block[p * b + l] } }
                    for l in 0..<b { out[i * c + cb * b + l] = sums[l] / Float(max(pixels, 1)) }
                }
            }
        }
        return y
    }
}

extension LayoutTensor {
    /// Rows `begin.0 + i·step.0` (`count.0` of them) and columns `begin.1 + j·step.1` of every
    /// channel of a blocked activation: a Slice along height and width (an option-A shortcut's
    /// `x[:, :, ::2, ::2]`), blocked; nil when this is not blocked or a position falls outside.
    public func spatialSlice(begin: (Int, Int), step: (Int, Int), count: (Int, Int)) -> LayoutTensor? {
        guard blocked, !padded, shape.count == 4, count.0 > 0, count.1 > 0, step.0 != 0, step.1 != 0 else { return nil }
        let (n, c, h, w, b) = (shape[0], shape[1], shape[2], shape[3], BlockedLayout.block)
        let lastRow = begin.0 + (count.0 - 1) * step.0, lastColumn = begin.1 + (count.1 - 1) * step.1
        guard (0..<h).contains(begin.0), (0..<h).contains(lastRow), (0..<w).contains(begin.1), (0..<w).contains(lastColumn) else { return nil }
        let (ho, wo) = count
        let y = LayoutTensor.uninitializedBlocked([n, c, ho, wo])
        let (xp, yp) = (storage.data, y.storage.data)
        Parallel.forEach(n) { i in
            for cb in 0..<(c / b) {
                let src = xp + (i * c + cb * b) * h * w, dst = yp + (i * c + cb * b) * ho * wo
                for oy in 0..<ho {
                    let row = src + (begin.0 + oy * step.0) * w * b
                    if step.1 == 1 {
                        (dst + oy * wo * b).update(from: row + begin.1 * b, count: wo * b)
                    } else {
                        for ox in 0..<wo { copyLanes(to: dst + (oy * wo + ox) * b, from: row + (begin.1 + ox * step.1) * b, count: b) }
                    }
                }
            }
        }
        return y
    }

    /// A blocked activation with `before` channels of `value` ahead of its own and `after`
    /// behind (Pad along the channel axis, as an option-A shortcut pads with zeros); nil when
    /// this is not blocked or the new channel count does not fill whole blocks.
    public func channelsPadded(before: Int, after: Int, value: Float) -> LayoutTensor? {
        let b = BlockedLayout.block
        guard blocked, !padded, shape.count == 4, before >= 0, after >= 0, shape[1] % b == 0, (shape[1] + before + after) % b == 0 else { return nil }
        let (n, c, plane) = (shape[0], shape[1], shape[2] * shape[3])
        let co = c + before + after
        let y = LayoutTensor.uninitializedBlocked([n, co, shape[2], shape[3]])
        let (xp, yp) = (storage.data, y.storage.data)
        Parallel.forEach(n) { i in
            let out = yp + i * co * plane
            out.update(repeating: value, count: co * plane)
            // An input block's b channels land in at most two output blocks: two runs per position.
            for cb in 0..<(c / b) {
                let first = cb * b + before
                let (ob, lane) = (first / b, first % b)
                let source = xp + (i * c + cb * b) * plane
                let head = out + ob * b * plane + lane, tail = out + (ob + 1) * b * plane
                if lane == 0 {
                    head.update(from: source, count: plane * b)
                    continue
                }
                for p in 0..<plane {
                    copyLanes(to: head + p * b, from: source + p * b, count: b - lane)
                    copyLanes(to: tail + p * b, from: source + p * b + b - lane, count: lane)
                }
            }
        }
        return y
    }
}

/// Copies `count` floats, a block's lanes or a part of them: one vector move for 8 or 16 (a
/// call to memmove per 64 bytes cost more than the copy in option-A shortcuts).
@inline(__always)
private func copyLanes(to destination: UnsafeMutablePointer<Float>, from source: UnsafePointer<Float>, count: Int) {
    switch count {
    case 16: UnsafeMutableRawPointer(destination).storeBytes(of: UnsafeRawPointer(source).loadUnaligned(as: SIMD16<Float>.self), as: SIMD16<Float>.self)
    case 8: UnsafeMutableRawPointer(destination).storeBytes(of: UnsafeRawPointer(source).loadUnaligned(as: SIMD8<Float>.self), as: SIMD8<Float>.self)
    default: destination.update(from: source, count: count)
    }
}

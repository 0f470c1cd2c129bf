import CWinograd

/// A depthwise convolution (one filter per channel) for evaluation on blocked activations, with
/// its bias and a clamp (ReLU: [0, ∞), ReLU6: [0, 6]) in the same pass. Images run in the same
/// fixed groups as every evaluation kernel; an output depends on its own inputs alone, so the
/// bits do not depend on the thread count.
public final class BlockedDepthwise {
    public let channels, kernelHeight, kernelWidth: Int
    public let strides, pads, dilations: [Int]
    public let low, high: Float
    let weights: [Float]
    let bias: [Float]

    /// Nil when the blocked kernels cannot run it: channels that do not fill whole blocks, more
    /// than 64 taps, or no vector kernels on this CPU.
    public init?(channels: Int, kernel: [Int], strides: [Int], pads: [Int], dilations: [Int], weights: [Float], bias: [Float]?,
                 clamp: (low: Float, high: Float)) {
        let block = BlockedLayout.block
        guard block > 0, channels % block == 0, kernel.count == 2, kernel[0] * kernel[1] <= 64, kernel.allSatisfy({ $0 >= 1 }),
              strides.count == 2, pads.count == 2, dilations.count == 2, weights.count == channels * kernel[0] * kernel[1],
              winograd_available(Int32(block)) == 1 else { return nil }
        (self.channels, kernelHeight, kernelWidth) = (channels, kernel[0], kernel[1])
        (self.strides, self.pads, self.dilations) = (strides, pads, dilations)
        (low, high) = clamp
        self.weights = weights
        self.bias = bias ?? [Float](repeating: 0, count: channels)
    }

    /// The output's height and width for an input of `h` by `w`.
    public func outputSize(_ h: Int, _ w: Int) -> (Int, Int) {
        ((h + 2 * pads[0] - (kernelHeight - 1) * dilations[0] - 1) / strides[0] + 1,
         (w + 2 * pads[1] - (kernelWidth - 1) * dilations[1] - 1) / strides[1] + 1)
    }

    /// clamp(depthwise(x) + bias), blocked; `x` is blocked first when it is plain.
    public func forward(_ x: LayoutTensor) -> LayoutTensor {
        let source = x.blocked ? x : LayoutTensor.blocked(from: x.storage)
        let (n, h, w) = (x.shape[0], x.shape[2], x.shape[3])
        let (oh, ow) = outputSize(h, w)
        let y = LayoutTensor.uninitializedBlocked([n, channels, oh, ow])
        let (inSize, outSize) = (channels * h * w, channels * oh * ow)
        let groups = evaluationGroups(n)
        let (xp, yp) = (source.storage.data, y.storage.data)
        weights.withUnsafeBufferPointer { wp in
            bias.withUnsafeBufferPointer { bp in
                Parallel.forEach(groups.count) { g in
                    let r = groups[g]
                    let status = depthwise_blocked_forward(
                        Int32(BlockedLayout.block), Int32(r.count), Int32(channels), Int32(h), Int32(w), Int32(kernelHeight),
                        Int32(kernelWidth), Int32(strides[0]), Int32(strides[1]), Int32(pads[0]), Int32(pads[1]),
                        Int32(dilations[0]), Int32(dilations[1]), xp + r.lowerBound * inSize, wp.baseAddress!, bp.baseAddress!,
                        low, high, yp + r.lowerBound * outSize)
                    precondition(status == 0, "blocked depthwise convolution failed")
                }
            }
        }
        return y
    }
}

extension LayoutTensor {
    /// min(max(x, low), high) of every value, in a new activation of the same layout
    /// (element-wise operations do not care how channels are ordered).
    public func clamped(_ low: Float, _ high: Float) -> LayoutTensor {
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
        precondition(other.shape == shape && other.blocked == blocked, "adding \(other.shape) to \(shape)")
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
        guard blocked, shape.count == 4, kernel.count == 2, strides.count == 2, pads.count == 2, output.count == 2 else { return nil }
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
        let (n, c, pixels) = (shape[0], shape[1], shape[2] * shape[3])
        let y = Tensor.uninitialized([n, c])
        let (x, out) = (storage.data, y.data)
        if !blocked {
            for p in 0..<(n * c) { var sum: Float = 0; for i in 0..<pixels { sum += x[p * pixels + i] }; out[p] = sum / Float(max(pixels, 1)) }
            return y
        }
        let b = BlockedLayout.block
        var sums = [Float](repeating: 0, count: b)
        for i in 0..<n {
            for cb in 0..<(c / b) {
                let block = x + (i * c + cb * b) * pixels
                for l in 0..<b { sums[l] = 0 }
                for p in 0..<pixels { for l in 0..<b { sums[l] += block[p * b + l] } }
                for l in 0..<b { out[i * c + cb * b + l] = sums[l] / Float(max(pixels, 1)) }
            }
        }
        return y
    }
}

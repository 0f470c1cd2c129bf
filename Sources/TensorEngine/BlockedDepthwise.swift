import CWinograd

/// A depthwise convolution (one filter per channel) for evaluation on blocked activations, with
/// its bias and a clamp (ReLU: [0, ∞), ReLU6: [0, 6]) in the same pass. Images run in the same
/// fixed groups as every evaluation kernel; an output depends on its own inputs alone, so the
/// bits do not depend on the thread count.
public final class BlockedDepthwise {
    public let channels, kernelHeight, kernelWidth: Int
    public let strides, pads, dilations: [Int]
    public let low, high: Float
    /// The weights as the kernel reads them (`depthwise_blocked_pack`).
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
        var packed = [Float](repeating: 0, count: weights.count)
        depthwise_blocked_pack(Int32(block), Int32(channels), Int32(kernel[0] * kernel[1]), weights, &packed)
        self.weights = packed
        self.bias = bias ?? [Float](repeating: 0, count: channels)
    }

    /// The output's height and width for an input of `h` by `w`.
    public func outputSize(_ h: Int, _ w: Int) -> (Int, Int) {
        ((h + 2 * pads[0] - (kernelHeight - 1) * dilations[0] - 1) / strides[0] + 1,
         (w + 2 * pads[1] - (kernelWidth - 1) * dilations[1] - 1) / strides[1] + 1)
    }

    /// clamp(depthwise(x) + bias), blocked; `x` is blocked first when it is plain.
    public func forward(_ x: LayoutTensor) -> LayoutTensor {
        precondition(x.shape.count == 4 && x.shape[1] == channels && x.storage.count == x.shape.reduce(1, *),
                     "a depthwise convolution of \(channels) channels given \(x.shape)")
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

import CDNNL
import Foundation

/// A convolution for evaluation with the batch norm after it folded into its weights and bias,
/// and the ReLU (and a residual sum) done inside the same oneDNN call, reading and writing
/// blocked activations: one pass over memory where the training path makes four.
///
/// Folding: BN computes (conv(x) − μ)·s + β with s = γ / √(σ² + ε); the fused layer convolves
/// with w·s and adds β − μ·s (plus b·s for a conv bias). Built from the weights as they are
/// now, so build it after masking. Images run in the same fixed groups as training
/// (`imageGroups`), one single-threaded call each: results do not depend on the thread count.
public final class FusedConvolution {
    public let inChannels, outChannels, kernelSize, stride, padding: Int
    public let relu: Bool
    /// OIHW weights with the BN scale folded in, and the matching bias.
    public let weights: [Float]
    public let bias: [Float]
    /// Weights in each primitive's layout, by (chunk size, height, width), packed on first use.
    private var packed: [[Int]: Packed] = [:]

    /// Nil when evaluation cannot keep this layer's output blocked (the reference kernel is
    /// selected, or its channels do not fill whole blocks).
    public init?(_ conv: Conv2d, batchNorm: BatchNorm?, relu: Bool) {
        guard BlockedLayout.holds(channels: conv.outChannels) else { return nil }
        (inChannels, outChannels, kernelSize, stride, padding) =
            (conv.inChannels, conv.outChannels, conv.kernelSize, conv.stride, conv.padding)
        self.relu = relu
        let (scale, shift) = FusedConvolution.fold(batchNorm, channels: conv.outChannels)
        let perOutput = inChannels * kernelSize * kernelSize
        let w = conv.weight.value.data
        weights = (0..<(outChannels * perOutput)).map { w[$0] * scale[$0 / perOutput] }
        let convBias = conv.bias?.value.array ?? [Float](repeating: 0, count: outChannels)
        bias = (0..<outChannels).map { shift[$0] + convBias[$0] * scale[$0] }
    }

    /// The per-channel scale and shift an inference-mode batch norm applies (computed as
    /// `BatchNorm` computes them), or the identity.
    public static func fold(_ bn: BatchNorm?, channels: Int) -> (scale: [Float], shift: [Float]) {
        guard let bn else { return ([Float](repeating: 1, count: channels), [Float](repeating: 0, count: channels)) }
        let (g, b, rm, rv) = (bn.gamma.value.data, bn.beta.value.data, bn.runningMean.data, bn.runningVar.data)
        let scale = (0..<channels).map { g[$0] * (1 / (rv[$0] + bn.epsilon).squareRoot()) }
        return (scale, (0..<channels).map { b[$0] - rm[$0] * scale[$0] })
    }

    public func outputSize(_ size: Int) -> Int { (size + 2 * padding - kernelSize) / stride + 1 }

    /// relu?(conv(x)·s + shift [+ skip]), blocked. `skip` (the residual, blocked, of the output's
    /// shape) is added before the ReLU.
    public func forward(_ x: LayoutTensor, adding skip: LayoutTensor? = nil) -> LayoutTensor {
        let (n, h, w) = (x.shape[0], x.shape[2], x.shape[3])
        let outShape = [n, outChannels, outputSize(h), outputSize(w)]
        let y = LayoutTensor.uninitializedBlocked(outShape)
        if let skip {
            precondition(skip.blocked && skip.shape == outShape, "residual \(skip.shape) for an output of \(outShape)")
            y.storage.data.update(from: skip.storage.data, count: y.storage.count)
        }
        // A plain input of whole blocks is blocked first: oneDNN's plain-input kernels are for
        // the few channels of an image.
        let source = !x.blocked && BlockedLayout.holds(channels: inChannels) ? LayoutTensor.blocked(from: x.plain) : x
        let groups = imageGroups(n)
        var plans: [Int: Packed] = [:]
        for size in Set(groups.map(\.count)) {
            guard let plan = plan(batch: size, height: h, width: w, inputBlocked: source.blocked, sum: skip != nil) else {
                return fallback(x, adding: skip)
            }
            plans[size] = plan
        }
        let (xp, yp) = (source.storage.data, y.storage.data)
        let (inSize, outSize) = (inChannels * h * w, y.storage.count / max(n, 1))
        bias.withUnsafeBufferPointer { b in
            let bp = b.baseAddress!
            Parallel.forEach(groups.count) { g in
                let r = groups[g]
                let plan = plans[r.count]!
                let status = cdnnl_infer_forward(plan.primitive.handle, xp + r.lowerBound * inSize, plan.weights, bp,
                                                 yp + r.lowerBound * outSize)
                precondition(status == 0, "oneDNN inference convolution failed")
            }
        }
        return y
    }

    /// The primitive for one chunk shape with this layer's weights packed for it; nil when
    /// oneDNN has no fast kernel for it.
    private func plan(batch: Int, height: Int, width: Int, inputBlocked: Bool, sum: Bool) -> Packed? {
        let key = [batch, height, width, inputBlocked ? 1 : 0, sum ? 1 : 0]
        if let p = packed[key] { return p }
        guard let primitive = InferencePrimitive.shared(
            [batch, inChannels, height, width, outChannels, kernelSize, stride, padding, inputBlocked ? 1 : 0, relu ? 1 : 0, sum ? 1 : 0])
        else { return nil }
        let p = Packed(primitive: primitive, weights: weights)
        packed[key] = p
        return p
    }

    /// The same computation on the plain path, for a shape oneDNN has no fast kernel for.
    private func fallback(_ x: LayoutTensor, adding skip: LayoutTensor?) -> LayoutTensor {
        var rng = RandomSource(seed: 0)
        let conv = Conv2d(inChannels, outChannels, kernelSize: kernelSize, stride: stride, padding: padding, bias: true, rng: &rng)
        weights.withUnsafeBufferPointer { conv.weight.value.data.update(from: $0.baseAddress!, count: weights.count) }
        bias.withUnsafeBufferPointer { conv.bias!.value.data.update(from: $0.baseAddress!, count: bias.count) }
        let y = conv.forward(x.plain, training: false)
        if let skip {
            let s = skip.plain
            for i in 0..<y.count { y.data[i] += s.data[i] }
        }
        if relu { for i in 0..<y.count { y.data[i] = max(y.data[i], 0) } }
        return LayoutTensor.blocked(from: y)
    }

    /// One primitive's packed copy of the weights.
    private final class Packed {
        let primitive: InferencePrimitive
        let weights: UnsafeMutableRawPointer

        init(primitive: InferencePrimitive, weights source: [Float]) {
            self.primitive = primitive
            weights = .allocate(byteCount: max(cdnnl_infer_weights_bytes(primitive.handle), 64), alignment: 64)
            let status = source.withUnsafeBufferPointer { cdnnl_infer_pack_weights(primitive.handle, $0.baseAddress!, weights) }
            precondition(status == 0, "oneDNN weight packing failed")
        }

        deinit { weights.deallocate() }
    }
}

/// A oneDNN inference convolution for one shape, shared by every network the process evaluates
/// (creating one takes about a millisecond; a sweep evaluates thousands of masked networks).
final class InferencePrimitive: @unchecked Sendable {
    let handle: OpaquePointer

    private init(_ handle: OpaquePointer) { self.handle = handle }

    deinit { cdnnl_infer_destroy(handle) }

    nonisolated(unsafe) private static var cache: [[Int]: InferencePrimitive?] = [:]
    private static let lock = NSLock()

    /// The primitive for [batch, in, height, width, out, kernel, stride, padding, input blocked,
    /// relu, sum], created on first request; nil when oneDNN has no fast kernel for it.
    static func shared(_ key: [Int]) -> InferencePrimitive? {
        lock.lock()
        defer { lock.unlock() }
        if let known = cache[key] { return known }
        let k = key.map(Int32.init)
        let made = cdnnl_infer_create(k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7], k[8], k[9], k[10]).map(InferencePrimitive.init)
        cache[key] = made
        return made
    }
}

/// A fully connected layer for evaluation with the batch norm after it folded in and the ReLU
/// applied as each output row is written: one pass over the activations instead of three.
/// It runs `Linear`'s own kernel, whose fixed chunks make results independent of the thread count.
public final class FusedLinear {
    public let inFeatures, outFeatures: Int
    public let relu: Bool
    /// (out, in) weights with the BN scale folded in, and the matching bias.
    public let weights: [Float]
    public let bias: [Float]

    public init(_ linear: Linear, batchNorm: BatchNorm?, relu: Bool) {
        (inFeatures, outFeatures, self.relu) = (linear.inFeatures, linear.outFeatures, relu)
        let (scale, shift) = FusedConvolution.fold(batchNorm, channels: linear.outFeatures)
        let (w, fin) = (linear.weight.value.data, linear.inFeatures)
        weights = (0..<(outFeatures * fin)).map { w[$0] * scale[$0 / fin] }
        let ownBias = linear.bias?.value.array ?? [Float](repeating: 0, count: outFeatures)
        bias = (0..<outFeatures).map { shift[$0] + ownBias[$0] * scale[$0] }
    }

    // x: (N, in) -> y: (N, out)
    public func forward(_ x: Tensor) -> Tensor {
        precondition(x.count == x.shape[0] * inFeatures, "Linear expects (N, \(inFeatures)), got \(x.shape)")
        return weights.withUnsafeBufferPointer { w in
            bias.withUnsafeBufferPointer { b in
                Linear.affine(x, weights: w.baseAddress!, bias: b.baseAddress!, outFeatures: outFeatures, relu: relu)
            }
        }
    }
}

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
    /// The ReLU clips at 6 as well (ReLU6, MobileNets').
    public let relu6: Bool
    /// OIHW weights with the BN scale folded in, and the matching bias.
    public let weights: [Float]
    public let bias: [Float]
    /// Weights in each primitive's layout, by (chunk size, height, width), packed on first use.
    private var packed: [[Int]: Packed] = [:]
    /// The weights transformed for the Winograd kernels, when this layer runs on them.
    private lazy var winogradWeights: [Float]? =
        Winograd.applies(inChannels: inChannels, outChannels: outChannels, kernelSize: kernelSize, stride: stride, padding: padding)
        ? Winograd.transform(weights, inChannels: inChannels, outChannels: outChannels) : nil
    /// The kernel for output maps of a few positions (`SmallMapConvolution`), built on first use.
    private lazy var smallMaps = SmallMapConvolution(inChannels: inChannels, outChannels: outChannels, kernelSize: kernelSize, stride: stride,
                                                     padding: padding, weights: weights, bias: bias)
    /// Guards the lazily built state: depth-first evaluation runs image groups through the same
    /// layer on several threads at once (`InferencePlan.run`).
    private let lock = NSLock()

    /// Channels that do not fill whole blocks are kept blocked with a zero-padded last block
    /// (`BlockedLayout.pads`), in and out: an imported graph's.
    public let padsChannels: Bool

    /// Nil when evaluation cannot keep this layer's output blocked (the reference kernel is
    /// selected, or its channels do not fill whole blocks and `padsChannels` is false).
    public init?(_ conv: Conv2d, batchNorm: BatchNorm?, relu: Bool, relu6: Bool = false, padsChannels: Bool = false) {
        guard BlockedLayout.keeps(channels: conv.outChannels, padding: padsChannels) else { return nil }
        self.padsChannels = padsChannels
        (inChannels, outChannels, kernelSize, stride, padding) =
            (conv.inChannels, conv.outChannels, conv.kernelSize, conv.stride, conv.padding)
        (self.relu, self.relu6) = (relu || relu6, relu6)
        (weights, bias) = foldBatchNorm(batchNorm, into: conv.weight.value, bias: conv.bias?.value)
    }

    /// The per-channel scale and shift an inference-mode batch norm applies, or the identity.
    public static func fold(_ bn: BatchNorm?, channels: Int) -> (scale: [Float], shift: [Float]) {
        guard let bn else { return ([Float](repeating: 1, count: channels), [Float](repeating: 0, count: channels)) }
        let affine = bn.inferenceAffine
        return (affine.scale, affine.shift)
    }

    public func outputSize(_ size: Int) -> Int { (size + 2 * padding - kernelSize) / stride + 1 }

    /// relu?(conv(x)·s + shift [+ skip]), blocked. `skip` (the residual, blocked, of the output's
    /// shape) is added before the ReLU.
    /// `winograd: false` takes oneDNN's direct kernel where Winograd's would apply (its 4x4 tiles
    /// waste most of their work on maps smaller than 7x7). `relu` overrides the layer's own ReLU
    /// for this call (an imported graph's Relu after the residual Add, fused only when the Add is).
    /// `separateSum`: the residual is added to the convolution's rounded output, in the thread
    /// that made it, rather than inside oneDNN's call — the bits of a separate Add node (Winograd's
    /// kernel adds that way anyway).
    public func forward(_ x: LayoutTensor, adding skip: LayoutTensor? = nil, winograd: Bool = true, relu reluOverride: Bool? = nil,
                        separateSum: Bool = false) -> LayoutTensor {
        let relu = relu6 || (reluOverride ?? self.relu)
        let (n, h, w) = (x.shape[0], x.shape[2], x.shape[3])
        let outShape = [n, outChannels, outputSize(h), outputSize(w)]
        let y = LayoutTensor.uninitializedBlocked(outShape)
        if let skip {
            precondition(skip.blocked && skip.shape == outShape && skip.storage.shape == y.storage.shape,
                         "residual \(skip.shape) for an output of \(outShape)")
        }
        precondition(x.shape.count == 4 && x.shape[1] == inChannels, "a convolution of \(inChannels) channels given \(x.shape)")
        // A plain input of whole blocks is blocked first: oneDNN's plain-input kernels are for
        // the few channels of an image. A padded blocked input is read as such only by a layer
        // that pads (the primitive is made for it).
        let blocks = BlockedLayout.keeps(channels: inChannels, padding: padsChannels)
        let source = x.blocked == blocks ? x : blocks ? LayoutTensor.blocked(from: x.plain) : LayoutTensor(plain: x.plain)
        if source.blocked, SmallMapConvolution.applies(kernelSize: kernelSize, stride: stride, padding: padding, height: h, width: w) {
            let kernel = lock.withLock { smallMaps }
            return kernel.forward(source, adding: skip, low: relu ? 0 : -.infinity, high: relu6 ? 6 : .infinity)
        }
        let groups = evaluationGroups(n)
        if source.blocked, winograd, let u = lock.withLock({ winogradWeights }) {
            Winograd.forward(groups: groups, inChannels: inChannels, outChannels: outChannels, height: h, width: w,
                             source: source.storage.data, weights: u, bias: bias, skip: skip.map { UnsafePointer($0.storage.data) },
                             relu: relu, destination: y.storage.data)
            if relu6 { y.clampAbove(6) }
            return y
        }
        var plans: [Int: Packed] = [:]
        let addAfter = skip != nil && separateSum
        for size in Set(groups.map(\.count)) {
            guard let plan = lock.withLock({
                plan(batch: size, height: h, width: w, inputBlocked: source.blocked, sum: skip != nil && !addAfter, relu: relu && !addAfter)
            }) else {
                return lock.withLock { fallback(x, adding: skip, relu: relu) }
            }
            plans[size] = plan
        }
        let (xp, yp, sp) = (source.storage.data, y.storage.data, skip?.storage.data)
        let (inSize, outSize) = (source.storage.count / max(n, 1), y.storage.count / max(n, 1))
        bias.withUnsafeBufferPointer { b in
            let bp = b.baseAddress!
            Parallel.forEach(groups.count) { g in
                let r = groups[g]
                let plan = plans[r.count]!
                // The sum post-op adds to what the output holds: the group's residual, copied by
                // the thread that convolves it, just before (cache-warm, and not one serial pass).
                if let sp, !addAfter { (yp + r.lowerBound * outSize).update(from: sp + r.lowerBound * outSize, count: r.count * outSize) }
                let status = cdnnl_infer_forward(plan.primitive.handle, xp + r.lowerBound * inSize, plan.weights, bp,
                                                 yp + r.lowerBound * outSize)
                precondition(status == 0, "oneDNN inference convolution failed")
                if let sp, addAfter {
                    let (out, residual) = (yp + r.lowerBound * outSize, sp + r.lowerBound * outSize)
                    if relu {
                        for i in 0..<(r.count * outSize) { out[i] = max(out[i] + residual[i], 0) }
                    } else {
                        for i in 0..<(r.count * outSize) { out[i] += residual[i] }
                    }
                }
            }
        }
        return y
    }

    /// The primitive for one chunk shape with this layer's weights packed for it; nil when
    /// oneDNN has no fast kernel for it.
    private func plan(batch: Int, height: Int, width: Int, inputBlocked: Bool, sum: Bool, relu: Bool) -> Packed? {
        let key = [batch, height, width, inputBlocked ? 1 : 0, sum ? 1 : 0, relu ? 1 : 0]
        if let p = packed[key] { return p }
        guard let primitive = InferencePrimitive.shared(
            [batch, inChannels, height, width, outChannels, kernelSize, stride, padding, inputBlocked ? 1 : 0, relu6 ? 2 : relu ? 1 : 0, sum ? 1 : 0])
        else { return nil }
        // Image groups, whole batches and the last short batch use different primitives; most
        // take the weights in the same layout, and one packed copy then serves them all.
        let p: Packed
        if let same = packed.values.first(where: { cdnnl_infer_same_weights($0.primitive.handle, primitive.handle) != 0 }) {
            p = Packed(primitive: primitive, sharing: same)
        } else {
            p = Packed(primitive: primitive, weights: weights)
        }
        packed[key] = p
        return p
    }

    /// The folded layer as a plain convolution, built on the first batch that needs it and kept
    /// (its own kernels are then created once, not per batch).
    private lazy var plainConvolution: Conv2d = {
        var rng = RandomSource(seed: 0)
        let conv = Conv2d(inChannels, outChannels, kernelSize: kernelSize, stride: stride, padding: padding, bias: true, rng: &rng)
        conv.weight.value.assign(Tensor(shape: conv.weight.value.shape, values: weights))
        conv.bias!.value.assign(Tensor(shape: [outChannels], values: bias))
        return conv
    }()

    /// The same computation on the plain path, for a shape oneDNN has no fast kernel for.
    private func fallback(_ x: LayoutTensor, adding skip: LayoutTensor?, relu: Bool) -> LayoutTensor {
        let y = plainConvolution.forward(x.plain, training: false)
        if let skip {
            let s = skip.plain
            for i in 0..<y.count { y.data[i] += s.data[i] }
        }
        if relu { for i in 0..<y.count { y.data[i] = max(y.data[i], 0) } }
        if relu6 { for i in 0..<y.count { y.data[i] = min(y.data[i], 6) } }
        return LayoutTensor.blocked(from: y)
    }

    /// One primitive's packed copy of the weights.
    private final class Packed {
        let primitive: InferencePrimitive
        private let storage: PackedWeights
        var weights: UnsafeMutableRawPointer { storage.pointer }

        init(primitive: InferencePrimitive, weights source: [Float]) {
            self.primitive = primitive
            storage = PackedWeights(byteCount: max(cdnnl_infer_weights_bytes(primitive.handle), 64))
            let status = source.withUnsafeBufferPointer { cdnnl_infer_pack_weights(primitive.handle, $0.baseAddress!, storage.pointer) }
            precondition(status == 0, "oneDNN weight packing failed")
        }

        /// `primitive` on the packed weights of `other`, whose layout it takes.
        init(primitive: InferencePrimitive, sharing other: Packed) {
            (self.primitive, storage) = (primitive, other.storage)
        }
    }

    /// Weights packed for oneDNN, freed with the last primitive that reads them.
    private final class PackedWeights {
        let pointer: UnsafeMutableRawPointer
        init(byteCount: Int) { pointer = .allocate(byteCount: byteCount, alignment: 64) }
        deinit { pointer.deallocate() }
    }
}

/// `weights` (out, ...) and `bias` (out) with the inference-mode `bn` that follows them folded in:
/// each output's weights times its scale, and shift + bias·scale (`BatchNorm.inferenceAffine`).
func foldBatchNorm(_ bn: BatchNorm?, into weights: Tensor, bias: Tensor?) -> (weights: [Float], bias: [Float]) {
    let outputs = weights.shape[0]
    let (scale, shift) = FusedConvolution.fold(bn, channels: outputs)
    let (w, perOutput) = (weights.data, weights.count / max(outputs, 1))
    let own = bias?.array ?? [Float](repeating: 0, count: outputs)
    return ((0..<weights.count).map { w[$0] * scale[$0 / perOutput] }, (0..<outputs).map { shift[$0] + own[$0] * scale[$0] })
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
    /// activation (0 none, 1 ReLU, 2 ReLU6), sum], created on first request; nil when oneDNN has no fast kernel for it.
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
        (weights, bias) = foldBatchNorm(batchNorm, into: linear.weight.value, bias: linear.bias?.value)
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

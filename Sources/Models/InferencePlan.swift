import Foundation
import TensorEngine

/// A network compiled for evaluation: each batch norm folded into the convolution or linear
/// layer before it, ReLUs and residual sums done inside them, activations blocked from the first
/// convolution to the pool (`FusedConvolution`, `LayoutTensor`).
///
/// The plan is a list of steps, each covering consecutive top-level layers of the network
/// ("stem.conv", "stem.bn", "stem.relu" become one step; a residual block is one step). The
/// prefix cache keeps activations between steps. Layers the plan does not fuse run their own
/// inference-mode forward pass on the plain layout. Build the plan after masking: it copies the
/// weights as they are.
public final class InferencePlan {
    /// Consecutive top-level layers run as one.
    public struct Step {
        /// The top-level layers it covers (indices into the root `Sequential`).
        public let layers: Range<Int>
        /// Whether the step may run on one image group alone (`run(_:_:keeping:)`): its kernels
        /// treat images independently and are safe to call from several threads. Linear layers
        /// are not (BLAS's bits for a row depend on the rows around it in the call), nor are
        /// layers run by their own forward pass (they keep state for a backward pass).
        let perGroup: Bool
        let run: (LayoutTensor) -> LayoutTensor
    }

    public let steps: [Step]

    /// The plan of `network` as its weights are now; a network that is not a plain sequence
    /// becomes one step running its own forward pass.
    public init(_ network: Network) {
        guard let root = network.root as? Sequential else {
            steps = [Step(layers: 0..<1, perGroup: false) { LayoutTensor(tagged: network.forward($0.plain, training: false)) }]
            return
        }
        var steps: [Step] = []
        let layers = root.children.map(\.1)
        var i = 0
        while i < layers.count {
            let (step, width, perGroup) = InferencePlan.step(at: i, of: layers)
            steps.append(Step(layers: i..<(i + width), perGroup: perGroup, run: step))
            i += width
        }
        self.steps = steps
    }

    /// Logits for a batch of NCHW images.
    public func forward(_ x: Tensor) -> Tensor { run(0..<steps.count, LayoutTensor(plain: x)).plain }

    /// Runs `range` of the steps on `x`.
    public func run(_ range: Range<Int>, _ x: LayoutTensor) -> LayoutTensor {
        run(range, x, keeping: []).output
    }

    /// Runs `range` of the steps on `x`, and returns the inputs of the steps in `keeping` (after
    /// the first of the range) as well.
    ///
    /// Depth first where it can: through each run of consecutive `perGroup` steps, each fixed
    /// image group (`imageGroups`) goes through every step on one thread before the next group
    /// starts, so that its activations stay in that core's cache. Layer by layer over a whole
    /// batch, each activation went out to memory and back (a batch of 256 ResNet-20 28x28 images
    /// has 12.8 MB per stage-1 activation, for 2 MB of L2 per core). Inside a group the kernels
    /// take the group as their one image group, so every image meets the same kernel calls as
    /// layer by layer: the results are the same bits. Other steps run on the whole batch.
    public func run(_ range: Range<Int>, _ x: LayoutTensor, keeping: Set<Int>) -> (output: LayoutTensor, kept: [Int: LayoutTensor]) {
        var kept: [Int: LayoutTensor] = [:]
        var (h, s) = (x, range.lowerBound)
        while s < range.upperBound {
            var end = s + 1
            if steps[s].perGroup { while end < range.upperBound && steps[end].perGroup { end += 1 } }
            let marks = keeping.filter { $0 > s && $0 <= end }.union([end])
            let part = steps[s].perGroup ? depthFirst(s..<end, h, marks: marks) : [end: steps[s].run(h)]
            h = part[end]!
            for (k, activation) in part where keeping.contains(k) { kept[k] = activation }
            s = end
        }
        return (h, kept)
    }

    /// `range` (all `perGroup` steps) run image group by image group, with the inputs of the
    /// steps in `marks` (among them `range.upperBound`, the output) assembled for the whole batch.
    private func depthFirst(_ range: Range<Int>, _ x: LayoutTensor, marks: Set<Int>) -> [Int: LayoutTensor] {
        let n = x.shape[0]
        let groups = imageGroups(n)
        guard groups.count > 1, !Parallel.isSerial else {
            var out: [Int: LayoutTensor] = [:]
            _ = range.reduce(x) { h, s in
                let y = steps[s].run(h)
                if marks.contains(s + 1) { out[s + 1] = y }
                return y
            }
            return out
        }
        var full: [Int: LayoutTensor] = [:]
        let lock = NSLock()
        Parallel.forEach(groups.count) { g in
            let r = groups[g]
            Parallel.serially {
                var h = x.images(r)
                for s in range {
                    h = steps[s].run(h)
                    guard marks.contains(s + 1) else { continue }
                    lock.lock()
                    let target = full[s + 1] ?? LayoutTensor.uninitialized(images: n, like: h)
                    full[s + 1] = target
                    lock.unlock()
                    target.write(h, at: r.lowerBound)
                }
            }
        }
        return full
    }

    /// The step that holds top-level layer `layer`.
    public func step(holding layer: Int) -> Int {
        steps.firstIndex { $0.layers.contains(layer) } ?? steps.count
    }

    /// The step starting at top-level layer `i`, how many layers it covers, and whether it may
    /// run on one image group alone.
    private static func step(at i: Int, of layers: [Layer]) -> ((LayoutTensor) -> LayoutTensor, Int, Bool) {
        // A convolution or linear layer takes the batch norm and the ReLU that follow it.
        let at = { (k: Int) in layers.indices.contains(k) ? layers[k] : nil }
        let bn = at(i + 1) as? BatchNorm
        let relu = at(i + 1 + (bn == nil ? 0 : 1)) is ReLU
        let width = 1 + (bn == nil ? 0 : 1) + (relu ? 1 : 0)
        if let conv = layers[i] as? Conv2d, let fused = FusedConvolution(conv, batchNorm: bn, relu: relu) {
            return ({ fused.forward($0) }, width, true)
        }
        if let linear = layers[i] as? Linear {
            let fused = FusedLinear(linear, batchNorm: bn, relu: relu)
            return ({ LayoutTensor(plain: fused.forward($0.plain)) }, width, false)
        }
        if let block = layers[i] as? BasicBlock, let fused = FusedBlock(block) {
            return ({ fused.forward($0) }, 1, true)
        }
        if layers[i] is GlobalAvgPool {
            // Stateless on either layout: the plain case gets a pool of its own per call.
            return ({ $0.blocked ? LayoutTensor(plain: BlockedLayout.globalAveragePool($0))
                                 : LayoutTensor(plain: GlobalAvgPool().forward($0.plain, training: false)) }, 1, true)
        }
        return (plainStep(layers[i]), 1, false)
    }

    private static func plainStep(_ layer: Layer) -> (LayoutTensor) -> LayoutTensor {
        { LayoutTensor(tagged: layer.forward($0.plain, training: false)) }
    }
}

/// A residual block for evaluation: conv1 (+BN1, ReLU), then conv2 (+BN2) adding the shortcut
/// and applying the final ReLU in the same call.
private struct FusedBlock {
    let conv1, conv2: FusedConvolution
    let shortcut: (LayoutTensor) -> LayoutTensor?
    let branchEnabled: Bool

    init?(_ block: BasicBlock) {
        guard let conv1 = FusedConvolution(block.conv1, batchNorm: block.bn1, relu: true),
              let conv2 = FusedConvolution(block.conv2, batchNorm: block.bn2, relu: true),
              BlockedLayout.holds(channels: block.conv1.inChannels) else { return nil }
        (self.conv1, self.conv2, branchEnabled) = (conv1, conv2, block.branchEnabled)
        switch block.shortcut {
        case .none:
            shortcut = { _ in nil }
        case .identity:
            shortcut = { $0 }
        case let .padded(pad):
            shortcut = { BlockedLayout.paddedIdentity($0, outChannels: pad.outChannels, stride: pad.stride) }
        case let .projection(conv, bn):
            guard let projection = FusedConvolution(conv, batchNorm: bn, relu: false) else { return nil }
            shortcut = { projection.forward($0) }
        }
    }

    func forward(_ x: LayoutTensor) -> LayoutTensor {
        // A blocked step needs a blocked input; the plain path converts once (never in a ResNet,
        // whose stem already writes blocked activations).
        let input = x.blocked ? x : LayoutTensor.blocked(from: x.plain)
        let skip = shortcut(input)
        guard branchEnabled else {
            if let skip { return BlockedLayout.relu(skip) }
            let (h, w) = (conv1.outputSize(input.shape[2]), conv1.outputSize(input.shape[3]))
            return LayoutTensor.blocked(from: Tensor(shape: [input.shape[0], conv2.outChannels, h, w]))
        }
        return conv2.forward(conv1.forward(input), adding: skip)
    }
}

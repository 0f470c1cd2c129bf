import Foundation
import TensorEngine

/// A Conv node on the engine's kernels instead of the reference im2col: a dense convolution
/// (oneDNN, Winograd) or a depthwise one (the blocked depthwise kernel). Outputs stay in the
/// engine's channel-blocked layout when their channels fill its blocks.
enum EngineKernel {
    case dense(EngineConvolution)
    case depthwise(BlockedDepthwise)

    /// Nil when the node is not of a shape the engine's kernels take. `clamp`: the Relu or Clip
    /// that alone reads the node's output, done inside the kernel when it can.
    init?(_ node: ONNXNode, constants: [String: ONNXValue], clamp: Clamp?) {
        if let depthwise = EngineKernel.depthwise(node, constants: constants, clamp: clamp) {
            self = .depthwise(depthwise)
        } else if let dense = EngineConvolution(node, constants: constants, relu: clamp == Clamp.relu, relu6: clamp == Clamp.relu6) {
            self = .dense(dense)
        } else {
            return nil
        }
    }

    /// Whether the kernel runs on the engine's fused paths (dense oneDNN/Winograd or the blocked
    /// depthwise kernel), which give each image the same bits in any image group.
    var runsFused: Bool {
        switch self {
        case let .dense(conv): return conv.hasFusedKernel
        case .depthwise: return true
        }
    }

    /// Whether the kernel applied the node's clamp (its Relu/Clip node then passes values on).
    var clamps: Bool {
        switch self {
        case let .dense(conv): return conv.relu || conv.relu6
        case let .depthwise(dw): return dw.low != -.infinity || dw.high != .infinity
        }
    }

    /// Whether `shape` is an image batch of this convolution's channels that its kernel takes
    /// (anything else goes to the reference kernel, which says what is wrong).
    func accepts(_ shape: [Int]) -> Bool {
        switch self {
        case let .dense(conv): return conv.accepts(shape)
        case let .depthwise(dw):
            guard shape.count == 4, shape[0] > 0, shape[1] == dw.channels else { return false }
            let (oh, ow) = dw.outputSize(shape[2], shape[3])
            return oh >= 1 && ow >= 1
        }
    }

    func forward(_ x: LayoutTensor) -> LayoutTensor {
        switch self {
        case let .dense(conv): return conv.forward(x)
        case let .depthwise(dw): return dw.forward(x)
        }
    }

    /// relu?(conv(x) + skip) in one pass, when the kernel can add a residual (a dense blocked
    /// convolution and a blocked skip of its output's shape); nil otherwise.
    func forward(_ x: LayoutTensor, adding skip: LayoutTensor, relu: Bool) -> LayoutTensor? {
        guard case let .dense(conv) = self else { return nil }
        return conv.forward(x, adding: skip, relu: relu)
    }

    /// A depthwise Conv (group = input channels = output channels, one filter each, 2-D, pads
    /// equal at both ends of each axis) whose channels fill the engine's blocks.
    static func depthwise(_ node: ONNXNode, constants: [String: ONNXValue], clamp: Clamp?) -> BlockedDepthwise? {
        guard node.opType == "Conv", node.inputs.count >= 2, case let .floats(ws, w)? = constants[node.inputs[1]], ws.count == 4,
              ws[1] == 1, case let .int(group)? = node.attributes["group"], group == ws[0], group > 1 else { return nil }
        func ints(_ name: String) -> [Int64]? { if case let .ints(v)? = node.attributes[name] { return v } else { return nil } }
        let autoPad = { if case let .string(s)? = node.attributes["auto_pad"] { return s } else { return "NOTSET" } }()
        let strides = ints("strides") ?? [1, 1], pads = ints("pads") ?? [0, 0, 0, 0], dilations = ints("dilations") ?? [1, 1]
        let kernel = ints("kernel_shape").map { $0.map(Int.init) } ?? [ws[2], ws[3]]
        guard autoPad == "NOTSET", strides.count == 2, pads.count == 4, dilations.count == 2, kernel == [ws[2], ws[3]],
              pads[0] == pads[2], pads[1] == pads[3], (strides + dilations).allSatisfy({ (1...64).contains($0) }),
              pads.allSatisfy({ (0...64).contains($0) }) else { return nil }
        var bias: [Float]?
        if node.inputs.count > 2, !node.inputs[2].isEmpty {
            guard case let .floats(bs, b)? = constants[node.inputs[2]], bs == [ws[0]] else { return nil }
            bias = b
        }
        return BlockedDepthwise(channels: ws[0], kernel: kernel, strides: strides.map(Int.init), pads: [Int(pads[0]), Int(pads[1])],
                                dilations: dilations.map(Int.init), weights: w, bias: bias,
                                clamp: (clamp?.low ?? -.infinity, clamp?.high ?? .infinity))
    }
}

extension Clamp {
    static let relu = Clamp(low: 0, high: .infinity)
    static let relu6 = Clamp(low: 0, high: 6)
}

/// A dense Conv node on the engine's own convolution kernels (oneDNN, Winograd for 3x3 stride-1
/// layers on maps of 7x7 and more): a square kernel, equal strides, symmetric pads, no
/// dilation, one group, weights and bias constants of the graph. The bias, and a ReLU that only
/// this node's output feeds, run inside the same call when the output channels fill the engine's
/// channel blocks. Values are the engine's (fixed image groups: independent of the thread count),
/// within float rounding of the reference kernel's.
final class EngineConvolution {
    /// The plain convolution, kept only when there is no fused one (which holds its own
    /// weights: a second copy would only take memory).
    private let plain: Conv2d?
    private let fused: FusedConvolution?
    private let inChannels, kernelSize, padding: Int
    let relu, relu6: Bool

    /// Nil when the node is not of the shape the engine's kernels take.
    init?(_ node: ONNXNode, constants: [String: ONNXValue], relu: Bool, relu6: Bool = false) {
        guard node.opType == "Conv", node.inputs.count >= 2, case let .floats(ws, w)? = constants[node.inputs[1]], ws.count == 4,
              ws[2] == ws[3] else { return nil }
        func ints(_ name: String) -> [Int64]? { if case let .ints(v)? = node.attributes[name] { return v } else { return nil } }
        let group = { if case let .int(g)? = node.attributes["group"] { return g } else { return 1 } }()
        let strides = ints("strides") ?? [1, 1], pads = ints("pads") ?? [0, 0, 0, 0], dilations = ints("dilations") ?? [1, 1]
        let autoPad = { if case let .string(s)? = node.attributes["auto_pad"] { return s } else { return "NOTSET" } }()
        guard group == 1, autoPad == "NOTSET", strides.count == 2, strides[0] == strides[1], (1...8).contains(strides[0]),
              pads.count == 4, Set(pads).count == 1, (0...16).contains(pads[0]), dilations == [1, 1] else { return nil }
        let bias: [Float]?
        if node.inputs.count > 2, !node.inputs[2].isEmpty {
            guard case let .floats(bs, b)? = constants[node.inputs[2]], bs == [ws[0]] else { return nil }
            bias = b
        } else {
            bias = nil
        }
        var rng = RandomSource(seed: 0)
        let conv = Conv2d(ws[1], ws[0], kernelSize: ws[2], stride: Int(strides[0]), padding: Int(pads[0]), bias: true, rng: &rng)
        conv.weight.value.assign(Tensor(shape: ws, values: w))
        conv.bias!.value.assign(Tensor(shape: [ws[0]], values: bias ?? [Float](repeating: 0, count: ws[0])))
        // Channels that do not fill the engine's blocks are padded to whole blocks (24 to 32 in
        // blocks of 16); fewer than a block take oneDNN's plain-layout path, slower than the
        // reference im2col for 1x1 kernels (measured on the MobileNetV2 test export).
        fused = FusedConvolution(conv, batchNorm: nil, relu: relu, relu6: relu6, padsChannels: true)
        if fused == nil, ws[2] == 1 { return nil }
        plain = fused == nil ? conv : nil
        (inChannels, kernelSize, padding) = (ws[1], ws[2], Int(pads[0]))
        (self.relu, self.relu6) = (relu, relu6)
    }

    var hasFusedKernel: Bool { fused != nil }

    /// Whether `shape` is a float image batch of this convolution's channels, large enough for
    /// its kernel.
    func accepts(_ shape: [Int]) -> Bool {
        guard shape.count == 4, shape[1] == inChannels, shape[0] > 0 else { return false }
        return shape[2] + 2 * padding >= kernelSize && shape[3] + 2 * padding >= kernelSize
    }

    // x: (N, C, H, W) -> y: (N, K, H', W'), blocked when the channels fill the engine's blocks
    func forward(_ x: LayoutTensor) -> LayoutTensor {
        if let fused {
            // Winograd's 4x4 output tiles waste most of their work on maps smaller than 7x7 (a
            // ResNet's last stages at 28x28 inputs): those take oneDNN's direct kernel.
            return fused.forward(x, winograd: min(x.shape[2], x.shape[3]) >= 7)
        }
        guard let plain else { preconditionFailure("an engine convolution without a kernel") }
        return plainForward(plain, x)
    }

    /// relu?(conv(x) + skip) with the sum and ReLU inside the fused kernel; nil without one or
    /// when `skip` is not blocked in the output's shape.
    func forward(_ x: LayoutTensor, adding skip: LayoutTensor, relu: Bool) -> LayoutTensor? {
        guard let fused, !relu6, skip.blocked else { return nil }
        let (h, w) = (fused.outputSize(x.shape[2]), fused.outputSize(x.shape[3]))
        guard skip.shape == [x.shape[0], fused.outChannels, h, w] else { return nil }
        return fused.forward(x, adding: skip, winograd: min(x.shape[2], x.shape[3]) >= 7, relu: relu || self.relu,
                             separateSum: true)
    }

    /// The plain convolution keeps per-call state (its input, its primitives): one call at a
    /// time, as image groups of a depth-first run reach it from several threads.
    private let plainLock = NSLock()

    private func plainForward(_ plain: Conv2d, _ x: LayoutTensor) -> LayoutTensor {
        plainLock.lock()
        defer { plainLock.unlock() }
        let y = plain.forward(x.plain, training: false)
        if relu || relu6 { for i in 0..<y.count { y.data[i] = max(y.data[i], 0) } }
        if relu6 { for i in 0..<y.count { y.data[i] = min(y.data[i], 6) } }
        return LayoutTensor(plain: y)
    }
}

import Foundation
import TensorEngine

/// A Conv node run on the engine's own convolution kernels (oneDNN, Winograd for 3x3 stride-1
/// layers) instead of the reference im2col: a square kernel, equal strides, symmetric pads, no
/// dilation, one group, weights and bias constants of the graph. The bias, and a ReLU that only
/// this node's output feeds, run inside the same call when the output channels fill the engine's
/// channel blocks. Values are the engine's (fixed image groups: independent of the thread count),
/// within float rounding of the reference kernel's.
final class EngineConvolution {
    private let conv: Conv2d
    private let fused: FusedConvolution?
    let relu: Bool

    /// Nil when the node is not of the shape the engine's kernels take.
    init?(_ node: ONNXNode, constants: [String: ONNXValue], relu: Bool) {
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
        conv = Conv2d(ws[1], ws[0], kernelSize: ws[2], stride: Int(strides[0]), padding: Int(pads[0]), bias: true, rng: &rng)
        conv.weight.value.assign(Tensor(shape: ws, values: w))
        conv.bias!.value.assign(Tensor(shape: [ws[0]], values: bias ?? [Float](repeating: 0, count: ws[0])))
        // Channels that do not fill the engine's blocks take oneDNN's plain-layout path, slower
        // than the reference im2col for 1x1 kernels (measured on the MobileNetV2 test export).
        fused = FusedConvolution(conv, batchNorm: nil, relu: relu)
        if fused == nil, ws[2] == 1 { return nil }
        self.relu = relu
    }

    /// Whether `x` is a float image batch of this convolution's channels, large enough for its
    /// kernel (anything else goes to the reference kernel, which says what is wrong).
    func accepts(_ x: ONNXValue) -> Bool {
        guard case let .floats(shape, _) = x, shape.count == 4, shape[1] == conv.inChannels, shape[0] > 0 else { return false }
        return shape[2] + 2 * conv.padding >= conv.kernelSize && shape[3] + 2 * conv.padding >= conv.kernelSize
    }

    // x: (N, C, H, W) -> y: (N, K, H', W')
    func forward(_ x: ONNXValue) -> ONNXValue {
        let input = Tensor(shape: x.shape, values: x.floatValues)
        let y: Tensor
        // Winograd's 4x4 output tiles waste most of their work on maps smaller than 7x7 (a
        // ResNet's last stages at 28x28 inputs): those take oneDNN's direct kernel.
        if let fused, min(x.shape[2], x.shape[3]) >= 7 || fused.kernelSize != 3 {
            y = fused.forward(LayoutTensor(plain: input)).plain
        } else {
            y = conv.forward(input, training: false)
            if relu { for i in 0..<y.count { y.data[i] = max(y.data[i], 0) } }
        }
        return .floats(y.shape, y.array)
    }
}

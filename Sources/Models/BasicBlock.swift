import TensorEngine

/// The identity path of a residual block.
public enum ShortcutKind {
    /// No shortcut (plain nets).
    case none
    case identity
    /// Option A: subsample and zero-pad channels.
    case padded(PaddedIdentity)
    /// Option B: 1x1 convolution with stride, then BN.
    case projection(Conv2d, BatchNorm)
}

/// A CIFAR ResNet basic block: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)).
///
/// `branchEnabled = false` is the zeroBranch mask: the residual branch contributes exactly zero
/// and is not computed, leaving relu(shortcut(x)).
public final class BasicBlock: Layer {
    public let conv1: Conv2d
    public let bn1: BatchNorm
    public let conv2: Conv2d
    public let bn2: BatchNorm
    public let shortcut: ShortcutKind
    public var branchEnabled = true
    /// The final ReLU of a block whose branch is disabled (an enabled branch's ReLUs run fused
    /// into its batch norms).
    private let relu2 = ReLU()
    private var inputShape: [Int] = []
    private var inputBlocked = false

    public init(_ inChannels: Int, _ outChannels: Int, stride: Int, residual: Bool, projection: Bool,
                rng: inout RandomSource) {
        conv1 = Conv2d(inChannels, outChannels, kernelSize: 3, stride: stride, padding: 1, rng: &rng)
        bn1 = BatchNorm(outChannels)
        conv2 = Conv2d(outChannels, outChannels, kernelSize: 3, padding: 1, rng: &rng)
        bn2 = BatchNorm(outChannels)
        if !residual {
            shortcut = .none
        } else if stride == 1 && inChannels == outChannels {
            shortcut = .identity
        } else if projection {
            shortcut = .projection(Conv2d(inChannels, outChannels, kernelSize: 1, stride: stride, rng: &rng),
                                   BatchNorm(outChannels))
        } else {
            shortcut = .padded(PaddedIdentity(inChannels, outChannels, stride: stride))
        }
    }

    public var children: [(String, Layer)] {
        var out: [(String, Layer)] = [("conv1", conv1), ("bn1", bn1), ("conv2", conv2), ("bn2", bn2)]
        if case let .projection(conv, bn) = shortcut { out += [("shortcut.conv", conv), ("shortcut.bn", bn)] }
        return out
    }

    /// True when the block changes resolution or width (a stage transition).
    public var isTransition: Bool { conv1.stride != 1 || conv1.inChannels != conv1.outChannels }

    // x: (N, C, H, W) -> y: (N, C', H/s, W/s)
    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        inputShape = x.shape
        inputBlocked = x.blocked
        let skip: Tensor?
        switch shortcut {
        case .none: skip = nil
        case .identity: skip = x
        case let .padded(pad): skip = pad.forward(x, training: training)
        case let .projection(conv, bn): skip = bn.forward(conv.forward(x, training: training), training: training)
        }
        guard branchEnabled else {
            let outHeight = conv1.outputSize(x.shape[2]), outWidth = conv1.outputSize(x.shape[3])
            return relu2.forward(skip ?? Tensor(shape: [x.shape[0], conv2.outChannels, outHeight, outWidth]), training: training)
        }
        // Both ReLUs, and the residual sum, happen inside the batch norms' output passes.
        let h = bn1.forward(conv1.forward(x, training: training), training: training, adding: nil, relu: true)
        return bn2.forward(conv2.forward(h, training: training), training: training, adding: skip, relu: true)
    }

    // dy: (N, C', H', W') -> dx: (N, C, H, W), the sum of the branch's and the shortcut's gradients
    public func backward(_ dy: Tensor) -> Tensor {
        var dh: Tensor?
        let dsum: Tensor
        if branchEnabled {
            (dh, dsum) = bn2.backwardJoined(dy)
        } else {
            dsum = relu2.backward(dy)
        }
        let dskip: Tensor?
        switch shortcut {
        case .none: dskip = nil
        case .identity: dskip = dsum
        case let .padded(pad): dskip = pad.backward(dsum)
        case let .projection(conv, bn): dskip = conv.backward(bn.backward(dsum))
        }
        // The branch's input gradient with the shortcut's added in conv1's last pass.
        if let dh { return conv1.backward(bn1.backward(conv2.backward(dh)), adding: dskip) }
        return dskip ?? Tensor.zeros(inputShape, blocked: inputBlocked)
    }
}

import TensorEngine

/// What kind of maskable unit a name refers to.
public enum UnitKind: String, Codable, Sendable {
    /// One convolution layer (its kernel, and bias if any).
    case conv
    /// One residual block's branch (both convolutions and BNs); the shortcut stays.
    case branch
    /// One fully connected layer.
    case linear
}

/// A unit the sweep's `layer` axis can mask, with a stable dotted name.
public struct MaskableUnit: Equatable, Sendable {
    public let name: String
    public let kind: UnitKind
    /// Dotted names of the parameters the unit owns (e.g. `stage2.block1.conv2.weight`).
    public let parameterNames: [String]
    public let parameterCount: Int
    /// The stage the unit belongs to ("stem", "stage2", "head", ...), for grouping in reports.
    public let group: String
    /// True when the unit sits at a stage transition (resolution or width changes).
    public let isTransition: Bool

    /// A unit of a network that is not built here (an imported graph's): no parameters by our names.
    public init(name: String, kind: UnitKind, parameterCount: Int, group: String = "", isTransition: Bool = false) {
        self.init(name: name, kind: kind, parameterNames: [], parameterCount: parameterCount, group: group, isTransition: isTransition)
    }

    init(name: String, kind: UnitKind, parameterNames: [String], parameterCount: Int, group: String, isTransition: Bool) {
        self.name = name
        self.kind = kind
        self.parameterNames = parameterNames
        self.parameterCount = parameterCount
        self.group = group
        self.isTransition = isTransition
    }
}

/// A built network: its layers, named parameters, buffers and maskable units.
public final class Network {
    public let spec: ModelSpec
    public let root: Layer
    public let units: [MaskableUnit]
    /// All parameters and buffers by dotted name, in a stable order.
    public let parameters: [(String, Parameter)]
    public let buffers: [(String, Tensor)]
    private let layersByName: [String: Layer]

    init(spec: ModelSpec, root: Layer, units: [(name: String, kind: UnitKind, group: String, transition: Bool)]) {
        self.spec = spec
        self.root = root
        // Nothing reads the gradient of the images: the first layer with weights skips it.
        for (_, layer) in (root as? Sequential)?.children ?? [] {
            if let conv = layer as? Conv2d { conv.computesInputGradient = false }
            if let linear = layer as? Linear { linear.computesInputGradient = false }
            if !(layer is Flatten) { break }
        }
        parameters = root.namedParameters()
        buffers = root.namedBuffers()
        layersByName = Dictionary(root.namedLayers().map { ($0.0, $0.1) }, uniquingKeysWith: { a, _ in a })
        let byName = Dictionary(parameters.map { ($0.0, $0.1) }, uniquingKeysWith: { a, _ in a })
        self.units = units.map { u in
            let prefix = u.name + "."
            let names: [String]
            switch u.kind {
            case .branch:
                names = byName.keys.filter { $0.hasPrefix(prefix) && !$0.hasPrefix(prefix + "shortcut.") }.sorted()
            case .conv, .linear:
                names = ["weight", "bias"].map { prefix + $0 }.filter { byName[$0] != nil }
            }
            let count = names.reduce(0) { $0 + (byName[$1]?.value.count ?? 0) }
            return MaskableUnit(name: u.name, kind: u.kind, parameterNames: names, parameterCount: count,
                        group: u.group, isTransition: u.transition)
        }
    }

    // x: (N, C, H, W) -> logits: (N, classes)
    public func forward(_ x: Tensor, training: Bool) -> Tensor { root.forward(x, training: training) }

    /// Back-propagates the logits' gradient, accumulating every parameter's gradient.
    public func backward(_ dlogits: Tensor) { _ = root.backward(dlogits) }

    public var parameterCount: Int { parameters.reduce(0) { $0 + $1.1.value.count } }

    public func parameter(_ name: String) -> Parameter? { parameters.first { $0.0 == name }?.1 }

    public func unit(_ name: String) -> MaskableUnit? { units.first { $0.name == name } }

    /// The layer at a dotted path (e.g. `stage2.block1` or `stage2.block1.bn2`).
    public func layer(_ name: String) -> Layer? { layersByName[name] }

    /// Every BatchNorm layer with its name.
    public var batchNorms: [(String, BatchNorm)] {
        root.namedLayers().compactMap { name, layer in (layer as? BatchNorm).map { (name, $0) } }
    }

    /// Multiply-adds of one forward pass of one image (convolutions and linear layers), found by
    /// running one zero image through the network.
    public func multiplyAddsPerImage() -> Int { multiplyAddsPerTopLevelLayer().reduce(0, +) }

    /// The same, per top-level layer of a plain sequence (one entry for any other network).
    public func multiplyAddsPerTopLevelLayer() -> [Int] {
        _ = forward(Tensor(shape: [1] + spec.inputShape), training: false)
        let tops = (root as? Sequential)?.children.map(\.1) ?? [root]
        return tops.map { top in
            top.namedLayers().reduce(0) { total, entry in
                if let conv = entry.1 as? Conv2d, let shape = conv.lastInputShape {
                    return total + conv.outChannels * conv.inChannels * conv.kernelSize * conv.kernelSize
                        * conv.outputSize(shape[2]) * conv.outputSize(shape[3])
                } else if let fc = entry.1 as? Linear {
                    return total + fc.inFeatures * fc.outFeatures
                }
                return total
            }
        }
    }

    /// The share of a forward pass's multiply-adds from the top-level layer holding `unit` to
    /// the end: what evaluating a change to `unit` costs when the layers before it are reused.
    public func suffixShare(of unit: String, perLayer: [Int]) -> Double {
        guard let start = topLevelIndex(of: unit) else { return 1 }
        let total = perLayer.reduce(0, +)
        return total == 0 ? 1 : Double(perLayer[start...].reduce(0, +)) / Double(total)
    }

    /// The index of the top-level layer of a plain sequence that holds `unit` (a dotted name such
    /// as `stage2.block1.conv1`); nil for other networks or unknown names.
    public func topLevelIndex(of unit: String) -> Int? {
        (root as? Sequential)?.children.firstIndex { unit == $0.0 || unit.hasPrefix($0.0 + ".") }
    }

    /// Parameters and buffers together, as stored in a checkpoint.
    public var stateTensors: [(String, Tensor)] { parameters.map { ($0.0, $0.1.value) } + buffers }
}

extension Network {
    /// Builds the network `spec` describes, with weights drawn from `seed`.
    public static func build(_ spec: ModelSpec, seed: UInt64) -> Network {
        var rng = RandomSource(seed: seed, stream: "init")
        switch spec.architecture {
        case let .resnet(depth, residual, projection):
            return buildResNet(spec, depth: depth, residual: residual, projection: projection, rng: &rng)
        case let .fcn(hidden, batchNorm):
            return buildFCN(spec, hidden: hidden, batchNorm: batchNorm, rng: &rng)
        case let .student(convLayers, width):
            return buildStudent(spec, convLayers: convLayers, width: width, rng: &rng)
        }
    }

    static func buildResNet(_ spec: ModelSpec, depth: Int, residual: Bool, projection: Bool,
                            rng: inout RandomSource) -> Network {
        let blocks = (depth - 2) / 6
        let widths = [16, 32, 64]
        var layers: [(String, Layer)] = [
            ("stem.conv", Conv2d(spec.inputShape[0], widths[0], kernelSize: 3, padding: 1, rng: &rng)),
            ("stem.bn", BatchNorm(widths[0])),
            ("stem.relu", ReLU()),
        ]
        var units: [(name: String, kind: UnitKind, group: String, transition: Bool)] = [
            ("stem.conv", .conv, "stem", true),
        ]
        var channels = widths[0]
        for (s, width) in widths.enumerated() {
            for b in 0..<blocks {
                let stride = (s > 0 && b == 0) ? 2 : 1
                let block = BasicBlock(channels, width, stride: stride, residual: residual,
                                       projection: projection, rng: &rng)
                let name = "stage\(s + 1).block\(b + 1)"
                let group = "stage\(s + 1)"
                let transition = block.isTransition
                layers.append((name, block))
                units.append((name, .branch, group, transition))
                units.append(("\(name).conv1", .conv, group, transition))
                units.append(("\(name).conv2", .conv, group, false))
                if case .projection = block.shortcut { units.append(("\(name).shortcut.conv", .conv, group, true)) }
                channels = width
            }
        }
        layers += [("pool", GlobalAvgPool()), ("fc", Linear(channels, spec.classes, rng: &rng))]
        units.append(("fc", .linear, "head", false))
        // Everything between the stem and the pool takes blocked activations: keep them blocked.
        let root = Sequential(layers)
        for case let (_, conv as Conv2d) in root.namedLayers() { conv.emitsBlocked = true }
        return Network(spec: spec, root: root, units: units)
    }

    static func buildFCN(_ spec: ModelSpec, hidden: [Int], batchNorm: Bool, rng: inout RandomSource) -> Network {
        var layers: [(String, Layer)] = [("flatten", Flatten())]
        var units: [(name: String, kind: UnitKind, group: String, transition: Bool)] = []
        var features = spec.inputShape.reduce(1, *)
        for (i, width) in hidden.enumerated() {
            let name = "fc\(i + 1)"
            layers.append((name, Linear(features, width, bias: !batchNorm, rng: &rng)))
            if batchNorm { layers.append(("bn\(i + 1)", BatchNorm(width))) }
            layers.append(("relu\(i + 1)", ReLU()))
            units.append((name, .linear, "hidden", false))
            features = width
        }
        layers.append(("readout", Linear(features, spec.classes, rng: &rng)))
        units.append(("readout", .linear, "head", false))
        return Network(spec: spec, root: Sequential(layers), units: units)
    }

    /// The shape of a student: conv widths 32, 32, 64, 64 (times `width`), a 2x2 max-pool after
    /// every second conv and after an odd last one, then a hidden layer of 256·width units.
    /// Shared by `buildStudent` and `studentParameterCount` so the two cannot disagree.
    struct StudentLayout {
        var convs: [(inChannels: Int, outChannels: Int, pool: Bool)] = []
        var flatFeatures = 0
        var hidden = 0

        init(convLayers: Int, width: Double, inputShape: [Int]) {
            let scaled = { (n: Int) in max(1, Int((Double(n) * width).rounded())) }
            var (channels, height, widthPx) = (inputShape[0], inputShape[1], inputShape[2])
            for i in 1...max(convLayers, 1) where convLayers > 0 {
                let out = scaled([32, 32, 64, 64][i - 1])
                let pool = (i % 2 == 0 || i == convLayers) && height >= 2 && widthPx >= 2
                convs.append((channels, out, pool))
                channels = out
                if pool { height /= 2; widthPx /= 2 }
            }
            flatFeatures = channels * height * widthPx
            hidden = scaled(256)
        }
    }

    /// Parameters of `student-cK-wM` without building it (conv and hidden layers have no bias;
    /// each is followed by a BN with two parameters per channel).
    public static func studentParameterCount(convLayers: Int, width: Double, inputShape: [Int], classes: Int) -> Int {
        let layout = StudentLayout(convLayers: convLayers, width: width, inputShape: inputShape)
        let convs = layout.convs.reduce(0) { $0 + $1.outChannels * $1.inChannels * 9 + 2 * $1.outChannels }
        return convs + layout.flatFeatures * layout.hidden + 2 * layout.hidden + layout.hidden * classes + classes
    }

    static func buildStudent(_ spec: ModelSpec, convLayers: Int, width: Double, rng: inout RandomSource) -> Network {
        let layout = StudentLayout(convLayers: convLayers, width: width, inputShape: spec.inputShape)
        var layers: [(String, Layer)] = []
        var units: [(name: String, kind: UnitKind, group: String, transition: Bool)] = []
        for (index, conv) in layout.convs.enumerated() {
            let i = index + 1
            layers += [("conv\(i)", Conv2d(conv.inChannels, conv.outChannels, kernelSize: 3, padding: 1, rng: &rng)),
                       ("bn\(i)", BatchNorm(conv.outChannels)), ("relu\(i)", ReLU())]
            units.append(("conv\(i)", .conv, "features", false))
            if conv.pool { layers.append(("pool\(i)", MaxPool2d(kernelSize: 2))) }
        }
        layers += [("flatten", Flatten()),
                   ("fc", Linear(layout.flatFeatures, layout.hidden, bias: false, rng: &rng)),
                   ("fc_bn", BatchNorm(layout.hidden)), ("fc_relu", ReLU()),
                   ("readout", Linear(layout.hidden, spec.classes, rng: &rng))]
        units += [("fc", .linear, "head", false), ("readout", .linear, "head", false)]
        return Network(spec: spec, root: Sequential(layers), units: units)
    }
}

import Foundation
import TensorEngine

/// An ONNX graph ready to run: weights decoded, every operator checked to be one layersweep
/// runs, nodes in an order where each input exists before it is read. Inference only, float32,
/// NCHW; the batch dimension is whatever the input has.
public final class ONNXProgram {
    public let model: ONNXModel
    /// The graph's real inputs (inputs that are not weights; old files list weights there too).
    public let inputNames: [String]
    public let outputNames: [String]
    /// Weights and constants by name.
    public private(set) var constants: [String: ONNXValue]
    let opset: Int64
    /// The graph's maskable units, in graph order.
    public let units: [GraphUnit]
    /// Merge nodes that pass one input through unchanged (zeroBranch), by node index.
    private var passThrough: [Int: Int] = [:]
    /// Relu and Clip nodes that are the only reader of a Conv's output, by node index, with the
    /// range they clamp to: a Conv on the engine's kernels may do their work (then they pass
    /// their input on).
    private let clampsAfterConvolutions: [Int: Clamp]
    /// BatchNormalization nodes (with constant parameters) that are the only reader of a Conv's
    /// output, by the Conv's node index: an engine kernel folds them into its weights (they then
    /// pass their input on).
    private let batchNormsAfterConvolutions: [Int: Int]
    private let foldedBatchNorms: Set<Int>
    /// Conv nodes (with their folded batch norm) whose output only a two-input Add reads, by the
    /// Conv's index: an engine kernel may add the Add's other input, and apply the Relu that
    /// alone reads the Add's output, in the same pass (the Add and Relu then pass values on).
    private let residualsAfterConvolutions: [Int: Residual]
    /// The constants and the outputs of Constant nodes (exporters write a Clip's bounds as
    /// Constant nodes): what decides, at load, which nodes an engine kernel can take over.
    private let loadTimeValues: [String: ONNXValue]
    /// Outputs of Identity nodes that pass on a constant (exporters share equal tensors that
    /// way), by the constant's name.
    private let constantAliases: [String: String]
    /// Conv nodes on the engine's kernels, built from this program's weights on first use (a
    /// masked copy builds its own).
    private var engineConvolutions: [Int: EngineKernel]?
    /// Run Conv nodes on the engine's kernels (false: the reference kernels only, for tests).
    public var usesEngine = true
    /// Compute values that are the same for every image once (`ImageFreeValues`; false: every
    /// image, for tests).
    var findsImageFreeValues = true
    /// Per node: the values it is the last to read (not graph outputs), let go after it runs
    /// (looked up once, not per node of every run).
    private let releasedAfter: [[Int]]
    /// A file traced with a fixed batch that `BatchFreeReshapes` could not free: that batch, and
    /// the node that keeps it (a run on another batch is refused with that reason).
    private(set) var fixedBatch: (Int, String)?
    /// The graph's values numbered: a run's tables are indexed by these.
    let numbers: ValueNumbers
    /// `liveValues(at:)` by cut, as found.
    private let liveValuesByCut: LiveValuesByCut
    /// Per node: whether it treats the images of a batch apart and gives each image the same bits
    /// in a group as in the whole batch (`ImageGroups.sameBitsPerGroup`): a run of such nodes
    /// goes image group by image group, each group through all of them on one core.
    let groupSafe: [Bool]

    /// Operators this runtime executes.
    public static let supported: Set<String> = [
        "Conv", "ConvTranspose", "BatchNormalization", "LRN", "Relu", "LeakyRelu", "PRelu", "Clip", "Sigmoid", "HardSigmoid",
        "HardSwish", "Gelu", "Tanh", "Elu", "Selu", "Softplus", "Neg", "Abs", "Exp", "Sqrt", "Reciprocal", "Floor", "Ceil", "Erf",
        "Add", "Sub", "Mul", "Div", "Pow", "Sum", "Max", "Min", "Mean",
        "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "ReduceMean", "ReduceSum", "ReduceMax",
        "Flatten", "Reshape", "Squeeze", "Unsqueeze", "Transpose", "Concat", "Pad", "Gemm", "MatMul", "Softmax", "LogSoftmax",
        "Identity", "Dropout", "Shape", "Gather", "Slice", "Cast", "Constant", "ConstantOfShape", "Expand", "Split",
        "LayerNormalization", "GatherND", "Where",
    ]

    /// The shape of the graph's first real input as the file declares it (nil: a dimension
    /// without a fixed size, such as the batch).
    public var inputShape: [Int?]? {
        guard let name = inputNames.first, let info = model.graph.inputs.first(where: { $0.name == name }), let dims = info.shape else { return nil }
        return dims.map { $0.flatMap { $0 > 0 && $0 <= Int64(Int32.max) ? Int($0) : nil } }
    }

    /// Every value's shape on one run (units' output shapes, for listings). The run takes the
    /// reference kernels: building the engine's (folded and packed copies of every weight) for
    /// one run would only take time and memory (`sweep plan` of a ResNet-18 graph: 297 -> 273 MB peak).
    public func shapes(_ inputs: [String: ONNXValue]) throws -> [String: [Int]] {
        var shapes: [String: [Int]] = [:]
        let reference = ONNXProgram(copying: self)
        reference.usesEngine = false
        _ = try reference.run(inputs) { name, value in shapes[name] = value.shape }
        return shapes
    }

    /// Multiply-adds per image of each weighted node (Conv, ConvTranspose, Gemm, MatMul), by node
    /// index, from one run on a zero image of shape `image` (C, H, W): for costs and listings.
    public func multiplyAdds(image: [Int]) throws -> [Int: Double] {
        let shape = [1] + image
        let shapes = try self.shapes([inputNames.first ?? "": .floats(shape, [Float](repeating: 0, count: shape.reduce(1, *)))])
        var out: [Int: Double] = [:]
        for (i, node) in model.graph.nodes.enumerated() {
            guard let output = node.outputs.first.flatMap({ shapes[$0] }), node.inputs.count >= 2 else { continue }
            let weight = constants[node.inputs[1]]?.shape ?? shapes[node.inputs[1]] ?? []
            let produced = Double(output.reduce(1, *))
            switch node.opType {
            case "Conv": out[i] = produced * Double(weight.dropFirst().reduce(1, *))
            case "ConvTranspose":
                let input = shapes[node.inputs[0]] ?? constants[node.inputs[0]]?.shape ?? []
                out[i] = Double(input.reduce(1, *)) * Double(weight.dropFirst().reduce(1, *))
            case "Gemm", "MatMul":
                let trans = node.opType == "Gemm" && (try? NodeContext(node: node, values: [:], opset: opset).int("transB", default: 0)) == 1
                let k = weight.count >= 2 ? (trans ? weight[weight.count - 1] : weight[weight.count - 2]) : 1
                out[i] = produced * Double(k)
            default: break
            }
        }
        return out
    }

    /// Reads a model file; external data is looked up beside it.
    public convenience init(contentsOf url: URL) throws {
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw ONNXError.model("\(url.path): cannot read (\(error.localizedDescription))") }
        let model: ONNXModel
        do { model = try ONNXModel(data) } catch let error as ProtobufError {
            // A safetensors file starts with its header's length and then '{'.
            if data.count > 9, data[data.startIndex + 8] == UInt8(ascii: "{") {
                throw ONNXError.model("\(url.path): is a safetensors file, not an ONNX model: give it a .safetensors name (sweep eval reads both)")
            }
            throw ONNXError.model("\(url.path): not a readable ONNX model: \(error)")
        }
        do { try self.init(model, directory: url.deletingLastPathComponent()) } catch let error as ONNXError {
            throw ONNXError.model("\(url.path): \(error)")
        }
    }

    public convenience init(_ model: ONNXModel, directory: URL?) throws {
        try self.init(model, external: directory.map(ONNXTensorProto.ExternalData.directory))
    }

    /// A model and its external data files as one blob (`ONNXBundle`): what a worker receives.
    public convenience init(bundle: Data) throws {
        let (model, files) = try ONNXBundle.decode(bundle)
        let decoded: ONNXModel
        do { decoded = try ONNXModel(model) } catch let error as ProtobufError { throw ONNXError.model("not a readable ONNX model: \(error)") }
        try self.init(decoded, external: .files(files))
    }

    public init(_ model: ONNXModel, external: ONNXTensorProto.ExternalData?) throws {
        // The initializers' values live on decoded in `constants`; the model keeps their names
        // and shapes only, and lets go of the file's bytes its `raw_data` ranges point into.
        var described = model
        described.graph.initializers = model.graph.initializers.map(\.withoutValues)
        opset = model.opsets[""] ?? 1
        var graph = model.graph
        var constants: [String: ONNXValue] = [:]
        for t in graph.initializers {
            let value = try t.value(external: external)
            // A NaN or infinite weight would pass for a result (every row a NaN loss).
            if case let .floats(_, v) = value, let bad = v.firstIndex(where: { !$0.isFinite }) {
                throw ONNXError.tensor(t.name, "holds \(v[bad]) at index \(bad): a network with non-finite weights cannot be studied")
            }
            constants[t.name] = value
        }
        inputNames = graph.inputs.map(\.name).filter { constants[$0] == nil }
        outputNames = graph.outputs.map(\.name)
        // A file traced with a fixed batch runs on any batch (`BatchFreeReshapes`).
        if let input = inputNames.first, let info = graph.inputs.first(where: { $0.name == input }),
           let traced = info.shape?.first ?? nil, traced >= 1 {
            let unfollowed = BatchFreeReshapes.rewrite(&graph, constants: &constants, input: input, tracedBatch: traced, opset: opset)
            if let node = unfollowed.first, let target = constants[node.inputs[1]]?.intValues {
                fixedBatch = (Int(traced), "node \(node.name.isEmpty ? node.opType : node.name) reshapes to \(target)")
            }
            (described.graph.nodes, described.graph.initializers) = (graph.nodes, graph.initializers.map(\.withoutValues))
        }
        self.model = described
        let unsupported = graph.nodes.filter { !ONNXProgram.supported.contains($0.opType) || !["", "ai.onnx"].contains($0.domain) }
        if let first = unsupported.first {
            let ops = Set(unsupported.map { $0.domain.isEmpty ? $0.opType : "\($0.domain).\($0.opType)" }).sorted()
            throw ONNXError.node(first.name.isEmpty ? first.opType : first.name,
                                 "operator \(ops.joined(separator: ", ")) is not supported; layersweep runs \(ONNXProgram.supported.sorted().joined(separator: ", "))")
        }
        // Every node reads only values made before it (the file's order, as ONNX requires).
        var known = Set(inputNames).union(constants.keys)
        for node in graph.nodes {
            if let missing = node.inputs.first(where: { !$0.isEmpty && !known.contains($0) }) {
                throw ONNXError.node(node.name.isEmpty ? node.opType : node.name, "reads '\(missing)', which no earlier node makes")
            }
            known.formUnion(node.outputs)
        }
        if let missing = outputNames.first(where: { !known.contains($0) }) { throw ONNXError.model("graph output '\(missing)' is made by no node") }
        self.constants = constants
        units = GraphUnits.find(graph, constants: constants)
        var atLoad = constants
        for node in graph.nodes where node.opType == "Constant" && node.inputs.isEmpty && node.outputs.count == 1 {
            if let value = try? ONNXOperators.run(NodeContext(node: node, values: [:], opset: opset)).first { atLoad[node.outputs[0]] = value }
        }
        loadTimeValues = atLoad
        var aliases: [String: String] = [:]
        for node in graph.nodes where node.opType == "Identity" && node.inputs.count == 1 && node.outputs.count == 1 {
            let source = aliases[node.inputs[0]] ?? node.inputs[0]
            if constants[source] != nil { aliases[node.outputs[0]] = source }
        }
        constantAliases = aliases
        var resolved = constants
        for (alias, source) in aliases { resolved[alias] = constants[source] }
        let norms = ONNXProgram.batchNormsAfterConvolutions(graph, constants: resolved, outputs: Set(outputNames))
        batchNormsAfterConvolutions = norms
        foldedBatchNorms = Set(norms.values)
        clampsAfterConvolutions = ONNXProgram.clampsAfterConvolutions(graph, constants: atLoad, outputs: Set(outputNames), norms: norms)
        residualsAfterConvolutions = ONNXProgram.residualsAfterConvolutions(graph, outputs: Set(outputNames), norms: norms)
        let last = ONNXProgram.readersOfValues(graph).compactMapValues(\.last)
        let outputSet = Set(outputNames)
        let numbers = ValueNumbers(graph, inputs: inputNames, constants: constants.keys.sorted(), outputs: outputNames)
        self.numbers = numbers
        releasedAfter = graph.nodes.indices.map { i in
            Set(graph.nodes[i].inputs.filter { last[$0] == i && !outputSet.contains($0) }).compactMap { numbers.ids[$0] }.sorted()
        }
        groupSafe = ImageGroups.sameBitsPerGroup(graph, constants: atLoad)
        liveValuesByCut = LiveValuesByCut()
    }

    /// Relu and Clip (with constant bounds) nodes that are the only reader of a Conv's output,
    /// or of the batch norm folded into it (not itself a graph output), with their ranges.
    static func clampsAfterConvolutions(_ graph: ONNXGraph, constants: [String: ONNXValue], outputs: Set<String>,
                                        norms: [Int: Int]) -> [Int: Clamp] {
        let readers = readersOfValues(graph)
        var fused: [Int: Clamp] = [:]
        for (i, node) in graph.nodes.enumerated() where node.opType == "Conv" {
            let last = norms[i].map { graph.nodes[$0] } ?? node
            guard let out = last.outputs.first, !outputs.contains(out), let r = readers[out], r.count == 1,
                  let clamp = Clamp(graph.nodes[r[0]], constants: constants) else { continue }
            fused[r[0]] = clamp
        }
        return fused
    }

    /// Inference BatchNormalization nodes with constant parameters that are the only reader of a
    /// Conv's output (neither a graph output), by the Conv's index.
    static func batchNormsAfterConvolutions(_ graph: ONNXGraph, constants: [String: ONNXValue], outputs: Set<String>) -> [Int: Int] {
        let readers = readersOfValues(graph)
        var norms: [Int: Int] = [:]
        for (i, node) in graph.nodes.enumerated() where node.opType == "Conv" {
            guard let out = node.outputs.first, !outputs.contains(out), let r = readers[out], r.count == 1 else { continue }
            let bn = graph.nodes[r[0]]
            guard bn.opType == "BatchNormalization", bn.inputs.count >= 5, bn.outputs.count == 1 || bn.outputs.dropFirst().allSatisfy(\.isEmpty),
                  let y = bn.outputs.first, !outputs.contains(y), { if case .int(1)? = bn.attributes["training_mode"] { return false } else { return true } }(),
                  bn.inputs[1...4].allSatisfy({ if case .floats? = constants[$0] { return true } else { return false } }) else { continue }
            norms[i] = r[0]
        }
        return norms
    }

    /// The Add (and the Relu after it) that a Conv's output, or its folded batch norm's, alone
    /// feeds, by the Conv's index: see `residualsAfterConvolutions`.
    static func residualsAfterConvolutions(_ graph: ONNXGraph, outputs: Set<String>, norms: [Int: Int]) -> [Int: Residual] {
        let readers = readersOfValues(graph)
        var residuals: [Int: Residual] = [:]
        for (i, node) in graph.nodes.enumerated() where node.opType == "Conv" {
            let last = norms[i].map { graph.nodes[$0] } ?? node
            guard let out = last.outputs.first, !outputs.contains(out), let r = readers[out], r.count == 1 else { continue }
            let add = graph.nodes[r[0]]
            guard add.opType == "Add", add.inputs.count == 2, add.outputs.count == 1, add.inputs.filter({ $0 == out }).count == 1,
                  !add.inputs.contains("") else { continue }
            let sum = add.outputs[0]
            var relu: Int?
            if !outputs.contains(sum), let after = readers[sum], after.count == 1, graph.nodes[after[0]].opType == "Relu" { relu = after[0] }
            residuals[i] = Residual(add: r[0], value: out, relu: relu)
        }
        return residuals
    }

    /// Every node that reads each value, in graph order.
    static func readersOfValues(_ graph: ONNXGraph) -> [String: [Int]] {
        var readers: [String: [Int]] = [:]
        for (i, node) in graph.nodes.enumerated() { for input in node.inputs where !input.isEmpty { readers[input, default: []].append(i) } }
        return readers
    }

    private init(copying other: ONNXProgram) {
        (model, inputNames, outputNames, constants, opset, units, passThrough, clampsAfterConvolutions, usesEngine) =
            (other.model, other.inputNames, other.outputNames, other.constants, other.opset, other.units, other.passThrough,
             other.clampsAfterConvolutions, other.usesEngine)
        findsImageFreeValues = other.findsImageFreeValues
        releasedAfter = other.releasedAfter
        numbers = other.numbers
        fixedBatch = other.fixedBatch
        liveValuesByCut = other.liveValuesByCut
        groupSafe = other.groupSafe
        (batchNormsAfterConvolutions, foldedBatchNorms, loadTimeValues, constantAliases, residualsAfterConvolutions) =
            (other.batchNormsAfterConvolutions, other.foldedBatchNorms, other.loadTimeValues, other.constantAliases,
             other.residualsAfterConvolutions)
        base = other
    }

    /// What this program's runs need not compute image by image (`ImageFreeValues`), found on
    /// first use (a masked copy finds its own).
    private var imageFreeFound: ImageFreeValues?
    private let imageFreeLock = NSLock()

    func imageFreeValues() -> ImageFreeValues {
        imageFreeLock.withLock {
            if let found = imageFreeFound { return found }
            let found = ImageFreeValues(model.graph, constants: constants, aliases: constantAliases, outputs: outputNames, passThrough: passThrough)
            imageFreeFound = found
            return found
        }
    }

    /// The program this one is a changed copy of (its engine kernels of unchanged weights are
    /// reused), and the constants changed since.
    private var base: ONNXProgram?
    private var changedConstants: Set<String> = []

    /// The engine convolutions of this program's weights (a Conv whose Relu is fused takes it);
    /// a copy takes its base's for every Conv whose weight and bias it did not change.
    func engineKernels() -> [Int: EngineKernel] {
        if let built = engineConvolutions { return built }
        let inherited = base?.engineKernels() ?? [:]
        var built: [Int: EngineKernel] = [:]
        let readers = ONNXProgram.readersOfValues(model.graph)
        for (i, node) in model.graph.nodes.enumerated() where node.opType == "Conv" && passThrough[i] == nil {
            let norm = batchNormsAfterConvolutions[i].map { model.graph.nodes[$0] }
            let reads = (node.inputs.dropFirst() + (norm?.inputs.dropFirst() ?? [])).map { constantAliases[$0] ?? $0 }
            if let kept = inherited[i], changedConstants.isDisjoint(with: reads) {
                built[i] = kept
                continue
            }
            let clamp = (norm ?? node).outputs.first.flatMap { readers[$0]?.first }.flatMap { clampsAfterConvolutions[$0] }
            var conv = node  // reading constants by their own names
            conv.inputs = node.inputs.enumerated().map { $0.offset == 0 ? $0.element : constantAliases[$0.element] ?? $0.element }
            if let norm, let folded = folding(norm, into: conv) {
                built[i] = EngineKernel(folded.0, constants: folded.1, clamp: clamp)
            } else if norm == nil {
                built[i] = EngineKernel(conv, constants: constants, clamp: clamp)
            }
        }
        engineConvolutions = built
        base = nil  // what it lent is now this program's own
        return built
    }

    /// `conv` with the inference batch norm `bn` after it folded in: weights w·s and bias
    /// (b − μ)·s + β per output channel, s = γ / √(σ² + ε) (the arithmetic of the built-in
    /// networks' fused layers); nil when the shapes do not fit.
    private func folding(_ bn: ONNXNode, into conv: ONNXNode) -> (ONNXNode, [String: ONNXValue])? {
        guard case let .floats(ws, w)? = constants[conv.inputs[1]], let channels = ws.first, channels > 0 else { return nil }
        let params = bn.inputs[1...4].map { constants[constantAliases[$0] ?? $0]?.floatValues ?? [] }
        guard params.allSatisfy({ $0.count == channels }) else { return nil }
        let epsilon: Float = { if case let .float(e)? = bn.attributes["epsilon"] { return e } else { return 1e-5 } }()
        var bias = [Float](repeating: 0, count: channels)
        if conv.inputs.count > 2, !conv.inputs[2].isEmpty {
            guard case let .floats(bs, b)? = constants[conv.inputs[2]], bs == [channels] else { return nil }
            bias = b
        }
        let scale = (0..<channels).map { params[0][$0] / (params[3][$0] + epsilon).squareRoot() }
        let perOutput = w.count / channels
        let weights = (0..<w.count).map { w[$0] * scale[$0 / perOutput] }
        let shift = (0..<channels).map { (bias[$0] - params[2][$0]) * scale[$0] + params[1][$0] }
        var folded = conv
        folded.inputs = [conv.inputs[0], "\u{0}folded.weight", "\u{0}folded.bias"]
        return (folded, ["\u{0}folded.weight": .floats(ws, weights), "\u{0}folded.bias": .floats([channels], shift)])
    }

    /// A copy of this program with some constants (weights) replaced by values of the same
    /// shape; everything else is shared.
    public func replacing(_ replacements: [String: ONNXValue]) throws -> ONNXProgram {
        let copy = ONNXProgram(copying: self)
        for (name, value) in replacements {
            guard let old = constants[name] else { throw ONNXError.model("the graph has no constant \(name)") }
            guard old.shape == value.shape else { throw ONNXError.model("\(name) has shape \(old.shape), not \(value.shape)") }
            copy.constants[name] = value
            copy.changedConstants.insert(name)
        }
        return copy
    }

    /// When set, every BatchNormalization node normalises by its batch's own statistics (as
    /// PyTorch's BN in training mode) and reports them: node index, batch means, unbiased
    /// variances.
    private var batchStatistics: ((Int, [Double], [Double]) -> Void)?

    /// The BatchNormalization nodes whose statistics are constants of the graph: what
    /// `recalibrated(on:)` re-estimates (none when the exporter folded BN into the convolutions).
    public var batchNormNodes: [Int] {
        model.graph.nodes.indices.filter { i in
            let node = model.graph.nodes[i]
            guard node.opType == "BatchNormalization", node.inputs.count >= 5 else { return false }
            if case .floats? = constants[node.inputs[3]], case .floats? = constants[node.inputs[4]] { return true }
            return false
        }
    }

    /// A copy whose BatchNormalization nodes hold statistics re-estimated on `batches`, as
    /// PyTorch does with `momentum=None` and only the BN layers in training mode: each BN
    /// normalises a batch by the batch's own mean and biased variance, and its running
    /// statistics become the plain average of the batches' means and unbiased variances.
    /// Everything else runs as at inference (Dropout passes values through).
    public func recalibrated(on batches: some Sequence<ONNXValue>) throws -> ONNXProgram {
        let nodes = batchNormNodes
        guard !nodes.isEmpty else { throw ONNXError.model("the graph has no BatchNormalization nodes to re-estimate (export with BN kept)") }
        let measuring = ONNXProgram(copying: self)
        var sums: [Int: (mean: [Double], variance: [Double])] = [:]
        var count = 0
        measuring.batchStatistics = { node, mean, variance in
            let old = sums[node] ?? ([Double](repeating: 0, count: mean.count), [Double](repeating: 0, count: variance.count))
            sums[node] = (zip(old.mean, mean).map { $0 + $1 }, zip(old.variance, variance).map { $0 + $1 })
        }
        for batch in batches {
            _ = try measuring.run([inputNames.first ?? "": batch])
            count += 1
        }
        guard count > 0 else { throw ONNXError.model("no batches to re-estimate BatchNormalization statistics on") }
        var replacements: [String: ONNXValue] = [:]
        for node in nodes {
            let (meanName, varianceName) = (model.graph.nodes[node].inputs[3], model.graph.nodes[node].inputs[4])
            guard let (mean, variance) = sums[node], let old = constants[meanName] else { continue }
            replacements[meanName] = .floats(old.shape, mean.map { Float($0 / Double(count)) })
            replacements[varianceName] = .floats(old.shape, variance.map { Float($0 / Double(count)) })
        }
        return try replacing(replacements)
    }

    /// The unit named `name`.
    public func unit(_ name: String) throws -> GraphUnit {
        guard let unit = units.first(where: { $0.name == name }) else {
            throw ONNXError.model("no unit \(name) in this graph (sweep layers FILE lists them)")
        }
        return unit
    }

    /// What a mask does to a unit of a graph.
    public enum Mask: String, Sendable {
        /// The unit's weight set to zero; its bias, and a batch norm after it (a node, or folded
        /// into the bias by the exporter), still add their constants.
        case zeroKernel
        /// The merge gets its shortcut only.
        case zeroBranch
    }

    /// A copy of this program with `mask` applied to unit `name` (the weights are shared until
    /// one is changed).
    public func masked(_ mask: Mask, unit name: String) throws -> ONNXProgram {
        let unit = try self.unit(name)
        switch (mask, unit.kind) {
        case (.zeroKernel, .conv), (.zeroKernel, .linear):
            guard let weight = unit.weight, let value = constants[weight] else { throw ONNXError.model("unit \(name) has no weight") }
            return try replacing([weight: .floats(value.shape, [Float](repeating: 0, count: value.count))])
        case (.zeroBranch, .branch):
            guard let shortcut = unit.shortcut, let node = unit.nodes.first else { throw ONNXError.model("unit \(name) has no shortcut") }
            let copy = ONNXProgram(copying: self)
            copy.passThrough[node] = shortcut
            return copy
        default:
            throw ONNXError.model("\(mask.rawValue) does not apply to \(name), a \(unit.kind.rawValue) unit")
        }
    }

    /// Runs the graph on `inputs` (by name); returns every graph output by name. `observe` sees
    /// each value as it is made, or only those named in `observing` (the others then stay in the
    /// engine's layout and fused kernels, which is faster and gives the same bits).
    public func run(_ inputs: [String: ONNXValue], observing: Set<String>? = nil,
                    observe: ((String, ONNXValue) -> Void)? = nil) throws -> [String: ONNXValue] {
        for name in inputNames where inputs[name] == nil { throw ONNXError.model("no value for graph input '\(name)'") }
        if let (traced, why) = fixedBatch, let images = inputs[inputNames[0]]?.shape.first, images != traced {
            throw ONNXError.model("the file was exported with a fixed batch of \(traced) and runs on no other (its \(why) after an operator "
                                  + "that moves the batch axis); export it with dynamic_shapes=({0: torch.export.Dim(\"batch\")},)")
        }
        return try run(inputs, from: 0, observing: observing, observe: observe)
    }

    /// The values made before node `cut` (graph inputs included) that node `cut` and later ones,
    /// or the graph's outputs, read: what a run from `cut` starts with.
    public func liveValues(at cut: Int) -> [String] {
        // Asked once per image group of every run: worked out once per cut (masked copies
        // share the graph, and so the answers).
        if let known = liveValuesByCut.lock.withLock({ liveValuesByCut.found[cut] }) { return known }
        let live = computeLiveValues(at: cut)
        liveValuesByCut.lock.withLock { liveValuesByCut.found[cut] = live }
        return live
    }

    private func computeLiveValues(at cut: Int) -> [String] {
        let nodes = model.graph.nodes
        var made = Set(inputNames)
        for node in nodes.prefix(cut) { made.formUnion(node.outputs.filter { !$0.isEmpty }) }
        var read = Set(outputNames)
        for node in nodes.dropFirst(cut) { read.formUnion(node.inputs.filter { !$0.isEmpty }) }
        return made.intersection(read).sorted()
    }

    /// Runs nodes `cut` and later on `values` (the `liveValues(at: cut)` of an earlier run of
    /// the same graph up to `cut`): the same outputs as a whole run whose first nodes made them.
    public func run(_ values: [String: ONNXValue], from cut: Int, observing: Set<String>? = nil,
                    observe: ((String, ONNXValue) -> Void)? = nil) throws -> [String: ONNXValue] {
        if observe == nil, batchStatistics == nil, usesEngine, let part = try imageGroupByImageGroup(values, from: cut) {
            return try runLayerByLayer(part.live, from: part.end, until: nil, batch: part.batch, single: part.single, observe: nil).values
        }
        return try runLayerByLayer(values, from: cut, until: nil, observing: observing, observe: observe).values
    }

    /// The number of images in `values` (live values of a run): the longest leading axis of
    /// its activations.
    static func images(in values: [String: ONNXValue]) -> Int? {
        values.values.compactMap { if case let .floats(s, _) = $0, s.count >= 2 { return s[0] } else { return nil } }.max()
    }

    /// Runs nodes `cut` and later on the whole batch of `batch` images (by default, as many as
    /// `values` holds), node after node; the values named in `single` hold one image that stands
    /// for all (`ImageFreeValues`). Returns the graph's outputs, or with `until`, the values
    /// live at `until` after nodes `cut` to `until` (excluded) ran, and which of those are single.
    func runLayerByLayer(_ values: [String: ONNXValue], from cut: Int, until: Int?, batch: Int? = nil, single: Set<String> = [],
                         observing: Set<String>? = nil,
                         observe: ((String, ONNXValue) -> Void)?) throws -> (values: [String: ONNXValue], single: Set<String>) {
        var run = GraphRun(program: self, values: constants.merging(values) { _, given in given }, observing: observing, observe: observe,
                           batch: batch ?? ONNXProgram.images(in: values), single: single)
        let nodes = model.graph.nodes
        for index in stride(from: cut, to: min(until ?? nodes.count, nodes.count), by: 1) {
            if observe == nil, run.unneeded.contains(index) {
                run.release(after: index)
                continue
            }
            let started = NodeTimes.shared == nil ? 0 : DispatchTime.now().uptimeNanoseconds
            defer {
                if let times = NodeTimes.shared, let output = numbers.outputs[index].first, output >= 0 {
                    times.add(node: index, op: nodes[index].opType, nanoseconds: DispatchTime.now().uptimeNanoseconds - started,
                              shape: run.kept[output]?.shape ?? run.values[numbers.names[output]]?.shape, blocked: run.kept[output] != nil)
                }
            }
            try run.step(index, nodes[index])
        }
        for id in run.deferred.indices where run.deferred[id] != nil { run.settle(id) }
        var out: [String: ONNXValue] = [:]
        for name in until.map(liveValues(at:)) ?? outputNames {
            if let id = numbers.ids[name] {
                if until == nil { run.expand(id) }
                run.plain(id)
            }
            out[name] = run.values[name]
        }
        return (out, until == nil ? [] : run.single.intersection(out.keys))
    }

    /// One run of the graph over a batch: the values made so far and how each is held.
    /// Activations the engine's kernels made stay in their layout (channel-blocked, `kept`)
    /// while engine kernels and element-wise nodes read them; a value is made plain only for a
    /// node that needs it so. Either layout gives the same bits: the same operations on the
    /// same values. Values are looked up by number (`ValueNumbers`), not by name: a name's hash
    /// per lookup was 4% of an imported ResNet-20's evaluation.
    private struct GraphRun {
        let program: ONNXProgram
        let numbers: ValueNumbers
        /// Plain values by name (what operators read), and by number whether one is held.
        var values: [String: ONNXValue]
        var plainHeld: [Bool]
        var kept: [LayoutTensor?]
        let observing: Set<String>?
        let observe: ((String, ONNXValue) -> Void)?
        /// The engine's kernels by node. (Re-estimating BN statistics needs the batch norms as
        /// nodes: their convolutions then run unfolded.)
        let engine: [Int: EngineKernel]
        /// Outputs of engine convolutions that applied their node's clamp, and their batch norm.
        var clamped: [Bool]
        var normalised: [Bool]
        /// Convolutions whose residual Add is still to come, by the value the Add reads: run at
        /// the Add, adding its other input (made by then whatever the node order), or before any
        /// other node that reads them. Not when the convolution's output is observed (it is
        /// wanted as made), nor the Add's when the kernel would apply the Relu after it.
        var deferred: [Deferred?]
        var deferredCount = 0
        /// Relu nodes whose Add a kernel did with the ReLU.
        var reluApplied: Set<Int> = []
        /// The run's images, and the values held as one image that stands for all of them
        /// (`ImageFreeValues`); nil when values must be computed image by image (BN statistics
        /// of the batch, or no batch axis to tell).
        let batch: Int?
        let imageFree: ImageFreeValues?
        /// Nodes no output needs (a dropped branch's): never run unless observed.
        let unneeded: Set<Int>
        var single: Set<String> = []
        /// How the node being run treats its images.
        var mode = Mode.batch

        struct Deferred {
            let kernel: EngineKernel
            let input: LayoutTensor
            let residual: Residual
            /// The number of the value the Add reads (`residual.value`).
            let value: Int
        }

        enum Mode {
            /// Every image.
            case batch
            /// Inputs held as one image each: so is the output.
            case single
            /// A node that ignores its data input: run on the first image, giving one for all.
            case firstImage
        }

        init(program: ONNXProgram, values: [String: ONNXValue], observing: Set<String>?, observe: ((String, ONNXValue) -> Void)?,
             batch: Int?, single: Set<String>) {
            (self.program, self.values, self.observing, self.observe) = (program, values, observing, observe)
            numbers = program.numbers
            let count = numbers.names.count
            plainHeld = [Bool](repeating: false, count: count)
            for name in values.keys { if let id = numbers.ids[name] { plainHeld[id] = true } }
            kept = [LayoutTensor?](repeating: nil, count: count)
            (clamped, normalised) = ([Bool](repeating: false, count: count), [Bool](repeating: false, count: count))
            deferred = [Deferred?](repeating: nil, count: count)
            engine = !program.usesEngine ? [:] : program.batchStatistics == nil ? program.engineKernels()
                : program.engineKernels().filter { program.batchNormsAfterConvolutions[$0.key] == nil }
            self.batch = batch
            // Without a weight that ignores its input (an unmasked graph) there is nothing to find:
            // no per-node work then.
            let found = batch != nil && program.batchStatistics == nil && program.findsImageFreeValues ? program.imageFreeValues() : nil
            imageFree = found?.ignoringInput.isEmpty == false ? found : nil
            unneeded = found?.unneeded ?? []
            self.single = single
            if imageFree == nil { for name in single { if let id = numbers.ids[name] { expand(id) } } }
        }

        /// Holds `value` as value `id`'s plain form (nil: none).
        mutating func setPlain(_ id: Int, _ value: ONNXValue?) {
            values[numbers.names[id]] = value
            plainHeld[id] = value != nil
        }

        func plainValue(_ id: Int) -> ONNXValue? { plainHeld[id] ? values[numbers.names[id]] : nil }

        /// How node `index` treats its images: see `Mode`. A run that shows values to an
        /// observer computes the nodes that matter by shape only on every image (they are what
        /// it observes).
        func mode(_ index: Int, _ node: ONNXNode) -> Mode {
            // (A batch of one image marks its values as well: which values are single is a
            // matter of the graph, the same in every image group and from every cut.)
            guard let imageFree, let batch else { return .batch }
            var computed = numbers.inputs[index].filter { $0 >= 0 && program.loadTimeValues[numbers.names[$0]] == nil }
            if let kept = program.passThrough[index], kept < node.inputs.count { computed = [numbers.inputs[index][kept]] }
            if imageFree.ignoringInput.contains(index) || (observe == nil && imageFree.shapeOnly.contains(index)) {
                let batchFirst = computed.allSatisfy { single.contains(numbers.names[$0]) || (kept[$0]?.shape ?? plainValue($0)?.shape)?.first == batch }
                return batchFirst ? .firstImage : .batch
            }
            guard !computed.isEmpty, computed.allSatisfy({ single.contains(numbers.names[$0]) }), program.groupSafe[index] else { return .batch }
            return .single
        }

        /// Makes value `id` a whole batch again if it is held as one image.
        mutating func expand(_ id: Int) {
            guard let batch, !single.isEmpty, single.remove(numbers.names[id]) != nil else { return }
            if let x = kept[id] { kept[id] = x.repeated(batch) }
            if let v = plainValue(id) { setPlain(id, v.repeated(batch)) }
        }

        /// Lets go of the values no node after `index` reads.
        mutating func release(after index: Int) {
            for id in program.releasedAfter[index] {
                if plainHeld[id] { setPlain(id, nil) }
                kept[id] = nil
                if !single.isEmpty { single.remove(numbers.names[id]) }
            }
        }

        func watched(_ id: Int) -> Bool { observe != nil && id >= 0 && (observing?.contains(numbers.names[id]) ?? true) }

        /// Makes value `id` plain (in `values`) if it is held in the engine's layout only.
        mutating func plain(_ id: Int) {
            if !plainHeld[id], let x = kept[id] { setPlain(id, .floats(x.shape, x.plain.array)) }
        }

        func layout(_ id: Int) -> LayoutTensor? {
            if let x = kept[id] { return x }
            if case let .floats(shape, v)? = plainValue(id) { return LayoutTensor(plain: Tensor(shape: shape, values: v)) }
            return nil
        }

        /// Runs the convolution deferred under value `id`, if any.
        mutating func settle(_ id: Int) {
            guard let d = deferred[id] else { return }
            deferred[id] = nil
            deferredCount -= 1
            kept[id] = d.kernel.forward(d.input)
        }

        /// Runs node `index`: on the engine's layout where it can, else as an ONNX operator on
        /// plain values; then lets go of the values no later node reads.
        mutating func step(_ index: Int, _ node: ONNXNode) throws {
            let inputs = numbers.inputs[index]
            mode = mode(index, node)
            if mode == .batch, !single.isEmpty { for id in inputs where id >= 0 { expand(id) } }
            let sum = residualSum(index, inputs)
            // A node that ignores its data input, or matters by its shape only, reads the first
            // image of its inputs.
            var narrowed: [(Int, LayoutTensor?, ONNXValue?)] = []
            if mode == .firstImage, let batch {
                for id in Set(inputs) where id >= 0 && program.loadTimeValues[numbers.names[id]] == nil && !single.contains(numbers.names[id]) {
                    narrowed.append((id, kept[id], plainValue(id)))
                    kept[id] = kept[id]?.images(0..<1)
                    if let v = plainValue(id) { setPlain(id, v.images(0..<1, of: batch)) }
                }
            }
            var outputs: [ONNXValue] = []
            if let made = try onLayouts(index, node, inputs, sum: sum) {
                if let made, let output = numbers.outputs[index].first, output >= 0 { store(made, as: output) }
            } else {
                outputs = try asOperator(index, node, inputs)
            }
            for (id, x, v) in narrowed {
                kept[id] = x
                setPlain(id, v)
            }
            for (id, value) in zip(numbers.outputs[index], outputs) where id >= 0 {
                setPlain(id, value)
                if mode != .batch { single.insert(numbers.names[id]) }
                if watched(id) { expand(id); observe?(numbers.names[id], plainValue(id)!) }
            }
            // Values no later node reads are let go (a batch's activations would otherwise all
            // stay until the end of the run).
            release(after: index)
        }

        /// Settles the deferred convolutions node `index` reads, but the one whose residual Add
        /// it is: that one runs now, adding the Add's other input (and the Relu after it, if its
        /// kernel can); nil when there is none or the kernel cannot.
        mutating func residualSum(_ index: Int, _ inputs: [Int]) -> LayoutTensor? {
            guard deferredCount > 0 else { return nil }
            var fusedAdd: Deferred?
            for id in inputs where id >= 0 { if let d = deferred[id], d.residual.add == index { fusedAdd = d; break } }
            let fusedValue = fusedAdd?.value
            for id in inputs where id >= 0 && deferred[id] != nil && id != fusedValue { settle(id) }
            guard let d = fusedAdd else { return nil }
            for id in inputs where id >= 0 && id != d.value { expand(id) }
            if let other = inputs.first(where: { $0 >= 0 && $0 != d.value }), let skip = layout(other),
               skip.shape.count == 4, skip.blocked || BlockedLayout.keeps(channels: skip.shape[1], padding: true),
               let y = d.kernel.forward(d.input, adding: skip.blocked ? skip : LayoutTensor.blocked(from: skip.plain),
                                        relu: d.residual.relu != nil) {
                deferred[d.value] = nil
                deferredCount -= 1
                if let relu = d.residual.relu { reluApplied.insert(relu) }
                return y
            }
            settle(d.value)
            return nil
        }

        /// Node `index` on the engine's layout: `.some(made)` when it ran there (`.some(nil)`:
        /// deferred to its residual Add, or folded into a deferred convolution), nil when it
        /// must run as an operator.
        mutating func onLayouts(_ index: Int, _ node: ONNXNode, _ inputs: [Int], sum: LayoutTensor?) throws -> LayoutTensor?? {
            let first = inputs.first ?? -1
            let output = numbers.outputs[index].first ?? -1
            if program.foldedBatchNorms.contains(index), output >= 0, deferred[output] != nil {
                return .some(nil)  // its convolution, deferred under this node's output, folded it in
            } else if let sum {
                return sum
            } else if first < 0 {
                return nil
            } else if reluApplied.contains(index), let x = kept[first] {
                return x  // the kernel before its Add applied it
            } else if let input = program.passThrough[index], input < inputs.count, inputs[input] >= 0, let x = kept[inputs[input]] {
                return x
            } else if let kernel = engine[index], let x = layout(first), kernel.accepts(x.shape),
                      mode == .batch, let residual = program.residualsAfterConvolutions[index], program.passThrough[residual.add] == nil,
                      case .dense = kernel, let value = numbers.ids[residual.value],
                      !watched(value), residual.relu == nil || !watched(numbers.outputs[residual.add][0]) {
                deferred[value] = Deferred(kernel: kernel, input: x, residual: residual, value: value)
                deferredCount += 1
                return .some(nil)
            } else if let kernel = engine[index], let x = layout(first), kernel.accepts(x.shape) {
                let norm = program.batchNormsAfterConvolutions[index]
                if norm != nil, output >= 0 { normalised[output] = true }
                if kernel.clamps, let made = norm.flatMap({ numbers.outputs[$0].first }) ?? Optional(output), made >= 0 { clamped[made] = true }
                return kernel.forward(x)
            } else if program.appliedByConvolution(index, first, clamped, normalised), let x = kept[first] {
                return x  // its Conv applied it
            } else if program.passThrough[index] == nil,
                      let y = try program.elementwiseOnLayouts(node, kept: inputs.map { $0 >= 0 ? kept[$0] : nil }, values: values) {
                return y
            }
            return nil
        }

        /// Node `index` as an ONNX operator on plain values.
        mutating func asOperator(_ index: Int, _ node: ONNXNode, _ inputs: [Int]) throws -> [ONNXValue] {
            for id in inputs where id >= 0 { plain(id) }
            let context = NodeContext(node: node, values: values, opset: program.opset)
            if let input = program.passThrough[index] {
                return [try context.input(input)]
            } else if let first = inputs.first, first >= 0, program.appliedByConvolution(index, first, clamped, normalised) {
                return [try context.input(0)]
            } else if let batchStatistics = program.batchStatistics, node.opType == "BatchNormalization" {
                let (y, mean, variance) = try ONNXOperators.batchNormOnBatch(context)
                batchStatistics(index, mean, variance)
                return [y]
            }
            return try ONNXOperators.run(context)
        }

        /// Holds `x` as value `id`: in the engine's layout if blocked, else plain; shown to the observer.
        mutating func store(_ x: LayoutTensor, as id: Int) {
            if x.blocked { kept[id] = x } else { setPlain(id, .floats(x.shape, x.storage.array)) }
            if mode != .batch { single.insert(numbers.names[id]) }
            if let observe, watched(id) { expand(id); plain(id); observe(numbers.names[id], plainValue(id)!) }
        }
    }

    /// Whether node `index` (reading `first`) is a clamp or batch norm its Conv's engine kernel
    /// already applied.
    private func appliedByConvolution(_ index: Int, _ first: Int, _ clamped: [Bool], _ normalised: [Bool]) -> Bool {
        (clampsAfterConvolutions[index] != nil && clamped[first]) || (foldedBatchNorms.contains(index) && normalised[first])
    }

    /// Relu, a constant Clip, MaxPool, a global average (GlobalAveragePool, ReduceMean over the
    /// spatial axes: a plain result), a Slice along height and width, a constant Pad of the
    /// channels or an Add of two activations of one shape, run on the engine's layout when an
    /// input is in it (the other is converted); nil for any other node.
    private func elementwiseOnLayouts(_ node: ONNXNode, kept: [LayoutTensor?], values: [String: ONNXValue]) throws -> LayoutTensor? {
        guard node.outputs.count == 1, !node.inputs.isEmpty, let first = kept.first else { return nil }
        switch node.opType {
        case "Relu", "Clip":
            guard let x = first, let clamp = Clamp(node, constants: loadTimeValues) else { return nil }
            let (low, high) = (clamp.low, clamp.high)
            return x.clamped(low, high)
        case "GlobalAveragePool", "ReduceMean":
            guard let x = first, x.shape.count == 4 else { return nil }
            var keep = true
            if node.opType == "ReduceMean" {
                let context = NodeContext(node: node, values: values, opset: opset)
                let listed = try context.optionalInput(1).map { try context.ints(of: $0) } ?? context.intList("axes")
                guard let axes = listed, Set(axes.map { $0 < 0 ? $0 + 4 : $0 }) == [2, 3], axes.count == 2 else { return nil }
                keep = try context.int("keepdims", default: 1) != 0
            }
            let means = x.spatialMeans()
            return LayoutTensor(plain: Tensor(shape: keep ? means.shape + [1, 1] : means.shape, values: means.array))
        case "MaxPool":
            guard let x = first, x.shape.count == 4, node.outputs.count == 1 || node.outputs[1].isEmpty,
                  case let .ints(k)? = node.attributes["kernel_shape"], k.count == 2, k.allSatisfy({ (1...64).contains($0) }) else { return nil }
            let context = NodeContext(node: node, values: values, opset: opset)
            let g = try ONNXOperators.window(context, input: [x.shape[2], x.shape[3]], kernel: k.map(Int.init), oneD: false,
                                             ceil: try context.int("ceil_mode", default: 0) != 0)
            guard g.dilations == [1, 1] else { return nil }
            return x.maxPooled(kernel: k.map(Int.init), strides: g.strides, pads: [g.pads[0], g.pads[1]], output: g.output)
        case "Slice":
            guard let x = first, x.shape.count == 4 else { return nil }
            let (begin, step, count) = try ONNXOperators.sliceWindow(NodeContext(node: node, values: values, opset: opset), shape: x.shape)
            guard begin[0] == 0, step[0] == 1, count[0] == x.shape[0], begin[1] == 0, step[1] == 1, count[1] == x.shape[1] else { return nil }
            return x.spatialSlice(begin: (begin[2], begin[3]), step: (step[2], step[3]), count: (count[2], count[3]))
        case "Pad":
            guard let x = first, x.shape.count == 4 else { return nil }
            let (pads, mode, value) = try ONNXOperators.padding(NodeContext(node: node, values: values, opset: opset), rank: 4)
            guard mode == "constant", pads.count == 8, pads.indices.allSatisfy({ $0 % 4 == 1 || pads[$0] == 0 }) else { return nil }
            return x.channelsPadded(before: Int(pads[1]), after: Int(pads[5]), value: value)
        case "Add":
            guard node.inputs.count == 2, kept.count == 2 else { return nil }
            guard kept[0] != nil || kept[1] != nil else { return nil }
            func blocked(_ input: Int) -> LayoutTensor? {
                if let x = kept[input] { return x }
                guard case let .floats(shape, v)? = values[node.inputs[input]], shape.count == 4, BlockedLayout.keeps(channels: shape[1], padding: true) else { return nil }
                return LayoutTensor.blocked(from: Tensor(shape: shape, values: v))
            }
            guard let x = blocked(0), let y = blocked(1), x.shape == y.shape, x.storage.shape == y.storage.shape else { return nil }
            return x.adding(y)
        default:
            return nil
        }
    }
}

/// Every value of a graph (inputs, weights, node inputs and outputs) numbered, and each node's
/// inputs and outputs by number (-1: an optional input or output left out).
struct ValueNumbers {
    let names: [String]
    let ids: [String: Int]
    let inputs: [[Int]]
    let outputs: [[Int]]

    init(_ graph: ONNXGraph, inputs: [String], constants: [String], outputs: [String]) {
        var names: [String] = []
        var ids: [String: Int] = [:]
        func number(_ name: String) -> Int {
            guard !name.isEmpty else { return -1 }
            if let id = ids[name] { return id }
            ids[name] = names.count
            names.append(name)
            return names.count - 1
        }
        for name in inputs + constants { _ = number(name) }
        self.inputs = graph.nodes.map { $0.inputs.map(number) }
        self.outputs = graph.nodes.map { $0.outputs.map(number) }
        for name in outputs { _ = number(name) }
        (self.names, self.ids) = (names, ids)
    }
}

/// `ONNXProgram.liveValues(at:)` as found, by cut: one table for a program and its masked
/// copies (the same graph), read by every image group's run.
final class LiveValuesByCut: @unchecked Sendable {
    let lock = NSLock()
    var found: [Int: [String]] = [:]
}

/// A residual Add (node index) reading a convolution's `value`, and the Relu that alone reads
/// the Add's output, if any.
struct Residual {
    let add: Int
    let value: String
    let relu: Int?
}

/// The range a Relu ([0, ∞)) or a Clip with constant bounds clamps to.
struct Clamp: Equatable {
    let low, high: Float

    init(low: Float, high: Float) { (self.low, self.high) = (low, high) }

    init?(_ node: ONNXNode, constants: [String: ONNXValue]) {
        switch node.opType {
        case "Relu": (low, high) = (0, .infinity)
        case "Clip":
            func bound(_ i: Int, _ attribute: String, _ fallback: Float) -> Float? {
                if i < node.inputs.count, !node.inputs[i].isEmpty {
                    guard let v = constants[node.inputs[i]], v.count == 1 else { return nil }
                    return v.floatValues[0]
                }
                if case let .float(f)? = node.attributes[attribute] { return f }
                return node.attributes[attribute] == nil ? fallback : nil
            }
            guard let l = bound(1, "min", -.infinity), let h = bound(2, "max", .infinity), !l.isNaN, !h.isNaN, l <= h else { return nil }
            (low, high) = (l, h)
        default: return nil
        }
    }
}

/// A node about to run: its attributes and the values of its inputs.
struct NodeContext {
    let node: ONNXNode
    let values: [String: ONNXValue]
    let opset: Int64

    var label: String { node.name.isEmpty ? "\(node.opType) -> \(node.outputs.first ?? "")" : node.name }

    func error(_ problem: String) -> ONNXError { .node(label, "\(node.opType): \(problem)") }

    var inputCount: Int { node.inputs.count }

    func input(_ i: Int) throws -> ONNXValue {
        guard let v = try optionalInput(i) else { throw error("input \(i) is missing") }
        return v
    }

    func optionalInput(_ i: Int) throws -> ONNXValue? {
        guard i < node.inputs.count, !node.inputs[i].isEmpty else { return nil }
        guard let v = values[node.inputs[i]] else { throw error("input '\(node.inputs[i])' has no value") }
        return v
    }

    func floats(_ i: Int) throws -> ([Int], [Float]) {
        let v = try input(i)
        guard case let .floats(s, x) = v else { throw error("input \(i) must be a float tensor") }
        return (s, x)
    }

    /// The single value of a scalar (or one-element) input.
    func scalar(_ v: ONNXValue) throws -> Float {
        guard v.count == 1 else { throw error("expected a scalar, got shape \(v.shape)") }
        return v.floatValues[0]
    }

    func ints(of v: ONNXValue) throws -> [Int64] {
        guard let i = v.intValues else { throw error("expected integers") }
        return i
    }

    func float(_ name: String, default value: Float) throws -> Float {
        switch node.attributes[name] {
        case nil: return value
        case let .float(f)?: return f
        case let .int(i)?: return Float(i)
        default: throw error("attribute \(name) is not a number")
        }
    }

    func int(_ name: String, default value: Int64) throws -> Int64 {
        switch node.attributes[name] {
        case nil: return value
        case let .int(i)?: return i
        default: throw error("attribute \(name) is not an integer")
        }
    }

    func intList(_ name: String) throws -> [Int64]? {
        switch node.attributes[name] {
        case nil: return nil
        case let .ints(v)?: return v
        case let .int(i)?: return [i]
        default: throw error("attribute \(name) is not a list of integers")
        }
    }

    func string(_ name: String, default value: String) throws -> String {
        switch node.attributes[name] {
        case nil: return value
        case let .string(s)?: return s
        default: throw error("attribute \(name) is not a string")
        }
    }

    /// A list of sizes (kernel, strides, pads): each in 0...limit.
    func sizes(_ name: String, count: Int, default value: Int, limit: Int = 1 << 20) throws -> [Int] {
        guard let list = try intList(name) else { return Array(repeating: value, count: count) }
        guard list.count == count, list.allSatisfy({ (0...Int64(limit)).contains($0) }) else {
            throw error("attribute \(name) \(list) is not \(count) sizes")
        }
        return list.map(Int.init)
    }
}

/// The operators, by name.
enum ONNXOperators {
    /// Dropout at inference: the input unchanged, and a mask of ones when asked for. A training
    /// mode (input 2, opset 12 and up) that would drop anything is refused: it draws at random.
    static func dropout(_ n: NodeContext) throws -> [ONNXValue] {
        let x = try n.input(0)
        if let training = try n.optionalInput(2), try n.scalar(training) != 0 {
            let ratio = try n.optionalInput(1).map { try n.scalar($0) } ?? 0.5
            guard ratio == 0 else { throw n.error("training mode drops values at random; export the network in eval mode") }
        }
        return [x, .ints(x.shape, Array(repeating: 1, count: x.count))]
    }

    static func run(_ n: NodeContext) throws -> [ONNXValue] {
        let op = n.node.opType
        if op == "Dropout" { return try dropout(n) }
        if let f = try unary(op, n) {
            let x = try n.input(0)
            if op == "Identity", case .ints = x { return [x] }
            return [.floats(x.shape, x.floatValues.map(f))]
        }
        switch op {
        case "Add", "Sub", "Mul", "Div", "Pow", "PRelu": return [try binary(op, try n.input(0), try n.input(1), node: n)]
        case "Sum", "Max", "Min", "Mean":
            var acc = try n.input(0)
            for i in 1..<max(n.inputCount, 1) { acc = try binary(op == "Mean" ? "Sum" : op, acc, try n.input(i), node: n) }
            if op == "Mean" { acc = .floats(acc.shape, acc.floatValues.map { $0 / Float(n.inputCount) }) }
            return [acc]
        case "Clip": return [try clip(n)]
        case "Conv": return [try convolution(n)]
        case "ConvTranspose": return [try transposedConvolution(n)]
        case "BatchNormalization": return [try batchNorm(n)]
        case "LayerNormalization": return try layerNorm(n)
        case "LRN": return [try localResponseNorm(n)]
        case "MaxPool", "AveragePool": return [try pool(n, max: op == "MaxPool")]
        case "GlobalAveragePool", "GlobalMaxPool": return [try globalPool(n, max: op == "GlobalMaxPool")]
        case "ReduceMean", "ReduceSum", "ReduceMax": return [try reduce(n)]
        case "Gemm": return [try gemm(n)]
        case "MatMul": return [try matMul(n)]
        case "Softmax", "LogSoftmax": return [try softmax(n, log: op == "LogSoftmax")]
        default: return try shapeOperator(op, n)
        }
    }
}

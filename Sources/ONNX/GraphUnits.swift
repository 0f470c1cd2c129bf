import Foundation

/// A maskable unit of an imported graph, named as the PyTorch module it came from.
public struct GraphUnit: Equatable, Sendable {
    public enum Kind: String, Sendable, Codable {
        /// A Conv or ConvTranspose with a weight.
        case conv
        /// A Gemm or MatMul with a weight.
        case linear
        /// A residual merge: an Add or Sum of computed values, one of them the shortcut.
        case branch
    }

    public let name: String
    public let kind: Kind
    /// The operator (Conv, Gemm, MatMul, Add, ...).
    public let op: String
    /// The nodes it acts on: every consumer of its weight, or the merge.
    public let nodes: [Int]
    /// The weight (an initializer) of a conv or linear unit.
    public let weight: String?
    /// Its bias, when the node has one.
    public let bias: String?
    public let parameters: Int
    /// A branch unit: the merge's input that is the shortcut.
    public let shortcut: Int?
    /// The weight's axis of output channels or units (what a filter is, for structured pruning):
    /// 0 for Conv and PyTorch's Linear (Gemm with transB), 1 for ConvTranspose and MatMul.
    public var outputAxis = 0
    /// Inputs per output as PyTorch counts them for its default initialisation
    /// (`weight[0].numel()` for convolutions, in-features for linear maps).
    public var fanIn = 1
}

/// Units from a graph. Each Conv, ConvTranspose, Gemm and MatMul with a weight is a unit named by
/// the module path the file carries: the weight's name (`layer1.0.conv1.weight`, the default
/// exporter's), else the node's scope (`/layer1/layer1.0/conv1/Conv`, the TorchScript exporter's),
/// else the node's name. A weight shared by several nodes is one unit. Each Add or Sum of two or
/// more computed values is a branch unit named by the scope it happens in (`layer1.0`,
/// `features.3`): its shortcut is the input that passed through fewer weighted layers. Only values
/// made from the images count: the TorchScript exporter's shape arithmetic (`Shape`, `Gather`,
/// `Add` of a channel count, as in ShuffleNet's `chunk`) is no merge.
enum GraphUnits {
    static func find(_ graph: ONNXGraph, constants: [String: ONNXValue]) -> [GraphUnit] {
        // Which node makes each value, and through how many weighted nodes each value came.
        var producer: [String: Int] = [:]
        var depth: [String: Int] = [:]
        var fromImages = Set(graph.inputs.map(\.name).filter { constants[$0] == nil })
        for (i, node) in graph.nodes.enumerated() {
            if !["Shape", "Size", "ConstantOfShape"].contains(node.opType), node.inputs.contains(where: fromImages.contains) {
                fromImages.formUnion(node.outputs.filter { !$0.isEmpty })
            }
            let weighted = weightInput(of: node, graph: graph, producer: producer, constants: constants) != nil
            let d = node.inputs.compactMap { depth[$0] }.max() ?? 0
            for out in node.outputs where !out.isEmpty {
                producer[out] = i
                depth[out] = d + (weighted ? 1 : 0)
            }
        }
        var units: [GraphUnit] = []
        var byWeight: [String: Int] = [:]
        var taken: [String: Int] = [:]
        func unique(_ name: String) -> String {
            taken[name, default: 0] += 1
            return taken[name]! == 1 ? name : "\(name)#\(taken[name]!)"
        }
        for (i, node) in graph.nodes.enumerated() {
            if let (weight, transposes) = weightSource(of: node, graph: graph, producer: producer, constants: constants) {
                if let existing = byWeight[weight] {
                    let u = units[existing]
                    var shared = GraphUnit(name: u.name, kind: u.kind, op: u.op, nodes: u.nodes + [i], weight: u.weight, bias: u.bias,
                                           parameters: u.parameters, shortcut: nil)
                    (shared.outputAxis, shared.fanIn) = (u.outputAxis, u.fanIn)
                    units[existing] = shared
                    continue
                }
                let biasName = biasInput(of: node, constants: constants)
                let count = (constants[weight]?.count ?? 0) + (biasName.flatMap { constants[$0]?.count } ?? 0)
                let kind: GraphUnit.Kind = node.opType.hasPrefix("Conv") ? .conv : .linear
                byWeight[weight] = units.count
                var unit = GraphUnit(name: unique(name(of: node, weight: weight)), kind: kind, op: node.opType, nodes: [i], weight: weight,
                                     bias: biasName, parameters: count, shortcut: nil)
                let shape = constants[weight]?.shape ?? []
                switch node.opType {
                case "Conv": unit.outputAxis = 0
                case "ConvTranspose": unit.outputAxis = 1
                default:
                    // As the node reads it, B is (K, N) unless Gemm's transB says (N, K); each
                    // 2-D Transpose between the weight and the node swaps the two.
                    let transB: Bool = { if node.opType == "Gemm", case .int(1)? = node.attributes["transB"] { return true } else { return false } }()
                    unit.outputAxis = ((transB ? 0 : 1) + transposes) % 2
                }
                if shape.count >= 2, unit.outputAxis < shape.count, shape[unit.outputAxis] > 0 {
                    unit.fanIn = max(1, kind == .conv ? shape.dropFirst().reduce(1, *) : shape.reduce(1, *) / shape[unit.outputAxis])
                } else {
                    unit.outputAxis = 0
                }
                units.append(unit)
            } else if node.opType == "Add" || node.opType == "Sum" {
                let computed = node.inputs.enumerated().filter { !$0.element.isEmpty && constants[$0.element] == nil && fromImages.contains($0.element) }
                guard computed.count >= 2, computed.count == node.inputs.count else { continue }
                let depths = computed.map { depth[$0.element] ?? 0 }
                guard let low = depths.min(), depths.filter({ $0 == low }).count == 1, depths.max()! > low else { continue }
                let shortcut = computed[depths.firstIndex(of: low)!].offset
                units.append(GraphUnit(name: unique(scopePath(of: node) ?? (node.name.isEmpty ? "\(node.opType)_\(i)" : node.name)), kind: .branch,
                                       op: node.opType, nodes: [i], weight: nil, bias: nil, parameters: 0, shortcut: shortcut))
            }
        }
        return units
    }

    /// The initializer a Conv/ConvTranspose/Gemm/MatMul reads as its weight (input 1, through
    /// Identity, Transpose or Cast nodes), or nil.
    static func weightInput(of node: ONNXNode, graph: ONNXGraph, producer: [String: Int], constants: [String: ONNXValue]) -> String? {
        weightSource(of: node, graph: graph, producer: producer, constants: constants)?.name
    }

    /// The weight initializer and how many Transpose nodes lie between it and the node.
    static func weightSource(of node: ONNXNode, graph: ONNXGraph, producer: [String: Int], constants: [String: ONNXValue]) -> (name: String, transposes: Int)? {
        guard ["Conv", "ConvTranspose", "Gemm", "MatMul"].contains(node.opType), node.inputs.count >= 2 else { return nil }
        var name = node.inputs[1]
        var transposes = 0
        for _ in 0..<8 {
            if case .floats? = constants[name] { return (name, transposes) }
            guard let p = producer[name], ["Identity", "Transpose", "Cast"].contains(graph.nodes[p].opType),
                  let source = graph.nodes[p].inputs.first else { return nil }
            if graph.nodes[p].opType == "Transpose" { transposes += 1 }
            name = source
        }
        return nil
    }

    static func biasInput(of node: ONNXNode, constants: [String: ONNXValue]) -> String? {
        guard ["Conv", "ConvTranspose", "Gemm"].contains(node.opType), node.inputs.count >= 3, constants[node.inputs[2]] != nil else { return nil }
        return node.inputs[2]
    }

    /// A weighted node's module path: its weight's name when that is one (`fc.weight` → `fc`),
    /// else its scope, else its node name.
    static func name(of node: ONNXNode, weight: String) -> String {
        if weight.hasSuffix(".weight"), !weight.contains("::"), !weight.hasPrefix("/") { return String(weight.dropLast(".weight".count)) }
        if let scope = scopePath(of: node) { return scope }
        return node.name.isEmpty ? weight : node.name
    }

    /// The module path of the scope a node runs in: from the TorchScript exporter's node name
    /// (`/layer2/layer2.0/downsample/downsample.0/Conv`: the last part is the operator) or the
    /// default exporter's `namespace` (`: Net/layer1: Sequential/layer1.0: BasicBlock/add: aten.add`:
    /// the last part is the operation). A part that extends the previous one (`layer2` then
    /// `layer2.0`) replaces it.
    static func scopePath(of node: ONNXNode) -> String? {
        var parts: [String]
        if let namespace = node.metadata["namespace"] {
            parts = namespace.split(separator: "/").map { String($0.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)[0]).trimmingCharacters(in: .whitespaces) }
        } else if node.name.hasPrefix("/") {
            parts = node.name.split(separator: "/").map(String.init)
        } else {
            return nil
        }
        parts = parts.filter { !$0.isEmpty }
        guard !parts.isEmpty else { return nil }
        parts.removeLast()  // the operator or operation
        var path: [String] = []
        for part in parts {
            if let last = path.last, part.hasPrefix(last + ".") { path[path.count - 1] = part } else { path.append(part) }
        }
        return path.isEmpty ? nil : path.joined(separator: ".")
    }
}

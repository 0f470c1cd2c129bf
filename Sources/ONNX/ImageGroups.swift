import Foundation
import TensorEngine

/// Depth-first evaluation of an imported graph, as the built-in networks' `InferencePlan` does
/// it: each fixed image group (`imageGroups`) goes through every node on one core before the
/// next group starts, so that its activations stay in that core's cache. Node by node over a
/// whole batch, each activation went out to memory and back (a batch of 128 ResNet-20 28x28
/// images has 6.4 MB per stage-1 activation, for 2 MB of L2 per core). Inside a group the
/// engine's kernels take the group as their one image group, so every image meets the same
/// kernel calls as node by node: the results are the same bits.
enum ImageGroups {
    /// The most weight bytes a depth-first part may hold (a core's L2 and its share of L3).
    static let weightBudget = 4 << 20

    /// Per node of `graph`: whether it computes each image of a batch from that image alone
    /// (never reducing, moving or reshaping along the batch axis) with the same arithmetic
    /// whatever the batch size — what a depth-first run needs. Conservative: an operator or
    /// attribute not known to be so says no, and so do Gemm, MatMul and ConvTranspose (BLAS
    /// picks its kernels by matrix size); a Conv is decided at run time by its engine kernel.
    /// Values made from a Shape node (shape arithmetic) are per group by construction.
    static func sameBitsPerGroup(_ graph: ONNXGraph, constants: [String: ONNXValue]) -> [Bool] {
        var fromShape: Set<String> = []
        return graph.nodes.map { node in
            let computed = node.inputs.filter { !$0.isEmpty && constants[$0] == nil }
            if node.opType == "Shape" || node.opType == "Constant" || (!computed.isEmpty && computed.allSatisfy(fromShape.contains)) {
                fromShape.formUnion(node.outputs)
                return true
            }
            return nodeKeepsImagesApart(node, constants: constants)
        }
    }

    private static let elementwise: Set<String> = [
        "Relu", "LeakyRelu", "PRelu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Gelu", "Tanh", "Elu", "Selu", "Softplus", "Neg",
        "Abs", "Exp", "Sqrt", "Reciprocal", "Floor", "Ceil", "Erf", "Add", "Sub", "Mul", "Div", "Pow", "Sum", "Max", "Min",
        "Mean", "Identity", "Dropout", "Cast", "Conv", "BatchNormalization", "LRN", "MaxPool", "AveragePool",
        "GlobalAveragePool", "GlobalMaxPool",
    ]

    static func nodeKeepsImagesApart(_ node: ONNXNode, constants: [String: ONNXValue]) -> Bool {
        func int(_ name: String) -> Int64? { if case let .int(v)? = node.attributes[name] { return v } else { return nil } }
        func ints(_ name: String, input: Int) -> [Int64]? {
            if input < node.inputs.count, !node.inputs[input].isEmpty { return constants[node.inputs[input]]?.intValues }
            if case let .ints(v)? = node.attributes[name] { return v }
            return nil
        }
        switch node.opType {
        case let op where elementwise.contains(op):
            // A constant operand broadcast along the batch axis would differ between a group and
            // the batch: only constants without a batch-sized leading axis.
            return node.opType == "BatchNormalization" ? int("training_mode") != 1 : node.inputs.allSatisfy { name in
                guard let c = constants[name] else { return true }
                return c.shape.count < 4 || c.shape[0] == 1 || ["Conv", "PRelu"].contains(node.opType)
            }
        case "Flatten": return (int("axis") ?? 1) >= 1
        case "Softmax", "LogSoftmax": return (int("axis") ?? 1) != 0
        case "ReduceMean", "ReduceSum", "ReduceMax":
            // Axes -1 and -2 are taken as a 4-D activation's spatial axes (exporters write
            // `x.mean((-1, -2))` so); a run whose values do not keep the batch first is redone node
            // by node.
            guard let axes = ints("axes", input: 1), !axes.isEmpty else { return false }
            return axes.allSatisfy { $0 >= 1 || $0 == -1 || $0 == -2 }
        case "Transpose": return ints("perm", input: 99).map { $0.first == 0 } ?? false
        case "Concat", "Split": return (int("axis") ?? 0) >= 1
        case "Squeeze", "Unsqueeze": return ints("axes", input: 1).map { !$0.isEmpty && $0.allSatisfy { $0 >= 1 } } ?? false
        case "Slice":
            guard let axes = ints("axes", input: 3) else { return false }
            return axes.allSatisfy { $0 >= 1 }
        case "Pad":
            guard let pads = ints("pads", input: 1), pads.count >= 2, pads.count % 2 == 0 else { return false }
            return pads[0] == 0 && pads[pads.count / 2] == 0
        case "Reshape":
            // A batch-free target (its first entry 0: keep, or -1: whatever is left) or one
            // computed from a Shape node; a constant one naming the batch fits one size only.
            guard node.inputs.count >= 2, let target = constants[node.inputs[1]]?.intValues else { return true }
            return target.first == 0 || target.first == -1
        default: return false
        }
    }
}

extension ONNXProgram {
    /// Where a depth-first part of a run ended: the node to go on from, the values live there for
    /// the batch's `batch` images, and which of them hold one image that stands for all
    /// (`ImageFreeValues`: every group marks the same ones).
    struct DepthFirstPart {
        let end: Int
        let live: [String: ONNXValue]
        let single: Set<String>
        let batch: Int
    }

    /// Runs nodes `cut` up to the first node that is not `groupSafe` (or a Conv without a fused
    /// engine kernel) image group by image group on every core, and returns that node's index
    /// and the values live there for the whole batch; nil when there is nothing to gain (one
    /// group, fewer than two such nodes, weights beyond `weightBudget`) or the values do not all
    /// carry the batch first (a group that fails is run again node by node, which says what is
    /// wrong).
    func imageGroupByImageGroup(_ values: [String: ONNXValue], from cut: Int) throws -> DepthFirstPart? {
        guard !Parallel.isSerial, case let .floats(first, _)? = values.first?.value, let n = first.first, n > 1,
              values.values.allSatisfy({ if case let .floats(s, _) = $0 { return s.first == n } else { return false } }) else { return nil }
        let groups = imageGroups(n)
        let kernels = engineKernels()  // built once, before the groups share them
        let nodes = model.graph.nodes
        var end = cut
        while end < nodes.count, groupSafe[end], nodes[end].opType != "Conv" || kernels[end]?.runsFused == true { end += 1 }
        // Each group's pass re-reads every weight of the part: worth it while they stay in a
        // core's cache (measured, 2-core AVX-512, batch 128: ResNet-20's 1.1 MB of weights 4,965
        // against 3,600 images/s node by node; torchvision ResNet-18's 45 MB 3,546 against 4,094).
        let weightBytes = nodes[cut..<end].reduce(0) { $0 + ($1.opType == "Conv" && $1.inputs.count > 1 ? (constants[$1.inputs[1]]?.count ?? 0) * 4 : 0) }
        guard groups.count > 1, end - cut >= 2, weightBytes <= ImageGroups.weightBudget else { return nil }
        var results = [Result<(values: [String: ONNXValue], single: Set<String>), Error>?](repeating: nil, count: groups.count)
        let lock = NSLock()
        Parallel.forEach(groups.count) { g in
            let r = groups[g]
            let part = values.mapValues { $0.images(r, of: n) }
            let result = Parallel.serially { Result { try self.runLayerByLayer(part, from: cut, until: end, observe: nil) } }
            lock.withLock { results[g] = result }
        }
        var parts: [[String: ONNXValue]] = []
        var single: Set<String>?
        for result in results {
            guard case let .success(out)? = result, single == nil || single == out.single else { return nil }
            parts.append(out.values)
            single = out.single
        }
        var live: [String: ONNXValue] = [:]
        for name in parts[0].keys {
            // One image standing for all: the first group's (they differ only in values whose
            // shape alone matters).
            if single?.contains(name) == true {
                live[name] = parts[0][name]
                continue
            }
            // Activations are joined along the batch; anything else (shape arithmetic, constants)
            // must be the same in every group.
            if parts.indices.allSatisfy({ parts[$0][name]?.shape.first == groups[$0].count }), case let .floats(s, _)? = parts[0][name] {
                var joined: [Float] = []
                joined.reserveCapacity(n * s.dropFirst().reduce(1, *))
                for part in parts {
                    guard case let .floats(t, v)? = part[name], t.dropFirst() == s.dropFirst() else { return nil }
                    joined += v
                }
                live[name] = .floats([n] + s.dropFirst(), joined)
            } else {
                guard parts.allSatisfy({ $0[name] == parts[0][name] }) else { return nil }
                live[name] = parts[0][name]
            }
        }
        return DepthFirstPart(end: end, live: live, single: single ?? [], batch: n)
    }
}

extension ONNXValue {
    /// Images `r` of a float batch of `n` along the first axis.
    func images(_ r: Range<Int>, of n: Int) -> ONNXValue {
        guard case let .floats(shape, v) = self else { return self }
        let per = v.count / max(n, 1)
        return .floats([r.count] + shape.dropFirst(), Array(v[(r.lowerBound * per)..<(r.upperBound * per)]))
    }
}

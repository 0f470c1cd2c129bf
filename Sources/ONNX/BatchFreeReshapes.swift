import Foundation

/// Files exported with a fixed batch: `torch.onnx.export(model, (x,), "net.onnx", dynamo=True)`
/// with one example image and no `dynamic_shapes` declares the input as [1, C, H, W], and the
/// exporter writes each `x.view(x.size(0), -1)` or `torch.flatten(x, 1)` as a Reshape to a
/// constant [1, 512] (ShuffleNet's channel shuffle to [1, 2, 24, 8, 8]). Such a file holds one
/// image's computation; run on a batch, those Reshapes would fail, or with a -1 quietly mix
/// the images. A Reshape whose input carries the batch on its first axis and whose constant
/// target begins with the traced batch is rewritten at load to keep its input's first axis
/// (target 0, `allowzero` 0): what the exporter writes for a batch-free file.
enum BatchFreeReshapes {
    /// Rewrites `graph`'s Reshapes as above, adding the new targets to `constants` (and as
    /// initializers, by name and shape); returns how many it rewrote. `tracedBatch` is the
    /// graph input's declared first dimension.
    @discardableResult
    static func rewrite(_ graph: inout ONNXGraph, constants: inout [String: ONNXValue], input: String, tracedBatch: Int64,
                        opset: Int64) -> Int {
        var known = constants
        var batchFirst: Set<String> = [input]
        var rewritten = 0
        for i in graph.nodes.indices {
            let node = graph.nodes[i]
            if node.opType == "Constant", node.inputs.isEmpty, node.outputs.count == 1,
               let value = try? ONNXOperators.run(NodeContext(node: node, values: [:], opset: opset)).first {
                known[node.outputs[0]] = value
                continue
            }
            guard node.inputs.first.map(batchFirst.contains) == true else { continue }
            if node.opType == "Reshape", node.inputs.count >= 2, let target = known[node.inputs[1]]?.intValues, let first = target.first {
                let allowZero: Bool = { if case .int(1)? = node.attributes["allowzero"] { return true } else { return false } }()
                if first == tracedBatch, !(allowZero && target.dropFirst().contains(0)) {
                    let name = uniqueName("\(node.inputs[1])::batch_free", in: known)
                    let freed = [0] + target.dropFirst()
                    constants[name] = .ints([freed.count], freed)
                    known[name] = constants[name]
                    var proto = ONNXTensorProto()
                    (proto.name, proto.dims, proto.dataType) = (name, [Int64(freed.count)], 7)
                    graph.initializers.append(proto)
                    graph.nodes[i].inputs[1] = name
                    graph.nodes[i].attributes["allowzero"] = .int(0)
                    rewritten += 1
                } else if first != 0 && first != -1 {
                    continue
                }
                batchFirst.formUnion(node.outputs.prefix(1))
            } else if keepsBatchFirst(node, constants: known) {
                batchFirst.formUnion(node.outputs.filter { !$0.isEmpty })
            }
        }
        return rewritten
    }

    /// Whether a node's outputs keep its first input's first axis as theirs: what keeps images
    /// apart, and the linear maps (a Gemm's or MatMul's rows).
    private static func keepsBatchFirst(_ node: ONNXNode, constants: [String: ONNXValue]) -> Bool {
        switch node.opType {
        case "Gemm": if case .int(1)? = node.attributes["transA"] { return false } else { return true }
        case "MatMul": return true
        default: return ImageGroups.nodeKeepsImagesApart(node, constants: constants)
        }
    }

    private static func uniqueName(_ base: String, in taken: [String: ONNXValue]) -> String {
        var name = base, k = 1
        while taken[name] != nil { k += 1; name = "\(base)#\(k)" }
        return name
    }
}

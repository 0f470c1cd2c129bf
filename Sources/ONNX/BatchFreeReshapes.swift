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
    /// initializers, by name and shape). `tracedBatch` is the graph input's declared first
    /// dimension.
    /// Returns the Reshapes it could not follow the batch to: a node reading the images, with a
    /// constant target that begins with the traced batch, after an operator that moves the
    /// batch axis (a Transpose putting it last, as the default exporter writes an adaptive pool
    /// that does not divide its input). Such a file runs on its traced batch only.
    static func rewrite(_ graph: inout ONNXGraph, constants: inout [String: ONNXValue], input: String, tracedBatch: Int64,
                        opset: Int64) -> [ONNXNode] {
        var known = constants
        var batchFirst: Set<String> = [input], fromImages: Set<String> = [input]
        var unfollowed: [ONNXNode] = []
        for i in graph.nodes.indices {
            let node = graph.nodes[i]
            if node.opType == "Constant", node.inputs.isEmpty, node.outputs.count == 1,
               let value = try? ONNXOperators.run(NodeContext(node: node, values: [:], opset: opset)).first {
                known[node.outputs[0]] = value
                continue
            }
            if !["Shape", "Size", "ConstantOfShape"].contains(node.opType), node.inputs.contains(where: fromImages.contains) {
                fromImages.formUnion(node.outputs.filter { !$0.isEmpty })
            }
            guard node.inputs.first.map(batchFirst.contains) == true else {
                if node.opType == "Reshape", node.inputs.count >= 2, fromImages.contains(node.inputs[0]),
                   known[node.inputs[1]]?.intValues?.first == tracedBatch {
                    unfollowed.append(node)
                }
                continue
            }
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
                } else if first != 0 && first != -1 {
                    continue
                }
                batchFirst.formUnion(node.outputs.prefix(1))
            } else if keepsBatchFirst(node, constants: known) {
                batchFirst.formUnion(node.outputs.filter { !$0.isEmpty })
            }
        }
        return unfollowed
    }

    /// Whether a node's outputs keep its first input's first axis as theirs: what keeps images
    /// apart, and the linear maps (a Gemm's or MatMul's rows).
    private static func keepsBatchFirst(_ node: ONNXNode, constants: [String: ONNXValue]) -> Bool {
        switch node.opType {
        case "Gemm": if case .int(1)? = node.attributes["transA"] { return false } else { return true }
        case "MatMul": return true
        case "LayerNormalization": if case .int(0)? = node.attributes["axis"] { return false } else { return true }
        default: return ImageGroups.nodeKeepsImagesApart(node, constants: constants)
        }
    }

    private static func uniqueName(_ base: String, in taken: [String: ONNXValue]) -> String {
        var name = base, k = 1
        while taken[name] != nil { k += 1; name = "\(base)#\(k)" }
        return name
    }
}

import Foundation
import TensorEngine

/// What a masked graph need not compute image by image. A Conv or Gemm whose weight is all
/// zeros (zeroKernel) gives its bias whatever its input: its output is the same for every image
/// of a batch, and so is the output of every per-image node that reads only such values (the
/// rest of a residual branch after a zeroed convolution; the whole network after a zeroed
/// stem). A run computes those on one image and repeats the result where a value that differs
/// per image meets it. The nodes that only make such a node's ignored input run on one image
/// too (its shape is all that is needed: the first convolution of a block whose second is
/// zeroed), and those whose outputs nothing needs, not at all (the branch of a zeroBranch merge).
///
/// The outputs are those of a run that computes everything, with one difference: a zeroed
/// weight's output is its bias even where its input is NaN or infinite (a full run multiplies
/// those by zero into NaN). On a ResNet-18 at 28x28 this skips about a fifth of a zeroing
/// sweep's work.
struct ImageFreeValues {
    /// Nodes whose output does not depend on their first (data) input's values.
    let ignoringInput: Set<Int>
    /// Nodes whose outputs matter only by their shape (they lead only to ignored inputs).
    let shapeOnly: Set<Int>
    /// Nodes no graph output needs.
    let unneeded: Set<Int>

    init(_ graph: ONNXGraph, constants: [String: ONNXValue], aliases: [String: String], outputs: [String], passThrough: [Int: Int]) {
        func isZero(_ name: String) -> Bool {
            guard case let .floats(_, v)? = constants[aliases[name] ?? name] else { return false }
            return !v.isEmpty && v.allSatisfy { $0 == 0 }
        }
        var ignoring = Set<Int>()
        for (i, node) in graph.nodes.enumerated() where node.inputs.count >= 2 && node.outputs.count == 1 {
            switch node.opType {
            case "Conv":
                if isZero(node.inputs[1]) { ignoring.insert(i) }
            case "Gemm":
                // Rows are images only when A is not transposed.
                let transA: Int64 = { if case let .int(t)? = node.attributes["transA"] { return t } else { return 0 } }()
                if transA == 0, isZero(node.inputs[1]) { ignoring.insert(i) }
            default: break
            }
        }
        ignoringInput = ignoring
        // Backwards from the outputs: every reader of a value comes before its maker.
        var needed = Set(outputs), shapeNeeded = Set<String>()
        var shapeOnly = Set<Int>(), unneeded = Set<Int>()
        for (i, node) in graph.nodes.enumerated().reversed() {
            let inputs = node.inputs.filter { !$0.isEmpty }
            if node.outputs.contains(where: needed.contains) {
                if let kept = passThrough[i], kept < node.inputs.count {
                    needed.insert(node.inputs[kept])
                } else if ignoring.contains(i) {
                    needed.formUnion(node.inputs.dropFirst().filter { !$0.isEmpty })
                    shapeNeeded.insert(node.inputs[0])
                } else {
                    needed.formUnion(inputs)
                }
            } else if node.outputs.contains(where: shapeNeeded.contains) {
                shapeOnly.insert(i)
                shapeNeeded.formUnion(inputs)
            } else {
                unneeded.insert(i)
            }
        }
        (self.shapeOnly, self.unneeded) = (shapeOnly, unneeded)
    }
}

extension LayoutTensor {
    /// `count` copies of this one-image activation, as a batch.
    func repeated(_ count: Int) -> LayoutTensor {
        precondition(shape.first == 1, "repeating an activation of \(shape)")
        let y = LayoutTensor.uninitialized(images: count, like: self)
        for i in 0..<count { y.write(self, at: i) }
        return y
    }
}

extension ONNXValue {
    /// `count` copies of this one-image float value, as a batch.
    func repeated(_ count: Int) -> ONNXValue {
        guard case let .floats(shape, v) = self, shape.first == 1 else { return self }
        var out: [Float] = []
        out.reserveCapacity(v.count * count)
        for _ in 0..<count { out += v }
        return .floats([count] + shape.dropFirst(), out)
    }
}

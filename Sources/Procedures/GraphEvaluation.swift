import Datasets
import Foundation
import ONNX
import TensorEngine

/// Imported ONNX graphs on a dataset: the same figures as `Evaluation.run` gives a built-in
/// network (accuracy, mean cross-entropy, each image's hit), in batches.
public enum GraphEvaluation {
    /// Why `program` cannot be evaluated on `data` (its input or its classes differ), or nil.
    public static func mismatch(_ program: ONNXProgram, _ data: Dataset) -> String? {
        guard program.inputNames.count == 1, program.outputNames.count >= 1 else {
            return "the graph has \(program.inputNames.count) inputs and \(program.outputNames.count) outputs; layersweep evaluates image classifiers (one input, logits out)"
        }
        if let shape = program.inputShape, shape.count == 4, Array(shape.dropFirst()).allSatisfy({ $0 != nil }),
           shape.dropFirst().map({ $0! }) != data.shape {
            return "the graph takes \(shape.dropFirst().map { String($0!) }.joined(separator: "x")) inputs; \(data.name) has \(data.shape.map(String.init).joined(separator: "x"))"
        }
        return nil
    }

    public static func run(_ program: ONNXProgram, on data: Dataset, batchSize: Int = 256) throws -> Evaluation {
        try score(program, on: data, batches: data.batchIndices(batchSize: batchSize, shuffleSeed: nil, epoch: 0)) { _, x in
            try program.run([program.inputNames[0]: x])
        }
    }

    /// Accuracy, loss and hits of the outputs `forward` gives for each batch (its index and
    /// images), in batch order.
    static func score(_ program: ONNXProgram, on data: Dataset, batches: [ArraySlice<Int>],
                      forward: (Int, ONNXValue) throws -> [String: ONNXValue]) throws -> Evaluation {
        if let problem = mismatch(program, data) { throw ONNXError.model(problem) }
        var lossSum = 0.0, correct = 0
        var hits: [Bool] = []
        hits.reserveCapacity(data.count)
        for (b, indices) in batches.enumerated() {
            let (x, labels) = data.batch(indices)
            let out = try forward(b, .floats(x.shape, x.array))
            guard let logits = out[program.outputNames[0]], logits.shape.count == 2, logits.shape[0] == indices.count else {
                throw ONNXError.model("the graph's output \(program.outputNames[0]) is not one row of logits per image")
            }
            guard logits.shape[1] == data.classes else {
                throw ONNXError.model("the graph gives \(logits.shape[1]) logits per image; \(data.name) has \(data.classes) classes")
            }
            let result = Loss.softmaxCrossEntropy(Tensor(shape: logits.shape, values: logits.floatValues), labels: labels)
            lossSum += Double(result.loss) * Double(indices.count)
            correct += result.correct
            hits += result.hits
        }
        let n = max(data.count, 1)
        return Evaluation(accuracy: Double(correct) / Double(n), loss: lossSum / Double(n), count: data.count, hits: hits)
    }
}

import Foundation

/// A loss value, its gradient with respect to the logits, and how many predictions were right.
public struct LossResult {
    public let loss: Float
    public let gradient: Tensor
    public let correct: Int
    /// Each example's loss, in batch order (a gang sums every member's in this order).
    public var terms: [Double] = []
    /// Whether each example's prediction was right (paired tests compare two networks by it).
    public var hits: [Bool] = []
}

/// Losses on logits of shape (N, classes).
public enum Loss {
    /// Mean softmax cross-entropy against integer labels. `batchCount` is the whole mini-batch's
    /// size when these logits are one gang member's share of it (the mean is over the batch).
    // logits: (N, K), labels: N -> loss, dlogits: (N, K) = (softmax - onehot) / N
    public static func softmaxCrossEntropy(_ logits: Tensor, labels: [Int32], batchCount: Int? = nil) -> LossResult {
        let (n, k) = (logits.shape[0], logits.shape[1])
        precondition(labels.count == n, "\(labels.count) labels for \(n) logits")
        // A label is an index into each row (the gradient is written there): checked, never trusted.
        precondition(labels.allSatisfy { $0 >= 0 && Int($0) < k }, "a label outside 0..<\(k): the network has \(k) classes")
        let grad = Tensor(shape: logits.shape)
        let batch = batchCount ?? n
        var total = 0.0
        var terms = [Double](repeating: 0, count: n)
        var hits = [Bool](repeating: false, count: n)
        var correct = 0
        for i in 0..<n {
            let row = logits.data + i * k
            let g = grad.data + i * k
            let label = Int(labels[i])
            var maxValue = row[0], argmax = 0
            for j in 1..<k where row[j] > maxValue { maxValue = row[j]; argmax = j }
            if argmax == label { correct += 1; hits[i] = true }
            var sum: Float = 0
            for j in 0..<k { let e = Foundation.exp(row[j] - maxValue); g[j] = e; sum += e }
            terms[i] = Double(Foundation.log(sum) + maxValue - row[label])
            total += terms[i]
            let scale = 1 / (sum * Float(batch))
            for j in 0..<k { g[j] *= scale }
            g[label] -= 1 / Float(batch)
        }
        return LossResult(loss: Float(total / Double(max(n, 1))), gradient: grad, correct: correct, terms: terms, hits: hits)
    }

    /// Mean squared error between logits and target logits (PyTorch's `MSELoss`: mean over all
    /// N·K elements), the distillation loss of Ba & Caruana and Urban et al.
    // logits, targets: (N, K) -> loss, dlogits = 2 (logits - targets) / (N·K)
    public static func meanSquaredError(_ logits: Tensor, targets: Tensor, labels: [Int32]? = nil) -> LossResult {
        precondition(logits.shape == targets.shape, "MSE: \(logits.shape) vs \(targets.shape)")
        let count = logits.count
        let grad = Tensor(shape: logits.shape)
        var total = 0.0
        for i in 0..<count {
            let d = logits.data[i] - targets.data[i]
            total += Double(d * d)
            grad.data[i] = 2 * d / Float(count)
        }
        var correct = 0
        if let labels {
            precondition(labels.count == logits.shape[0] && labels.allSatisfy { $0 >= 0 && Int($0) < logits.shape[1] },
                         "labels do not index the logits' \(logits.shape[1]) classes")
            let k = logits.shape[1]
            for i in 0..<logits.shape[0] {
                let row = logits.data + i * k
                var best = 0
                for j in 1..<k where row[j] > row[best] { best = j }
                if best == Int(labels[i]) { correct += 1 }
            }
        }
        return LossResult(loss: Float(total / Double(count)), gradient: grad, correct: correct)
    }
}

import Datasets
import Foundation
import Models
import SweepFile
import TensorEngine
import Procedures
import SweepCore

/// Distilling a teacher into small students (Urban et al. 2017): the teacher ensemble's logits
/// are computed once per dataset; students regress them with an L2 loss.
public enum Distillation {
    /// The mean logits of `teachers` (inference mode) for every example of `data`, (N, classes).
    public static func ensembleLogits(_ teachers: [Network], on data: Dataset, batchSize: Int) -> Tensor {
        let classes = data.classes
        let out = Tensor(shape: [data.count, classes])
        let scale = 1 / Float(teachers.count)
        for indices in data.batchIndices(batchSize: batchSize, shuffleSeed: nil, epoch: 0) {
            let (x, _) = data.batch(indices)
            for teacher in teachers {
                let logits = teacher.forward(x, training: false)
                for (row, i) in indices.enumerated() {
                    for k in 0..<classes { out.data[i * classes + k] += scale * logits.data[row * classes + k] }
                }
            }
        }
        return out
    }

    /// The L2 loss on the teacher's logits for the batch's examples (accuracy still counted on labels).
    public static func logitLoss(teacher: Tensor) -> Training.LossFunction {
        let k = teacher.shape[1]
        return { logits, labels, indices in
            let targets = Tensor.uninitialized(logits.shape)
            for (row, i) in indices.enumerated() { (targets.data + row * k).update(from: teacher.data + i * k, count: k) }
            return Loss.meanSquaredError(logits, targets: targets, labels: labels)
        }
    }

    /// The student with `convLayers` conv layers whose parameter count is closest to `budget`:
    /// its model name (width to two decimals) and parameter count.
    public static func student(convLayers: Int, budget: Int, inputShape: [Int], classes: Int) -> (name: String, parameters: Int) {
        func count(_ hundredths: Int) -> Int {
            Network.studentParameterCount(convLayers: convLayers, width: Double(hundredths) / 100, inputShape: inputShape, classes: classes)
        }
        // Parameter counts grow with the width: bisect on hundredths of a width unit.
        var (lo, hi) = (1, 2000)
        while lo < hi {
            let mid = (lo + hi) / 2
            if count(mid) < budget { lo = mid + 1 } else { hi = mid }
        }
        let best = lo > 1 && abs(count(lo - 1) - budget) <= abs(count(lo) - budget) ? lo - 1 : lo
        let width = String(format: "%g", Double(best) / 100)
        return ("student-c\(convLayers)-w\(width)", count(best))
    }
}

import Datasets
import Models
import Procedures
import Studies
import TensorEngine
import StudyTestSupport
import XCTest

/// Students sized to budgets, and the teacher signal they learn from.
final class DistillationTests: StudyTestCase {
    override func setUp() { Parallel.configure(threads: 2) }

    func testStudentParameterCountsMatchTheBuiltNetworksAndBudgets() throws {
        for conv in 0...4 {
            for budget in [20_000, 100_000, 400_000] {
                let s = Distillation.student(convLayers: conv, budget: budget, inputShape: [1, 28, 28], classes: 10)
                let net = Network.build(try ModelSpec(name: s.name, inputShape: [1, 28, 28], classes: 10), seed: 0)
                XCTAssertEqual(net.parameterCount, s.parameters, s.name)
                // Channel counts are whole numbers: at small widths one more channel moves the count by up to ~15%.
                XCTAssertEqual(Double(s.parameters), Double(budget), accuracy: 0.15 * Double(budget), "\(s.name) near \(budget)")
                XCTAssertEqual(net.units.filter { $0.kind == .conv }.count, conv)
            }
        }
    }

    func testEnsembleLogitsAreTheMeanAndTheLossRegressesTheRightRows() throws {
        let data = SyntheticSpec().generate().test.prefix(40)
        let spec = try ModelSpec(name: "fcn-16", inputShape: data.shape, classes: data.classes)
        let (a, b) = (Network.build(spec, seed: 1), Network.build(spec, seed: 2))
        let mean = Distillation.ensembleLogits([a, b], on: data, batchSize: 16)
        let (x, _) = data.batch(Array(0..<40)[...])
        let (la, lb) = (a.forward(x, training: false), b.forward(x, training: false))
        for i in 0..<mean.count { XCTAssertEqual(mean.data[i], (la.data[i] + lb.data[i]) / 2, accuracy: 1e-5) }
        // The loss for rows 5 and 7 targets exactly the teacher's rows 5 and 7.
        let loss = Distillation.logitLoss(teacher: mean)
        let rows = [5, 7]
        let (xb, labels) = data.batch(rows[...])
        let logits = a.forward(xb, training: false)
        let result = loss(logits, labels, rows[...])
        let k = data.classes
        var expected = 0.0
        for (r, i) in rows.enumerated() { for j in 0..<k { let d = Double(logits.data[r * k + j] - mean.data[i * k + j]); expected += d * d } }
        XCTAssertEqual(Double(result.loss), expected / Double(rows.count * k), accuracy: 1e-5)
    }
}

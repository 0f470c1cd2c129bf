import Foundation
import Procedures
@testable import SweepCore
@testable import Studies
import StudyTestSupport
import SweepFile
@testable import SweepPlan
@testable import SweepRecords
import SweepReport
import XCTest

/// The pruning, distillation and reuse sections of report.html, from synthetic results.
final class StudyReportTests: StudyTestCase {
    /// Records for every task of `spec`, with outcomes `fill` makes.
    func input(_ specText: String, fill: (PlannedTask, inout TaskOutcome) -> Void) throws -> ReportInput {
        let plan = try Plan.expand(try SpecLoader.parse(specText, file: "t.yaml"))
        let t0 = Date(timeIntervalSince1970: 1_000_000)
        let records = plan.tasks.enumerated().map { i, task -> TaskRecord in
            var o = TaskOutcome(status: .ok, seconds: 1)
            fill(task, &o)
            return TaskRecord(key: task.key, kind: task.kind, outcome: o, rank: i % 2, host: "n", started: t0.addingTimeInterval(Double(i)),
                              finished: t0.addingTimeInterval(Double(i) + 0.5))
        }
        return ReportInput(plan: plan, records: records)
    }

    func parse(_ html: String) throws -> XMLCollector { XMLCollector.parse(html) }

    func testPruningChartsTableAndMaskGrid() throws {
        let spec = "name: p\nstudy: imp\ndatasets: [synthetic-28]\nmodels: [fcn-64x2-bn]\nseeds: 2\npruning: {rounds: 3, rewind_step: 2}\n"
        let input = try input(spec) { task, o in
            let k = Double((task.payload as? PruningPoint)?.round ?? 0)
            var m = PruningMeasures(remainingFraction: pow(0.7, k), locality: task.kind == .oneShot ? 0.0 : 0.1 * k)
            o.testAccuracy = 0.9 - 0.01 * k * (task.kind == .oneShot ? 2 : 1)
            if k > 0 { m.maskImages = [MaskImage(unit: 3, height: 28, width: 28, pixels: [0, 1, 2, 29, 30])] }
            o.measures = m
        }
        let html = ReportPage.html(input)
        let doc = try parse(html)
        XCTAssertTrue(doc.text.contains("Locality of the first layer's surviving connections"), "the metric is defined")
        let series = doc.attributes.filter { ($0["class"] ?? "").hasPrefix("series") }
        XCTAssertEqual(series.count, 4, "accuracy and locality, IMP and one-shot")
        XCTAssertEqual(series.filter { $0["class"] == "series dashed" }.count, 2, "one-shot dashed")
        // IMP round 3 accuracy: 0.87 at 34.3% of the weights left.
        XCTAssertTrue(doc.text.contains("IMP (iterative) round 3: 34.30% of weights left, test accuracy 0.8700 ± 0.0000 (n=2)"))
        XCTAssertTrue(doc.text.contains("one-shot round 3: 34.30% of weights left, test accuracy 0.8400"))
        XCTAssertEqual(doc.attributes.filter { $0["class"] == "maskgrid" }.count, 3 + 1, "IMP rounds 1, 2, 3 and the last one-shot")
        XCTAssertTrue(html.contains("M0 0h6v2h-6z"), "a run of three pixels is one rectangle")
        XCTAssertTrue(doc.text.contains("unit 3: 5 of 784 pixels"))
        let lines = ProgressText.summary(rows: input.rows, study: IterativePruningStudy.self, statistics: StatisticsSection())
        XCTAssertTrue(lines.contains { $0.contains("round 3: 34.3%  acc 0.8700 / 0.8400") }, "\(lines)")
    }

    func testDistillationLinesPerBudgetWithDashedLabelControl() throws {
        let spec = "name: d\nstudy: distill\ndatasets: [synthetic-28]\nmodels: [resnet8]\nseeds: 2\ndistillation: {conv_layers: [0, 1, 2], budgets: [20000, 60000]}\n"
        let input = try input(spec) { task, o in
            switch task.kind {
            case .logits: o.testAccuracy = 0.95
            case .student:
                let conv = Double(task.model.dropFirst("student-c".count).prefix(1))!
                o.testAccuracy = 0.7 + 0.05 * conv + ((task.payload as? StudentPoint)?.loss == .logits ? 0.02 : 0) + Double(task.seedIndex) * 0.01
                o.measures = StudentMeasures(parameters: (task.payload as? StudentPoint)?.budget)
            default: o.testAccuracy = 0.9
            }
        }
        let doc = try parse(ReportPage.html(input))
        let series = doc.attributes.filter { ($0["class"] ?? "").hasPrefix("series") }
        XCTAssertEqual(series.count, 4, "two budgets × (distilled, labels)")
        XCTAssertEqual(series.filter { $0["class"] == "series dashed" }.count, 2)
        XCTAssertEqual(doc.attributes.filter { $0["class"] == "reference" }.count, 1, "teacher accuracy line")
        XCTAssertTrue(doc.text.contains("teacher 0.9500"))
        XCTAssertTrue(doc.text.contains("logits: accuracy 0.8250 ± 0.0071 (n=2), best 0.8300"), "c2 distilled: mean of 0.82 and 0.83")
        let lines = ProgressText.summary(rows: input.rows, study: DistillationStudy.self, statistics: StatisticsSection())
        XCTAssertTrue(lines.contains { $0.contains("20000 params, labels: c0 0.7050  c1 0.7550  c2 0.8050") }, "\(lines)")
    }

    func testReuseScatterAndReusableTable() throws {
        let spec = """
        name: r
        study: reuse
        datasets: [synthetic-28, {name: inv, base: synthetic-28, transform: invert}]
        models: [resnet8]
        layers: [stem.conv, stage1.block1.conv1, stage3.block1.conv2]
        reuse: {pairs: [{source: synthetic-28, target: inv}], prefixes: [2], modes: [frozen]}
        seeds: 2
        """
        let input = try input(spec) { task, o in
            o.testAccuracy = 0.8
            guard task.kind == .reuse else { return }
            // Early layers reuse well and are close; the last is far and hurts.
            let late = task.unit == "stage3.block1.conv2"
            o.testAccuracy = late ? 0.75 : 0.81
            o.measures = ReuseMeasures(rmse: late ? 0.3 : 0.05)
        }
        let doc = try parse(ReportPage.html(input))
        let points = doc.attributes.filter { $0["class"] == "point" }
        XCTAssertEqual(points.count, 4 + 2, "three layers and one prefix, plus a legend marker for each of the two series")
        XCTAssertTrue(doc.text.contains("stage3.block1.conv2 frozen: gain -0.0500 ± 0.0000 (n=2), RMSE 0.3000"))
        XCTAssertEqual(doc.attributes.filter { $0["class"] == "reusable" }.count, 3, "stem, stage1 conv1 and the prefix are reusable")
        let lines = ProgressText.summary(rows: input.rows, study: ReuseStudy.self, statistics: StatisticsSection())
        XCTAssertTrue(lines[0].contains("3/4 reusable"), "\(lines)")
        XCTAssertTrue(lines[0].contains("corr(gain, RMSE) -1.00"), "\(lines)")
    }
}

import Foundation
import Procedures
import Rendering
import SweepCore
import SweepFile
import SweepRecords

/// The answer to the distillation question for one dataset: student accuracy per (conv layers,
/// budget, loss) over seeds, next to the teacher ensemble's accuracy.
public struct DistillationTable: Sendable {
    public struct Cell: Sendable {
        public let convLayers: Int
        public let budget: Int
        public let loss: String
        public let model: String
        public let parameters: Int?
        public let accuracy: [Double]
    }

    public let dataset: String
    public let teacherAccuracy: Double?
    public let cells: [Cell]

    public static func compute(_ rows: [ResultRow]) -> [DistillationTable] {
        let ok = rows.succeeded.filter { $0.study == .distill }
        return Array(Set(ok.map(\.dataset))).sorted().map { dataset in
            let mine = ok.filter { $0.dataset == dataset }
            let teachers = mine.filter { $0.kind == .logits }.compactMap(\.testAccuracy)
            let students = mine.filter { $0.kind == .student }
            let groups = Dictionary(grouping: students) { "\($0.student?.convLayers ?? -1)|\($0.student?.budget ?? 0)|\($0.mask)" }
            let cells = groups.values.map { r in
                Cell(convLayers: r[0].student?.convLayers ?? -1, budget: r[0].student?.budget ?? 0, loss: r[0].mask, model: r[0].model,
                     parameters: r[0].student?.parameters, accuracy: r.compactMap(\.testAccuracy))
            }.sorted { ($0.budget, $0.loss, $0.convLayers) < ($1.budget, $1.loss, $1.convLayers) }
            return DistillationTable(dataset: dataset, teacherAccuracy: teachers.isEmpty ? nil : SeedStatistics(teachers).mean, cells: cells)
        }
    }

    /// Terminal lines: per budget and loss, mean accuracy by conv layers.
    /// The finding in one sentence: the best student distilled and trained on labels, at the largest budget.
    public var answer: String {
        guard let budget = cells.map(\.budget).max() else { return "\(dataset): no students yet." }
        func best(_ loss: String) -> Cell? { cells.filter { $0.budget == budget && $0.loss == loss }.max { SeedStatistics($0.accuracy).mean < SeedStatistics($1.accuracy).mean } }
        func text(_ c: Cell?) -> String { c.map { "\(Format.fixed(SeedStatistics($0.accuracy).mean, 4)) with \($0.convLayers) conv layer\($0.convLayers == 1 ? "" : "s")" } ?? "—" }
        return "\(dataset), \(budget) parameters: the best distilled student reaches \(text(best("logits"))), the best trained on labels \(text(best("labels")))"
            + (teacherAccuracy.map { "; the teacher ensemble \(Format.fixed($0, 4))" } ?? "") + "."
    }

    public var summary: [String] {
        var lines = ["  \(dataset): student test accuracy by conv layers (mean over seeds)" + (teacherAccuracy.map { "; teacher \(Format.fixed($0, 4))" } ?? "")]
        for budget in Array(Set(cells.map(\.budget))).sorted() {
            for loss in ["logits", "labels"] {
                let row = cells.filter { $0.budget == budget && $0.loss == loss }
                guard !row.isEmpty else { continue }
                lines.append("    \(budget) params, \(loss): " + row.map { "c\($0.convLayers) \(Format.fixed(SeedStatistics($0.accuracy).mean, 4))" }.joined(separator: "  "))
            }
        }
        return lines
    }
}

/// The distillation section of report.html.
enum DistillationReport {
    static func section(_ input: ReportInput, into m: inout Markup) {
        let spec = input.plan.spec
        m.element("h2", text: "Do students need depth and convolution?")
        for table in DistillationTable.compute(input.rows) { m.element("p", ["class": "answer"], text: table.answer) }
        m.element("p", ["class": "note"]) { m in
            m.add("A teacher (\(spec.models.joined(separator: ", ")); an ensemble of \(spec.distillation.teachers) when more than one) is trained; ")
            m.add("its logits on the training set are computed once. Students with 0 (an MLP) to 4 conv layers, at each parameter budget, ")
            m.add("regress those logits with an L2 loss (solid lines); the labels-only control trains the same students with cross-entropy on the labels (dashed). ")
            m.add("Points: mean test accuracy over seeds, whiskers ± one standard deviation; the table gives the best seed too. ")
            m.add("Each student's width is chosen so its parameter count comes closest to the budget.")
        }
        for table in DistillationTable.compute(input.rows) {
            m.element("h3", text: table.dataset)
            let budgets = Array(Set(table.cells.map(\.budget))).sorted()
            let palette = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e"]
            var series: [LineChart.Series] = []
            for (i, budget) in budgets.enumerated() {
                for loss in ["logits", "labels"] {
                    let cells = table.cells.filter { $0.budget == budget && $0.loss == loss }
                    guard !cells.isEmpty else { continue }
                    series.append(LineChart.Series(
                        label: "\(budget.formatted()) params, \(loss == "logits" ? "distilled (L2 on logits)" : "labels only")",
                        color: palette[i % palette.count],
                        points: cells.map { c in
                            let s = SeedStatistics(c.accuracy)
                            return LineChart.Point(x: Double(c.convLayers), y: s.mean, spread: s.deviation,
                                                   tooltip: "\(c.model) (\(c.parameters ?? 0) params), \(loss): accuracy \(s.text), best \(Format.fixed(s.best, 4))")
                        },
                        dashed: loss == "labels"))
                }
            }
            m.figure(named: "distillation-accuracy-vs-conv-layers") { m in
            LineChart(title: "Student test accuracy vs conv layers", xLabel: "conv layers in the student (0 = MLP)", yLabel: "test accuracy",
                      series: series, reference: table.teacherAccuracy.map { ($0, "teacher \(Format.fixed($0, 4))") },
                      width: 520, height: 320).svg(into: &m)
            }
            var rows: [[String]] = []
            for budget in budgets {
                for conv in Array(Set(table.cells.filter { $0.budget == budget }.map(\.convLayers))).sorted() {
                    let cell = { (loss: String) in table.cells.first { $0.budget == budget && $0.convLayers == conv && $0.loss == loss } }
                    let any = cell("logits") ?? cell("labels")
                    rows.append([budget.formatted(), String(conv), any?.model ?? "", any?.parameters.map { $0.formatted() } ?? ""]
                        + ["logits", "labels"].map { loss in cell(loss).map { SeedStatistics($0.accuracy) }.map { "\($0.text) (\(Format.fixed($0.best, 4)))" } ?? "—" })
                }
            }
            m.table(named: "distillation-\(table.dataset)", attributes: ["class": "distillation"],
                    header: ["budget", "conv layers", "student", "parameters", "distilled: mean (best)", "labels only: mean (best)"], rows: rows)
        }
    }
}

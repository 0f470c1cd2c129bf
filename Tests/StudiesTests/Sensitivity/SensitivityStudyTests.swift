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

/// The sensitivity study as the planner, the spec checks, the results files and the report see it.
final class SensitivityStudyTests: StudyTestCase {
    let base = "name: s\nstudy: sensitivity\ndatasets: [synthetic-28]\nmodels: [resnet8]\nseeds: 2\n"

    func parse(_ text: String) throws -> SweepSpec { try SpecLoader.parse(text, file: "s.yaml") }

    func error(_ text: String) -> String {
        do { _ = try parse(text); XCTFail("expected an error"); return "" } catch { return "\(error)" }
    }

    func testPlanPrunesEachConvAndLinearLayerAtEachSparsity() throws {
        let plan = try Plan.expand(try parse(base + "sensitivity: {sparsities: [0.5, 0.25], methods: [unstructured, structured], recalibrate: true}\n"))
        let layers = try LayerMatcher.units(of: "resnet8").filter { $0.kind == .conv || $0.kind == .linear }
        let pruned = plan.tasks.filter { $0.kind == .pruneLayer }
        XCTAssertEqual(pruned.count, 2 * layers.count * 2 * 2 * 2)
        XCTAssertEqual(plan.tasks.filter { $0.kind == .train }.count, 2)
        XCTAssertEqual(plan.tasks.filter { $0.kind == .baseline }.count, 2)
        let task = try XCTUnwrap(plan["synthetic-28/resnet8/seed1/stage2.block1.conv1/structured+bn/0.2500"])
        XCTAssertEqual(task.dependencies, ["synthetic-28/resnet8/seed1/train"])
        XCTAssertEqual(task.baselineKey, "synthetic-28/resnet8/seed1/baseline")
        XCTAssertEqual(task.payload as? SensitivityPoint, SensitivityPoint(sparsity: 0.25, method: .structured, recalibrated: true))
        XCTAssertTrue(pruned.allSatisfy { $0.unit.map { name in layers.contains { $0.name == name } } ?? false }, "branches are not pruned")
        XCTAssertGreaterThan(task.cost, try XCTUnwrap(plan["synthetic-28/resnet8/seed1/stage2.block1.conv1/structured/0.2500"]).cost,
                             "BN re-estimation costs training batches")
        XCTAssertEqual(try parse(base).sensitivity, SensitivitySection(), "defaults without a section")
    }

    func testSpecChecksNameTheField() {
        XCTAssertTrue(error(base + "sensitivity: {sparsities: [0.5, 1.5]}").contains("s.yaml:6: sensitivity.sparsities: sparsities lists fractions"), error(base + "sensitivity: {sparsities: [1.5]}"))
        XCTAssertTrue(error(base + "sensitivity: {sparsities: [0.5, 0.5]}").contains("lists a value twice"))
        XCTAssertTrue(error(base + "sensitivity: {methods: [unstructured, pruned]}").contains("unknown pruning method 'pruned'; valid: unstructured, structured"))
        XCTAssertTrue(error(base + "sensitivity: {sparsity: [0.5]}").contains("sparsities"), "did-you-mean")
        XCTAssertTrue(error(base + "layers: [stage1.block1]\n").contains("selects no conv or linear layer of resnet8"))
        XCTAssertTrue(error("name: s\nstudy: sensitive\ndatasets: [synthetic-28]\nmodels: [resnet8]\n").contains("sensitivity"), "the study list names it")
        XCTAssertEqual(try parse(base + "pruning: {rate: 0.5}\n").ignoredSections, ["pruning"], "another study's section is ignored, with a warning")
    }

    /// Records with Δ falling linearly with sparsity, deeper layers falling faster.
    func input() throws -> ReportInput {
        let plan = try Plan.expand(try parse(base + "layers: [stem.conv, stage3.block1.conv2]\nsensitivity: {sparsities: [0.2, 0.4, 0.8]}\n"))
        let t0 = Date(timeIntervalSince1970: 1_000_000)
        let records = plan.tasks.enumerated().map { i, task -> TaskRecord in
            var o = TaskOutcome(status: .ok, seconds: 1)
            o.testAccuracy = 0.9
            if let p = task.payload as? SensitivityPoint {
                o.testAccuracy = 0.9 - p.sparsity * (task.unit == "stem.conv" ? 0.01 : 0.1) - 0.001 * Double(task.seedIndex)
                o.discordant = [10, 2, 1000]
                o.paramsMasked = 5
            }
            return TaskRecord(key: task.key, kind: task.kind, outcome: o, rank: 0, host: "n", started: t0.addingTimeInterval(Double(i)),
                              finished: t0.addingTimeInterval(Double(i) + 0.5))
        }
        return ReportInput(plan: plan, records: records)
    }

    func testReportSectionAndSummaryAnswerTheQuestion() throws {
        let input = try input()
        let curves = SensitivityCurves.compute(input.rows)
        XCTAssertEqual(curves.count, 1)
        let c = try XCTUnwrap(curves.first)
        XCTAssertEqual(c.layers.map(\.layer), ["stem.conv", "stage3.block1.conv2"], "network order")
        XCTAssertNil(c.layers[0].firstLoss, "stem.conv loses at most 0.008")
        XCTAssertEqual(c.layers[1].firstLoss, 0.2)
        XCTAssertEqual(try XCTUnwrap(c.layers[1].points.last).mean, -0.0805, accuracy: 1e-9)
        let html = ReportPage.html(input)
        let doc = XMLCollector.parse(html)
        XCTAssertTrue(doc.text.contains("How much of each layer can be pruned?"))
        XCTAssertLessThan(try XCTUnwrap(html.range(of: "How much of each layer")).lowerBound, try XCTUnwrap(html.range(of: "class=\"facts\"")).lowerBound,
                          "the answer comes before the run's facts")
        XCTAssertEqual(doc.attributes.filter { ($0["class"] ?? "").hasPrefix("series") }.count, 2, "one line per layer")
        XCTAssertTrue(doc.text.contains("never (up to 0.80)"))
        XCTAssertTrue(doc.text.contains("≤ 0.20 (the lowest tested)"), "a loss at the first sparsity tried is said as such")
        XCTAssertTrue(doc.text.contains("1 of 2 layers stay within 1 point of accuracy up to sparsity 0.80 (unstructured): stem.conv; the most sensitive: stage3.block1.conv2 (loses it at ≤ 0.20)."),
                      "one sentence answers the section's question")
        XCTAssertEqual(doc.attributes.filter { $0["class"] == "band" }.count, 2, "intervals as bands, one per layer")
        let ticks = doc.attributes.filter { $0["class"] == "tick" }.count
        XCTAssertGreaterThan(ticks, 0)
        XCTAssertTrue(["0.2", "0.4", "0.8"].allSatisfy { html.contains(">\($0)</text>") }, "x ticks at the sparsities tested")
        XCTAssertTrue(doc.text.contains("stage3.block1.conv2 at sparsity 0.80: Δ -0.0805"))
        let lines = ProgressText.summary(rows: input.rows, study: SensitivityStudy.self, statistics: StatisticsSection())
        XCTAssertEqual(lines.count, 1)
        XCTAssertTrue(lines[0].contains("most sensitive (sparsity that costs 1 point) stage3.block1.conv2 0.20, stem.conv never; 1 of 2 layers stay within it up to 0.80"), lines[0])
        let csv = ResultTable.csv(input.rows, study: SensitivityStudy.self).split(separator: "\n")
        let row = try XCTUnwrap(csv.first { $0.hasPrefix("synthetic-28/resnet8/seed0/stem.conv/unstructured/0.4000,") })
        XCTAssertTrue(row.contains(",stem.conv,unstructured,0.4,ok,0.896,"), "\(row)")
    }
}

/// Journals written before studies had folders of their own are read unchanged.
final class OlderJournalTests: StudyTestCase {
    func testAJournalLineOfTheEarlierFormatStillReads() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("older-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("journal.jsonl")
        // Two lines as layersweep 0.1.0 wrote them (an IMP run, commit ab450df).
        let text = """
            {"format":1,"journal":"layersweep","specHash":"ed271a7b351eb3a5","sweep":"imp-fcn","version":"0.1.0"}
            {"finished":"2026-12-01T23:25:14Z","host":"vm","key":"synthetic-28/fcn-32/seed0/round0","kind":"train","outcome":{"checkpoint":"382a4e7863ca15022a774f453c0e9afd","layerRemaining":{"fc1.weight":1,"fc2.weight":1},"locality":0,"remainingFraction":1,"seconds":0.8363759517669678,"status":"ok","testAccuracy":0.37,"testLoss":1.8013296127319336,"trainAccuracy":0.305,"trainLoss":2.1494438648223877},"rank":1,"started":"2026-12-01T23:25:13Z"}
            {"finished":"2026-12-01T23:25:15Z","host":"vm","key":"synthetic-28/fcn-32/seed0/round1","kind":"prune","outcome":{"checkpoint":"2cdc7f3571a195a3c78b70bb86d7e61c","layerRemaining":{"fc1.weight":0.6999960140306123,"fc2.weight":0.699951171875},"locality":0.0009037449969182543,"remainingFraction":0.7,"seconds":1.5,"status":"ok","testAccuracy":0.35,"testLoss":1.9},"rank":0,"started":"2026-12-01T23:25:14Z"}
            {"finished":"2026-12-01T23:25:16Z","host":"vm","key":"synthetic-28/fcn-32/seed0/oneshot2","kind":"oneShot","outcome":{"seconds":1,"status":"ok","testAccuracy":0.3},"rank":0,"started":"2026-12-01T23:25:15Z"}

            """
        try text.write(to: url, atomically: true, encoding: .utf8)
        let (header, records, _) = try Journal.read(url, study: IterativePruningStudy.self)
        XCTAssertEqual(header.format, 1)
        XCTAssertEqual(records.map(\.kind), [.train, .prune, .oneShot], "the old spelling oneShot reads as today's oneshot")
        XCTAssertEqual(TaskKind.oneShot.rawValue, "oneshot")
        XCTAssertEqual(records[1].outcome.measures(PruningMeasures.self)?.layerRemaining?["fc2.weight"], 0.699951171875)
        XCTAssertNil(records[2].outcome.measures, "a line without measures has none")
        // Written again, the line names its measures' type, so it reads back without being told.
        let again = try SweepJSON.decoder.decode(TaskRecord.self, from: try SweepJSON.encoder.encode(records[1]))
        XCTAssertEqual(again, records[1])
        XCTAssertTrue(String(decoding: try SweepJSON.encoder.encode(records[1]), as: UTF8.self).contains("\"measures\":\"imp\""))
        let spec = try SpecLoader.parse("name: p\nstudy: imp\ndatasets: [synthetic-28]\nmodels: [fcn-32]\npruning: {rounds: 1, rewind_step: 2}\n", file: "p.yaml")
        let rows = ResultTable.rows(plan: try Plan.expand(spec), records: records)
        let round1 = try XCTUnwrap(rows.first { $0.key.hasSuffix("round1") })
        XCTAssertEqual(round1.pruning?.round, 1)
        XCTAssertEqual(try XCTUnwrap(round1.deltaAccuracy), -0.02, accuracy: 1e-12)
        XCTAssertTrue(ResultTable.csv(rows, study: IterativePruningStudy.self).contains("remaining_fc2.weight"))
    }
}

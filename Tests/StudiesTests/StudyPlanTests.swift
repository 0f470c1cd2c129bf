import Procedures
@testable import SweepCore
@testable import Studies
import StudyTestSupport
import SweepFile
@testable import SweepPlan
import XCTest

/// Task graphs of the pruning, distillation and reuse studies, and their sweep-file errors.
final class StudyPlanTests: StudyTestCase {
    func parse(_ text: String) throws -> SweepSpec { try SpecLoader.parse(text, file: "t.yaml") }

    func testIMPRoundsFormChainsAndOneShotControlsHangOffTheDenseNetwork() throws {
        let plan = try Plan.expand(try parse("""
        name: p
        study: imp
        datasets: [synthetic-28]
        models: [fcn-64x2-bn, fcn-32x2-bn]
        seeds: 2
        pruning: {rounds: 3, rewind_step: 2}
        """))
        // Per (model, seed): round 0..3 and one-shot 2..3 (one-shot to round 1's sparsity is round 1).
        XCTAssertEqual(plan.tasks.count, 2 * 2 * (4 + 2))
        let p = "synthetic-28/fcn-64x2-bn/seed1"
        XCTAssertEqual(plan["\(p)/round0"]?.dependencies, [])
        XCTAssertEqual(plan["\(p)/round3"]?.dependencies, ["\(p)/round2"])
        XCTAssertEqual(plan["\(p)/oneshot3"]?.dependencies, ["\(p)/round0"])
        XCTAssertNil(plan["\(p)/oneshot1"])
        XCTAssertEqual(plan["\(p)/round2"]?.baselineKey, "\(p)/round0")
        // One chain shares a seed (same data order and initialisation); chains differ.
        XCTAssertEqual(plan["\(p)/round2"]?.seed, plan["\(p)/round0"]?.seed)
        XCTAssertNotEqual(plan["\(p)/round0"]?.seed, plan["synthetic-28/fcn-64x2-bn/seed0/round0"]?.seed)
        // The chains of different seeds and widths are independent: four round-0 tasks are ready at once.
        var scheduler = Scheduler(plan.tasks)
        var ready: [String] = []
        while let t = scheduler.next() { ready.append(t.key) }
        XCTAssertEqual(ready.count, 4)
    }

    func testStudentsWaitForTheTeacherLogitsWhichWaitForEveryTeacher() throws {
        let plan = try Plan.expand(try parse("""
        name: d
        study: distill
        datasets: [synthetic-28]
        models: [resnet8]
        seeds: 2
        distillation: {teachers: 3, conv_layers: [0, 2], budgets: [20000, 50000]}
        """))
        let teachers = (0..<3).map { "synthetic-28/resnet8/teacher\($0)/train" }
        XCTAssertEqual(plan["synthetic-28/resnet8/teacher-logits"]?.dependencies, teachers)
        let distilled = try XCTUnwrap(plan["synthetic-28/c2-b50000/seed1/logits-resnet8"])
        XCTAssertEqual(distilled.dependencies, ["synthetic-28/resnet8/teacher-logits"])
        XCTAssertEqual(distilled.payload as? StudentPoint, StudentPoint(loss: .logits, budget: 50000, teacher: "resnet8"))
        XCTAssertTrue(distilled.model.hasPrefix("student-c2-w"))
        XCTAssertEqual(plan["synthetic-28/c2-b50000/seed1/labels"]?.dependencies, [], "the labels control needs no teacher")
        XCTAssertEqual(plan.tasks.filter { $0.kind == .student }.count, 2 * 2 * 2 * 2)
    }

    func testReuseWaitsForBothScratchTrainingsAndCoversLayersAndPrefixes() throws {
        let plan = try Plan.expand(try parse("""
        name: r
        study: reuse
        datasets:
          - {name: a, base: synthetic-28, classes: [0, 1, 2, 3, 4]}
          - {name: b, base: synthetic-28, classes: [5, 6, 7, 8, 9]}
        models: [resnet8]
        layers: [stem.conv, stage3.*]
        reuse: {pairs: [{source: a, target: b}], prefixes: [2, 7]}
        """))
        let t = try XCTUnwrap(plan["b/resnet8/seed0/from-a/first2/frozen"])
        XCTAssertEqual(t.dependencies, ["a/resnet8/seed0/train", "b/resnet8/seed0/train"])
        XCTAssertEqual(t.payload as? ReusePoint, ReusePoint(source: "a", units: ["stem.conv", "stage1.block1.conv1"], mode: .frozen))
        XCTAssertEqual(t.baselineKey, "b/resnet8/seed0/train")
        XCTAssertNotNil(plan["b/resnet8/seed0/from-a/stage3.block1.conv2/finetuned"])
        XCTAssertNil(plan["b/resnet8/seed0/from-a/stage3.block1/frozen"], "branches are not kernels")
        // stem + stage3's two convs, and two prefixes, in two modes.
        XCTAssertEqual(plan.tasks.filter { $0.kind == .reuse }.count, (3 + 2) * 2)
    }

    func error(_ text: String) -> String {
        do { _ = try parse(text); XCTFail("expected an error"); return "" } catch { return "\(error)" }
    }

    /// Rank 0 sends workers their tasks whole: every study's tasks, payload included, come back
    /// from the wire form (through JSON, as a message carries it) equal to the planned ones.
    func testEveryStudysTasksSurviveTheWireForm() throws {
        let specs = [
            "name: z\ndatasets: [synthetic-28]\nmodels: [resnet8]\nlayers: [stage3.*]\n",
            "name: p\nstudy: imp\ndatasets: [synthetic-28]\nmodels: [fcn-32x2-bn]\npruning: {rounds: 2, rewind_step: 2}\n",
            "name: d\nstudy: distill\ndatasets: [synthetic-28]\nmodels: [resnet8]\ndistillation: {conv_layers: [0, 2], budgets: [20000]}\n",
            "name: r\nstudy: reuse\ndatasets: [synthetic-28, {name: inv, base: synthetic-28, transform: invert}]\nmodels: [resnet8]\n"
                + "reuse: {pairs: [{source: synthetic-28, target: inv}], prefixes: [2]}\n",
            "name: s\nstudy: sensitivity\ndatasets: [synthetic-28]\nmodels: [resnet8]\nsensitivity: {sparsities: [0.5], methods: [structured]}\n",
            "name: n\nstudy: noop\nnoop_tasks: 3\n",
        ]
        var payloads = 0
        for text in specs {
            let spec = try parse(text)
            let plan = try Plan.expand(spec)
            XCTAssertFalse(plan.tasks.isEmpty, text)
            for task in plan.tasks {
                let sent = try SweepJSON.decoder.decode(WireTask.self, from: try SweepJSON.encoder.encode(try WireTask(task)))
                XCTAssertEqual(try sent.task(of: spec.studyType), task, task.key)
                payloads += task.payload == nil ? 0 : 1
            }
        }
        XCTAssertGreaterThan(payloads, 0)
        // A payload the study has no type for is refused, not dropped.
        let pruned = try Plan.expand(try parse(specs[1])).tasks.first { $0.payload != nil }!
        XCTAssertThrowsError(try WireTask(pruned).task(of: NoopStudy.self))
    }

    func testStudySectionsGiveOneLineErrorsWithTheField() {
        let imp = "name: p\nstudy: imp\ndatasets: [synthetic-28]\nmodels: [fcn-32]\n"
        XCTAssertTrue(error(imp + "pruning: {rate: 1.5}").contains("t.yaml:5: pruning.rate: rate is the fraction"), error(imp + "pruning: {rate: 1.5}"))
        XCTAssertTrue(error(imp + "pruning: {rewind_stp: 3}").contains("rewind_step"), "did-you-mean")
        XCTAssertTrue(error(imp + "pruning: {rewind_step: 100000}").contains("not before the end of training"))
        XCTAssertTrue(error("name: p\nstudy: imp\ndatasets: [synthetic-28]\nmodels: [resnet8]\n").contains("models[0]: study imp prunes fully connected networks"))
        let reuse = "name: r\nstudy: reuse\ndatasets: [synthetic-28, {name: inv, base: synthetic-28, transform: invert}]\nmodels: [resnet8]\n"
        XCTAssertTrue(error(reuse).contains("reuse.pairs: list source/target pairs"))
        XCTAssertTrue(error(reuse + "reuse: {pairs: [{source: synthetic-28, target: nope}]}").contains("'nope' is not in datasets"))
        XCTAssertTrue(error(reuse + "reuse: {pairs: [{source: inv, target: synthetic-28}], prefixes: [9]}").contains("prefix 9 is not between 1 and resnet8's 7 conv layers"))
        XCTAssertTrue(error(reuse + "reuse: {pairs: [{source: inv, target: synthetic-28}], modes: [frozen, thawed]}").contains("unknown reuse mode 'thawed'; valid: frozen, finetuned"))
        XCTAssertTrue(error("name: x\ndatasets: [{name: a, classes: [0, 1]}]\nmodels: [resnet8]\n").contains("add base:"))
        XCTAssertTrue(error("name: x\ndatasets: [{name: a, base: synthetic, classes: [0, 9]}]\nmodels: [resnet8]\n").contains("datasets[0].classes"))
        XCTAssertTrue(error("name: x\ndatasets: [{name: a, base: synthetic, transform: twist}]\nmodels: [resnet8]\n").contains("unknown transform 'twist'; valid: rotate90"))
        let distill = "name: d\nstudy: distill\ndatasets: [synthetic-28]\nmodels: [resnet8]\n"
        XCTAssertTrue(error(distill + "distillation: {conv_layers: [0, 5]}").contains("distillation.conv_layers"))
        XCTAssertTrue(error(distill + "distillation: {budgets: [50000, 50000]}").contains("twice"))
        for text in [imp + "pruning: {rate: 1.5}", reuse, distill + "distillation: {conv_layers: [0, 5]}"] {
            XCTAssertFalse(error(text).contains("\n"), "one line")
        }
    }
}

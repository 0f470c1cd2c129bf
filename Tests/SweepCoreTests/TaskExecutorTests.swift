import EngineTestSupport
import Foundation
import Procedures
@testable import SweepCore
import SweepFile
@testable import SweepPlan
import TensorEngine
import StudyTestSupport
import XCTest

/// A worker remembers the evaluation of the network it trained, so the baseline that follows
/// does not evaluate it a second time; the remembered figures are those a fresh worker computes.
final class TaskExecutorTests: StudyTestCase {
    let text = """
    name: s
    datasets:
      - {name: synthetic, train_limit: 96, test_limit: 70}
    models: [resnet8]
    training: {epochs: 1, batch_size: 32, learning_rate: 0.05}
    masks: [zeroKernel]
    evaluation: {batch_size: 32}
    """

    func testTheBaselineAfterATrainingIsThatTrainingsEvaluationAndMatchesAFreshOne() throws {
        let spec = try SpecLoader.parse(text, file: "t.yaml")
        let plan = try Plan.expand(spec)
        let train = try XCTUnwrap(plan.tasks.first { $0.kind == .train })
        let baseline = try XCTUnwrap(plan.tasks.first { $0.kind == .baseline })
        let mask = try XCTUnwrap(plan.tasks.first { $0.kind == .mask && $0.unit == "stage1.block1.conv1" })

        let trainer = TaskExecutor(spec: spec)
        let (trained, bytes) = trainer.run(train, inputs: [:])
        let hash = try XCTUnwrap(trained.checkpoint)
        let (reused, _) = trainer.run(baseline, inputs: [train.key: hash])
        XCTAssertNil(trainer.evaluator, "the baseline reused the training's evaluation: no prefix evaluator was built")
        XCTAssertEqual(reused.testAccuracy, trained.testAccuracy)

        let fresh = TaskExecutor(spec: spec)
        try fresh.store(artifact: try XCTUnwrap(bytes), hash: hash)
        let (computed, _) = fresh.run(baseline, inputs: [train.key: hash])
        XCTAssertNotNil(fresh.evaluator, "a worker that did not train the network evaluates it")
        XCTAssertEqual([reused.testAccuracy, reused.testLoss], [computed.testAccuracy, computed.testLoss])

        // A mask's paired counts use the remembered hits on the trainer, computed ones elsewhere.
        let (onTrainer, _) = trainer.run(mask, inputs: [train.key: hash])
        let (onFresh, _) = fresh.run(mask, inputs: [train.key: hash])
        XCTAssertEqual(onTrainer.status, .ok)
        XCTAssertEqual(onTrainer.discordant, onFresh.discordant)
        XCTAssertEqual(onTrainer.discordant?.last, 70)
        XCTAssertEqual([onTrainer.testAccuracy, onTrainer.testLoss], [onFresh.testAccuracy, onFresh.testLoss])
    }

    /// Every member of a training gang remembers the same evaluation under the leader's
    /// checkpoint hash (the members hold the same weights), hits included.
    func testEveryGangMemberRemembersTheLeadersEvaluation() throws {
        let spec = try SpecLoader.parse(text, file: "t.yaml")
        let train = try XCTUnwrap(try Plan.expand(spec).tasks.first { $0.kind == .train })
        let single = TaskExecutor(spec: spec)
        let (alone, _) = single.run(train, inputs: [:])
        let members = [TaskExecutor(spec: spec), TaskExecutor(spec: spec)]
        let outcomes = onGangThreads(LocalGang(size: 2)) { link, m in members[m].run(train, inputs: [:], gang: link).0 }
        XCTAssertEqual(outcomes[0].checkpoint, alone.checkpoint)
        let expected = try XCTUnwrap(single.trainedEvaluation)
        XCTAssertEqual(expected.evaluation.hits.count, 70)
        for m in 0..<2 {
            let remembered = try XCTUnwrap(members[m].trainedEvaluation, "member \(m)")
            XCTAssertEqual(remembered.key, expected.key, "member \(m)")
            XCTAssertEqual(remembered.evaluation.hits, expected.evaluation.hits, "member \(m)")
            XCTAssertEqual([remembered.evaluation.accuracy, remembered.evaluation.loss],
                           [expected.evaluation.accuracy, expected.evaluation.loss], "member \(m)")
            XCTAssertEqual(members[m].baselineHits?.hits, expected.evaluation.hits, "member \(m)")
        }
    }
}

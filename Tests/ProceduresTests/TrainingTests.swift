import Datasets
import Foundation
import Models
import Procedures
import TensorEngine
import XCTest

final class TrainingTests: XCTestCase {
    override func setUp() { Parallel.configure(threads: 2) }

    let splits = DatasetSplits(rawTrain: SyntheticSpec().generate().train, rawTest: SyntheticSpec().generate().test)

    func network(_ name: String, seed: UInt64 = 0) throws -> Network {
        Network.build(try ModelSpec(name: name, inputShape: splits.train.shape, classes: splits.train.classes), seed: seed)
    }

    func testTinyResNetLearnsSyntheticData() throws {
        let net = try network("resnet8")
        let before = Evaluation.run(net, on: splits.test)
        let reports = try Training.train(net, on: splits.train, config: TrainingConfig(epochs: 8, batchSize: 32, learningRate: 0.1))
        let after = Evaluation.run(net, on: splits.test)
        XCTAssertLessThan(before.accuracy, 0.5)
        XCTAssertGreaterThan(after.accuracy, 0.9, "resnet8 on the synthetic task: \(after)")
        XCTAssertLessThan(reports.last!.loss, reports.first!.loss)
    }

    func testFCNLearnsSyntheticData() throws {
        let net = try network("fcn-64x2-bn")
        try Training.train(net, on: splits.train, config: TrainingConfig(epochs: 5, batchSize: 32, learningRate: 0.05))
        XCTAssertGreaterThan(Evaluation.run(net, on: splits.test).accuracy, 0.9)
    }

    /// Same seed: bit-identical checkpoints, whatever the thread count.
    func testTrainingIsBitIdenticalForASeedAcrossThreadCounts() throws {
        func trainedBytes(threads: Int, seed: UInt64) throws -> Data {
            Parallel.configure(threads: threads)
            let net = try network("resnet8", seed: seed)
            try Training.train(net, on: splits.train.prefix(128), config: TrainingConfig(epochs: 2, batchSize: 16, seed: seed))
            return try Checkpoint.file(of: net).encoded()
        }
        let reference = try trainedBytes(threads: 1, seed: 3)
        XCTAssertEqual(reference, try trainedBytes(threads: 1, seed: 3))
        XCTAssertEqual(reference, try trainedBytes(threads: 2, seed: 3))
        XCTAssertEqual(reference, try trainedBytes(threads: 3, seed: 3))
        XCTAssertNotEqual(reference, try trainedBytes(threads: 2, seed: 4))
    }

    func testDivergenceIsReportedNotHidden() throws {
        let net = try network("fcn-32")
        let config = TrainingConfig(epochs: 3, batchSize: 32, learningRate: 1e6, momentum: 0, weightDecay: 0, schedule: .constant)
        XCTAssertThrowsError(try Training.train(net, on: splits.train, config: config)) { error in
            guard case TrainingError.diverged = error else { return XCTFail("\(error)") }
        }
    }

    func testScheduleTextRoundTrips() {
        for text in ["cosine", "constant", "step:30:0.1", "multistep:100,150:0.1"] {
            XCTAssertEqual(LearningRateSchedule(text: text)?.text, text)
        }
        XCTAssertNil(LearningRateSchedule(text: "linear"))
        XCTAssertNil(LearningRateSchedule(text: "step:x:0.1"))
    }

    func testBenchmarkAndProfileRunOnTheirCases() throws {
        let result = try Benchmark.run(model: "resnet8", input: [1, 12, 12], batchSize: 8, seconds: 0.01)
        XCTAssertGreaterThan(result.trainImagesPerSecond, 0)
        let profile = try Benchmark.profile(model: "resnet8", input: [1, 12, 12], batchSize: 4, steps: 1)
        XCTAssertEqual(profile.map(\.layer), ["stem.conv", "stem.bn", "stem.relu", "stage1.block1", "stage2.block1", "stage3.block1", "pool", "fc"])
    }
}

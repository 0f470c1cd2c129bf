import Datasets
import Foundation
import Models
import Procedures
import TensorEngine
import XCTest

/// Epoch snapshots resume only the training that made them: another learning rate, model or
/// dataset, or tampered epoch and step numbers, discard the snapshot (and change nothing).
final class EpochSnapshotTests: XCTestCase {
    override func setUp() { Parallel.configure(threads: 2) }

    let data = SyntheticSpec().generate().train.prefix(96)

    func network(seed: UInt64 = 0) throws -> Network {
        Network.build(try ModelSpec(name: "fcn-16-bn", inputShape: data.shape, classes: data.classes), seed: seed)
    }

    /// The snapshot a training of `config` takes after its first epoch, and the training it belongs to.
    func snapshot(_ config: TrainingConfig) throws -> (Data, EpochSnapshot.Training) {
        let training = EpochSnapshot.Training(model: "fcn-16-bn", config: config, data: "synthetic", images: data.count)
        var taken: Data?
        var hooks = TrainingHooks()
        let net = try network()
        hooks.afterEpoch = { epochs, step, optimizer in
            if taken == nil { taken = try? EpochSnapshot.encode(net, optimizer: optimizer, epochs: epochs, step: step, key: "k", training: training) }
        }
        try Training.train(net, on: data, config: config, hooks: hooks)
        return (try XCTUnwrap(taken), training)
    }

    func testASnapshotOfAnotherTrainingIsRefusedAndChangesNothing() throws {
        let config = TrainingConfig(epochs: 3, batchSize: 32, learningRate: 0.05)
        let (bytes, training) = try snapshot(config)
        let target = try network(seed: 9)
        let before = target.stateTensors.map(\.1.array)
        var other = config
        other.learningRate = 0.1
        let mismatches: [(EpochSnapshot.Training, String)] = [
            (EpochSnapshot.Training(model: "fcn-16-bn", config: other, data: "synthetic", images: data.count), "other hyperparameters"),
            (EpochSnapshot.Training(model: "fcn-16-bn", config: config, data: "synthetic", images: data.count + 1), "other hyperparameters, model or data"),
            (EpochSnapshot.Training(model: "fcn-16-bn", config: config, data: "fashion-mnist", images: data.count), "model or data"),
        ]
        for (wrong, reason) in mismatches {
            XCTAssertThrowsError(try EpochSnapshot.restore(bytes, into: target, key: "k", training: wrong)) { error in
                XCTAssertTrue(error is EpochSnapshot.Mismatch && "\(error)".contains(reason), "\(error)")
            }
        }
        XCTAssertThrowsError(try EpochSnapshot.restore(bytes, into: target, key: "other", training: training))
        XCTAssertEqual(target.stateTensors.map(\.1.array), before, "a refused snapshot leaves the network as it was")
        let restored = try EpochSnapshot.restore(bytes, into: target, key: "k", training: training)
        XCTAssertEqual([restored.epochs, restored.step], [1, 3])
    }

    /// Epoch and step numbers edited in the metadata (they decide where training goes on, and so
    /// its final accuracy) must be an epoch boundary of this very training.
    func testTamperedEpochsAndStepsAreRefused() throws {
        let config = TrainingConfig(epochs: 3, batchSize: 32, learningRate: 0.05)
        let (bytes, training) = try snapshot(config)
        var file = try SafeTensorsFile.decode(bytes)
        for (epochs, step) in [("2", "3"), ("1", "2"), ("0", "0"), ("3", "9"), ("-1", "-3"), ("1", "x"), ("9999999999999999999", "3")] {
            file.metadata["layersweep.snapshot.epochs"] = epochs
            file.metadata["layersweep.snapshot.step"] = step
            XCTAssertThrowsError(try EpochSnapshot.restore(try file.encoded(), into: try network(), key: "k", training: training)) {
                XCTAssertTrue("\($0)".contains("not a boundary"), "\(epochs)/\(step): \($0)")
            }
        }
        file = try SafeTensorsFile.decode(bytes)
        file.tensors = file.tensors.map { $0.0.hasPrefix("velocity/") ? ($0.0, Tensor(shape: $0.1.shape, values: Array(repeating: .nan, count: $0.1.count))) : $0 }
        XCTAssertThrowsError(try EpochSnapshot.restore(try file.encoded(), into: try network(), key: "k", training: training)) {
            XCTAssertTrue("\($0)".contains("holds nan"), "\($0)")
        }
    }

    /// A training resumed after two of three epochs shows the one epoch it runs (it printed
    /// `epoch 1/3 loss 0.0000 … 0 img/s` for the skipped ones).
    func testAResumedTrainingReportsOnlyTheEpochsItRuns() throws {
        let config = TrainingConfig(epochs: 3, batchSize: 32, learningRate: 0.05)
        var shown: [Int] = []
        let reports = try Training.train(try network(), on: data, config: config, hooks: TrainingHooks(startStep: 6)) { shown.append($0.epoch) }
        XCTAssertEqual(shown, [2])
        XCTAssertEqual(reports.count, 3)
        XCTAssertGreaterThan(reports[2].imagesPerSecond, 0)
    }
}

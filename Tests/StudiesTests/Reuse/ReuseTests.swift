import Datasets
import Models
import Procedures
import Studies
import TensorEngine
import StudyTestSupport
import XCTest

/// Kernel reuse and the distances it is judged by.
final class ReuseTests: StudyTestCase {
    override func setUp() { Parallel.configure(threads: 2) }

    func testRMSEOfANetworkWithItselfIsZeroAndOfKnownDifferencesExact() throws {
        let spec = try ModelSpec(name: "resnet8", inputShape: [1, 8, 8], classes: 3)
        let a = Network.build(spec, seed: 1)
        let names = a.units.filter { $0.kind == .conv }.map { $0.name + ".weight" }
        XCTAssertEqual(try Reuse.rmse(names, a, a), 0)
        let b = Network.build(spec, seed: 1)
        for name in names { let p = b.parameter(name)!.value; for i in 0..<p.count { p.data[i] += 0.5 } }
        XCTAssertEqual(try Reuse.rmse(names, a, b), 0.5, accuracy: 1e-6)
    }

    func testReusedFrozenKernelsStayBitIdenticalWhileEverythingElseTrains() throws {
        let data = DatasetSplits(rawTrain: SyntheticSpec().generate().train, rawTest: SyntheticSpec().generate().test)
        let spec = try ModelSpec(name: "resnet8", inputShape: data.train.shape, classes: data.train.classes)
        let source = Network.build(spec, seed: 1), target = Network.build(spec, seed: 2)
        let kernels = Reuse.kernels(of: [target.unit("stem.conv")!, target.unit("stage1.block1.conv1")!])
        try Reuse.copy(kernels, from: source, into: target)
        XCTAssertEqual(try Reuse.rmse(kernels, source, target), 0)
        let before = Dictionary(uniqueKeysWithValues: target.stateTensors.map { ($0.0, $0.1.array) })
        try Training.train(target, on: data.train.prefix(128), config: TrainingConfig(epochs: 1, batchSize: 32, learningRate: 0.05),
                           hooks: TrainingHooks(frozen: Set(kernels)))
        for (name, tensor) in target.parameters {
            if kernels.contains(name) { XCTAssertEqual(tensor.value.array, before[name], "\(name) frozen") }
            else if name.hasSuffix("conv2.weight") { XCTAssertNotEqual(tensor.value.array, before[name], "\(name) trains") }
        }
    }
}


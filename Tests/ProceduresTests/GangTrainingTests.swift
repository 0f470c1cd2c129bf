import Datasets
import EngineTestSupport
import Foundation
import Models
import Procedures
import TensorEngine
import XCTest

/// Data-parallel training on a gang of threads (the same collectives as an MPI gang) gives the
/// bits of one process: checkpoint, reports, for any gang size and thread count.
final class GangTrainingTests: XCTestCase {
    let splits = DatasetSplits(rawTrain: SyntheticSpec().generate().train, rawTest: SyntheticSpec().generate().test)

    /// The checkpoint bytes and epoch losses of `model` trained by a gang of `members`
    /// (nil: one process, no gang). 200 images in batches of 48: the last batch has 8 images
    /// in 8 groups of one, so a gang of 5 hands out shards of one and two groups.
    /// Members are threads; `run` only touches its own network, so sharing it is safe.
    func trained(_ model: String, members: Int?, threads: Int = 1, count: Int = 200, batch: Int = 48) throws -> (Data, [Float], Evaluation) {
        let data = splits.train.prefix(count)
        let config = TrainingConfig(epochs: 2, batchSize: batch, learningRate: 0.05, seed: 7)
        let test = splits.test
        func run(_ gang: GangLink?) throws -> (Data, [Float], Evaluation) {
            Parallel.configure(threads: threads)
            let net = Network.build(try ModelSpec(name: model, inputShape: data.shape, classes: data.classes), seed: 11)
            let reports = try Training.train(net, on: data, config: config, gang: gang)
            // 256 test images in batches of 40: 7 batches, uneven among the members.
            let evaluation = Evaluation.run(net, on: test, batchSize: 40, gang: gang)
            return (try Checkpoint.file(of: net).encoded(), reports.map(\.loss), evaluation)
        }
        guard let members else { return try run(nil) }
        let results = onGangThreads(LocalGang(size: members)) { link, _ in Result { try run(link) } }
        let all = try results.map { try $0.get() }
        for (m, r) in all.enumerated() {
            XCTAssertEqual(r.0, all[0].0, "member \(m) of \(members) ends with other weights")
            XCTAssertEqual([r.2.accuracy, r.2.loss], [all[0].2.accuracy, all[0].2.loss], "member \(m) of \(members) evaluates differently")
        }
        return all[0]
    }

    func testResNetGangsOf1To5AreBitIdenticalToOneProcess() throws {
        let reference = try trained("resnet8", members: nil)
        for members in [1, 2, 3, 5] {
            let ganged = try trained("resnet8", members: members)
            XCTAssertEqual(ganged.0, reference.0, "gang of \(members): checkpoint differs")
            XCTAssertEqual(ganged.1, reference.1, "gang of \(members): epoch losses differ")
            XCTAssertEqual([ganged.2.accuracy, ganged.2.loss], [reference.2.accuracy, reference.2.loss], "gang of \(members): test evaluation differs")
        }
        XCTAssertEqual(try trained("resnet8", members: 3, threads: 2).0, reference.0, "gang of 3 with 2 threads each")
        // 195 images: the last batch has 3, so two of five members hold no image in that step.
        XCTAssertEqual(try trained("resnet8", members: 5, count: 195).0, try trained("resnet8", members: nil, count: 195).0,
                       "gang of 5 with empty shards")
    }

    func testFCNAndOptionBGangsAreBitIdenticalToOneProcess() throws {
        for model in ["fcn-32x2-bn", "resnet8-b"] {
            let reference = try trained(model, members: nil)
            XCTAssertEqual(try trained(model, members: 2).0, reference.0, "\(model), gang of 2")
            XCTAssertEqual(try trained(model, members: 4).0, reference.0, "\(model), gang of 4")
        }
    }

    func testShardsCoverTheBatchInWholeGroups() {
        XCTAssertEqual(GangShard.split(batchCount: 128, members: 3), [0..<40, 40..<80, 80..<128])
        XCTAssertEqual(GangShard.split(batchCount: 128, members: 1), [0..<128])
        // 3 images are 3 groups: a gang of 5 leaves two members without images.
        XCTAssertEqual(GangShard.split(batchCount: 3, members: 5).map(\.count), [0, 1, 0, 1, 1])
        for n in [2, 17, 100, 128, 1000] {
            for g in 1...16 {
                let shards = GangShard.split(batchCount: n, members: g)
                XCTAssertEqual(shards.map(\.count).reduce(0, +), n)
                XCTAssertEqual(zip(shards, shards.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound }, true)
            }
        }
    }
}

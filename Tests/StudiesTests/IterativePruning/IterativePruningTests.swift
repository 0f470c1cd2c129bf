import Datasets
import Models
import Procedures
import Studies
import TensorEngine
import StudyTestSupport
import XCTest

/// IMP checked the OpenLTH way: fractions hit their targets, masks only shrink, pruned weights
/// stay exactly zero, the readout is never pruned, rewinding restores the saved state bit for bit.
final class PruningTests: StudyTestCase {
    override func setUp() { Parallel.configure(threads: 2) }

    let data = DatasetSplits(rawTrain: SyntheticSpec().generate().train, rawTest: SyntheticSpec().generate().test)

    func randomWeights(_ shape: [Int], seed: UInt64) -> Tensor {
        var rng = RandomSource(seed: seed)
        return Tensor(shape: shape, values: (0..<shape.reduce(1, *)).map { _ in rng.nextNormal() })
    }

    func testPrunedFractionsHitTheTargetWithin1e4AndMasksOnlyShrink() {
        let weights = randomWeights([300, 784], seed: 1)
        var mask = Tensor(shape: weights.shape)
        mask.fill(1)
        let schedule = Pruning.survivorSchedule(total: weights.count, rate: 0.3, rounds: 10)
        for (k, keep) in schedule.enumerated() {
            let next = Pruning.magnitudeMask(weights: weights, mask: mask, keep: keep)
            XCTAssertEqual(Pruning.survivingCount(next), keep)
            let fraction = Double(keep) / Double(weights.count)
            XCTAssertEqual(fraction, pow(0.7, Double(k + 1)), accuracy: 1e-4, "round \(k + 1)")
            for i in 0..<next.count where next.data[i] != 0 { XCTAssertEqual(mask.data[i], 1, "a pruned weight came back") }
            // The survivors are the largest in magnitude among the previous survivors.
            let kept = (0..<next.count).filter { next.data[$0] != 0 }.map { abs(weights.data[$0]) }
            let dropped = (0..<next.count).filter { next.data[$0] == 0 && mask.data[$0] != 0 }.map { abs(weights.data[$0]) }
            if let smallestKept = kept.min(), let largestDropped = dropped.max() { XCTAssertGreaterThanOrEqual(smallestKept, largestDropped) }
            mask = next
        }
    }

    func testRoundsKeepPrunedWeightsZeroTheReadoutDenseAndRewindExact() throws {
        let train = data.train.prefix(256)
        let config = TrainingConfig(epochs: 2, batchSize: 32, learningRate: 0.05, seed: 3)
        let net = Network.build(try ModelSpec(name: "fcn-32x2-bn", inputShape: train.shape, classes: train.classes), seed: 9)
        let initial = net.stateTensors.map { ($0.0, $0.1.array) }
        let (dense, _) = try IterativePruning.trainDense(net, on: train, config: config, rewindStep: 0)
        XCTAssertEqual(dense.masks.map(\.0), ["fc1.weight", "fc2.weight"], "the readout is not prunable")
        for ((name, values), (rewindName, rewind)) in zip(initial, dense.rewind) {
            XCTAssertEqual(name, rewindName)
            XCTAssertTrue(values == rewind.array, "rewind to step 0 is the initialisation, bit for bit (\(name))")
        }
        var round = dense
        for k in 1...3 {
            let keep = Dictionary(uniqueKeysWithValues: round.masks.map { ($0.0, Pruning.survivors(pruning: 0.3, of: Pruning.survivingCount($0.1))) })
            let masks = try IterativePruning.nextMasks(after: round, keep: keep, minConnectedUnits: 1)
            let (next, _) = try IterativePruning.retrain(from: round, masks: masks, on: train, config: config, rewindStep: 0)
            for ((name, old), (_, new)) in zip(round.masks, next.masks) {
                for i in 0..<new.count where new.data[i] != 0 { XCTAssertEqual(old.data[i], 1, "round \(k): \(name) mask grew") }
                let w = try XCTUnwrap(next.network.parameter(name)).value
                for i in 0..<w.count where new.data[i] == 0 { XCTAssertEqual(w.data[i], 0, "round \(k): pruned \(name)[\(i)] moved") }
            }
            XCTAssertEqual(next.remainingFraction, pow(0.7, Double(k)), accuracy: 2e-2)
            // Round-tripping through the artifact keeps everything.
            let file = next.file(metadata: [:])
            let back = try PruningRound(file: try SafeTensorsFile.decode(try file.encoded()), path: "round")
            XCTAssertEqual(back.masks.map(\.0), next.masks.map(\.0))
            XCTAssertEqual(back.rewind.map(\.0), dense.rewind.map(\.0))
            XCTAssertTrue(zip(back.masks, next.masks).allSatisfy { $0.1.array == $1.1.array }, "masks survive the artifact")
            XCTAssertTrue(zip(back.rewind, dense.rewind).allSatisfy { $0.1.array == $1.1.array }, "rewind state survives the artifact")
            round = next
        }
        // The readout trained normally: not a single zero forced on it.
        let readout = try XCTUnwrap(round.network.parameter("readout.weight")).value
        XCTAssertFalse(readout.array.contains(0))
    }

    func testApplyingMasksLeavesSurvivorsBitIdentical() throws {
        let net = Network.build(try ModelSpec(name: "fcn-16x2", inputShape: [1, 6, 6], classes: 3), seed: 2)
        let before = Dictionary(uniqueKeysWithValues: net.stateTensors.map { ($0.0, $0.1.array) })
        let masks = Pruning.denseMasks(of: net).map { name, m in
            (name, Pruning.magnitudeMask(weights: net.parameter(name)!.value, mask: m, keep: m.count / 3))
        }
        Pruning.apply(masks, to: net)
        let maskByName = Dictionary(uniqueKeysWithValues: masks)
        for (name, tensor) in net.stateTensors {
            for (i, v) in tensor.array.enumerated() {
                if let m = maskByName[name], m.data[i] == 0 { XCTAssertEqual(v, 0) } else { XCTAssertEqual(v, before[name]![i]) }
            }
        }
    }

    func testStoppingWhenALayerLosesItsConnectedUnits() throws {
        let net = Network.build(try ModelSpec(name: "fcn-8x2-bn", inputShape: [1, 4, 4], classes: 3), seed: 2)
        let round = PruningRound(network: net, masks: Pruning.denseMasks(of: net), rewind: net.stateTensors)
        // Keep 3 weights of fc2: at most 3 of its 8 units have an input, and at most 3 of fc1's
        // units an output (connectivity runs both ways).
        XCTAssertThrowsError(try IterativePruning.nextMasks(after: round, keep: ["fc2.weight": 3], minConnectedUnits: 4)) { error in
            XCTAssertTrue("\(error)".hasPrefix("stopped: fc"), "\(error)")
            XCTAssertTrue(error is PruningStopped)
        }
        let masks = try IterativePruning.nextMasks(after: round, keep: ["fc2.weight": 3], minConnectedUnits: 1)
        for (layer, connected) in Pruning.connectedUnits(masks) { XCTAssertLessThanOrEqual(connected, 3, layer) }
    }

    func testLocalityIsZeroForRandomMasksAndHighForCompactOnes() throws {
        let (h, w, units) = (28, 28, 64)
        var rng = RandomSource(seed: 4)
        let random = Tensor(shape: [units, h * w])
        for u in 0..<units { for p in rng.permutation(h * w).prefix(60) { random.data[u * h * w + p] = 1 } }
        let r = try XCTUnwrap(Locality.score(mask: random, inputShape: [1, h, w]))
        XCTAssertEqual(r, 0, accuracy: 0.06, "random masks are not local")
        let compact = Tensor(shape: [units, h * w])
        for u in 0..<units {
            let (cy, cx) = (3 + (u * 7) % 22, 3 + (u * 13) % 22)
            for y in (cy - 2)...(cy + 2) { for x in (cx - 2)...(cx + 2) { compact.data[u * h * w + y * w + x] = 1 } }
        }
        XCTAssertGreaterThan(try XCTUnwrap(Locality.score(mask: compact, inputShape: [1, h, w])), 0.8)
        let dense = Tensor(shape: [units, h * w])
        dense.fill(1)
        XCTAssertEqual(try XCTUnwrap(Locality.score(mask: dense, inputShape: [1, h, w])), 0, accuracy: 1e-9)
        let images = Locality.mostConnected(mask: compact, inputShape: [1, h, w], count: 3)
        XCTAssertEqual(images.count, 3)
        XCTAssertEqual(images[0].bitmap.filter { $0 }.count, 25)
        XCTAssertEqual(images[0].surviving, 25)
    }
}

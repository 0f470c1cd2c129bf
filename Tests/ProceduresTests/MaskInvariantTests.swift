import Datasets
import Models
import Procedures
import TensorEngine
import XCTest

/// Masks checked the OpenLTH way: what they touch is exactly what they should, nothing else moves.
final class MaskInvariantTests: XCTestCase {
    override func setUp() { Parallel.configure(threads: 2) }

    let data = DatasetSplits(rawTrain: SyntheticSpec().generate().train, rawTest: SyntheticSpec().generate().test)

    /// A trained-looking network (non-trivial BN statistics) and its checkpoint.
    func fixture() throws -> (Network, SafeTensorsFile) {
        let net = Network.build(try ModelSpec(name: "resnet8", inputShape: [1, 12, 12], classes: 4), seed: 5)
        try Training.train(net, on: data.train.prefix(128), config: TrainingConfig(epochs: 1, batchSize: 32, learningRate: 0.05))
        return (net, Checkpoint.file(of: net))
    }

    func state(_ net: Network) -> [String: [Float]] {
        Dictionary(uniqueKeysWithValues: net.stateTensors.map { ($0.0, $0.1.array) })
    }

    func testZeroKernelZeroesExactlyTheUnit() throws {
        let (_, file) = try fixture()
        for unitName in ["stem.conv", "stage2.block1.conv1", "fc"] {
            let net = try Checkpoint.network(from: file)
            let before = state(net)
            let unit = try XCTUnwrap(net.unit(unitName))
            let masked = try Masking.apply(.zeroKernel, to: unit, of: net, context: MaskContext(seed: 1))
            XCTAssertEqual(masked, unit.parameterCount)
            let after = state(net)
            for (name, values) in after {
                if unit.parameterNames.contains(name) {
                    XCTAssertTrue(values.allSatisfy { $0 == 0 }, "\(name) is exactly zero")
                } else {
                    XCTAssertEqual(values, before[name], "\(name) untouched, bit for bit")
                }
            }
        }
    }

    func testZeroBranchChangesNoParameterAndLeavesTheShortcut() throws {
        let (_, file) = try fixture()
        let net = try Checkpoint.network(from: file)
        let before = state(net)
        try Masking.apply(.zeroBranch, to: try XCTUnwrap(net.unit("stage2.block1")), of: net, context: MaskContext(seed: 1))
        XCTAssertEqual(state(net), before)
        XCTAssertEqual((net.layer("stage2.block1") as? BasicBlock)?.branchEnabled, false)
        XCTAssertThrowsError(try Masking.apply(.zeroBranch, to: try XCTUnwrap(net.unit("stem.conv")), of: net, context: MaskContext(seed: 1)))
    }

    func testRandomInitRedrawsOnlyTheUnitReproducibly() throws {
        let (_, file) = try fixture()
        func redrawn(seed: UInt64) throws -> [String: [Float]] {
            let net = try Checkpoint.network(from: file)
            try Masking.apply(.randomInit, to: try XCTUnwrap(net.unit("stage3.block1.conv2")), of: net, context: MaskContext(seed: seed))
            return state(net)
        }
        let original = state(try Checkpoint.network(from: file))
        let a = try redrawn(seed: 7), b = try redrawn(seed: 7), c = try redrawn(seed: 8)
        XCTAssertEqual(a, b, "same seed, same weights")
        let name = "stage3.block1.conv2.weight"
        XCTAssertNotEqual(a[name], c[name])
        XCTAssertNotEqual(a[name], original[name])
        for key in original.keys where key != name { XCTAssertEqual(a[key], original[key], key) }
        let w = a[name]!
        XCTAssertEqual(w.reduce(0) { $0 + Double($1 * $1) } / Double(w.count), 2.0 / (64 * 9), accuracy: 3e-4, "He-normal variance")
    }

    func testRecalibrationChangesOnlyBatchNormStatistics() throws {
        let (_, file) = try fixture()
        let net = try Checkpoint.network(from: file)
        let before = state(net)
        let unit = try XCTUnwrap(net.unit("stage1.block1.conv1"))
        try Masking.apply(.zeroKernelRecalibrated, to: unit, of: net,
                          context: MaskContext(seed: 3, recalibrationData: data.train, recalibrationBatches: 4, batchSize: 32))
        let after = state(net)
        let parameterNames = Set(net.parameters.map(\.0))
        for (name, values) in after where parameterNames.contains(name) && !unit.parameterNames.contains(name) {
            XCTAssertEqual(values, before[name], "\(name) untouched")
        }
        XCTAssertTrue(after["stage1.block1.conv1.weight"]!.allSatisfy { $0 == 0 })
        XCTAssertNotEqual(after["stage1.block1.bn1.running_mean"], before["stage1.block1.bn1.running_mean"], "statistics re-estimated")
        XCTAssertTrue(net.batchNorms.allSatisfy { $0.1.momentum == 0.1 }, "momentum restored after recalibration")
        XCTAssertThrowsError(try Masking.apply(.zeroKernelRecalibrated, to: unit, of: try Checkpoint.network(from: file), context: MaskContext(seed: 3)))
    }
}

import Models
import Procedures
import TensorEngine
import XCTest

/// Pruning one layer alone: exactly the asked fraction, only that layer, survivors untouched.
final class LayerPruningTests: XCTestCase {
    func network() throws -> Network {
        Network.build(try ModelSpec(name: "resnet8", inputShape: [1, 12, 12], classes: 4), seed: 11)
    }

    func snapshot(_ net: Network) -> [String: [Float]] {
        Dictionary(uniqueKeysWithValues: net.parameters.map { ($0.0, Array(UnsafeBufferPointer(start: $0.1.value.data, count: $0.1.value.count))) })
    }

    func testUnstructuredZeroesExactlyTheSmallestWeightsOfThatLayerOnly() throws {
        for fraction in [0.1, 0.25, 0.5, 0.9, 1.0] {
            let net = try network()
            let before = snapshot(net)
            let unit = try XCTUnwrap(net.unit("stage2.block1.conv1"))
            let name = try XCTUnwrap(LayerPruning.weightName(of: unit))
            let weight = try XCTUnwrap(net.parameter(name)).value
            let pruned = LayerPruning.prune(weight, fraction: fraction, method: .unstructured)
            let expected = Int((fraction * Double(weight.count)).rounded(.toNearestOrAwayFromZero))
            XCTAssertEqual(pruned, expected)
            let after = snapshot(net)
            for (param, values) in before where param != name { XCTAssertEqual(after[param], values, "\(param) untouched") }
            let old = before[name]!, new = after[name]!
            let zeroed = (0..<old.count).filter { new[$0] != old[$0] }
            XCTAssertEqual(zeroed.count, expected, "exactly \(expected) of \(old.count) weights change")
            XCTAssertTrue(zeroed.allSatisfy { new[$0] == 0 })
            // Survivors keep their exact bits, and every pruned weight is no larger than any survivor.
            let survivors = (0..<old.count).filter { new[$0] != 0 }
            for i in survivors { XCTAssertEqual(new[i].bitPattern, old[i].bitPattern) }
            if let smallestKept = survivors.map({ abs(old[$0]) }).min() {
                XCTAssertTrue(zeroed.allSatisfy { abs(old[$0]) <= smallestKept })
            }
        }
    }

    func testStructuredZeroesWholeFiltersOfSmallestL1Norm() throws {
        let net = try network()
        let unit = try XCTUnwrap(net.unit("stage1.block1.conv2"))
        let weight = try XCTUnwrap(net.parameter(try XCTUnwrap(LayerPruning.weightName(of: unit)))).value
        let old = Array(UnsafeBufferPointer(start: weight.data, count: weight.count))
        let filters = weight.shape[0], size = weight.count / filters
        let norms = (0..<filters).map { f in (0..<size).reduce(0.0) { $0 + Double(abs(old[f * size + $1])) } }
        let pruned = LayerPruning.prune(weight, fraction: 0.3, method: .structured)
        let k = Int((0.3 * Double(filters)).rounded(.toNearestOrAwayFromZero))
        XCTAssertEqual(pruned, k * size)
        let new = Array(UnsafeBufferPointer(start: weight.data, count: weight.count))
        let gone = (0..<filters).filter { f in (0..<size).allSatisfy { new[f * size + $0] == 0 } }
        XCTAssertEqual(gone.count, k)
        let kept = Set(0..<filters).subtracting(gone)
        XCTAssertTrue(gone.allSatisfy { g in kept.allSatisfy { norms[g] <= norms[$0] } }, "the weakest filters go")
        for f in kept { for j in 0..<size { XCTAssertEqual(new[f * size + j].bitPattern, old[f * size + j].bitPattern) } }
    }

    func testTiesGoToTheLowerIndex() {
        let t = Tensor(shape: [4, 2], values: [1, 1, 1, 1, 2, 2, 1, 1])
        XCTAssertEqual(LayerPruning.prune(t, fraction: 0.5, method: .structured), 4)
        XCTAssertEqual(Array(UnsafeBufferPointer(start: t.data, count: 8)), [0, 0, 0, 0, 2, 2, 1, 1])
        let u = Tensor(shape: [4], values: [3, 1, 1, 2])
        XCTAssertEqual(LayerPruning.prune(u, fraction: 0.25, method: .unstructured), 1)
        XCTAssertEqual(Array(UnsafeBufferPointer(start: u.data, count: 4)), [3, 0, 1, 2])
    }
}

import Foundation
import ONNX
import Procedures
import TensorEngine
import XCTest

/// The masks that change an imported graph's weights (Tests/ONNXTests/Fixtures/exports): what
/// randomInit draws, which filters structured pruning takes on any weight layout, and the
/// output axis and fan-in each unit gets from its operator.
final class GraphMasksTests: XCTestCase {
    let exports = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("ONNXTests/Fixtures/exports")

    func testUnitsKnowTheirOutputAxisAndPyTorchsFanIn() throws {
        let r18 = try ONNXProgram(contentsOf: exports.appendingPathComponent("resnet18-bn.onnx"))
        let conv = try r18.unit("layer2.0.conv1"), fc = try r18.unit("fc"), stem = try r18.unit("conv1")
        XCTAssertEqual([conv.outputAxis, conv.fanIn], [0, 4 * 3 * 3], "Conv (8, 4, 3, 3)")
        XCTAssertEqual([stem.outputAxis, stem.fanIn], [0, 7 * 7])
        XCTAssertEqual([fc.outputAxis, fc.fanIn], [0, 32], "Gemm with transB: (classes, 32)")
        let mobile = try ONNXProgram(contentsOf: exports.appendingPathComponent("mobilenetv2-bn.onnx"))
        let depthwise = try mobile.unit("features.2.conv.3")
        XCTAssertEqual(depthwise.fanIn, 9, "a depthwise filter reads one channel's 3x3 window")
        // The default exporter writes Linear as MatMul on a transposed (out, in) weight, or on an
        // (in, out) initializer: either way the output axis is the one of `out`.
        let exported = try ONNXProgram(contentsOf: exports.appendingPathComponent("resnet18.onnx"))
        let fc2 = try exported.unit("fc")
        let shape = try XCTUnwrap(exported.constants[fc2.weight!]).shape
        XCTAssertEqual(shape[fc2.outputAxis], 10, "\(fc2.op) on \(shape)")
        XCTAssertEqual(fc2.fanIn, 32)
    }

    func testRandomInitDrawsPyTorchsUniformBoundBySeedAndKeepsTheBias() throws {
        let program = try ONNXProgram(contentsOf: exports.appendingPathComponent("resnet18-legacy.onnx"))
        let unit = try program.unit("layer3.0.conv2")  // (16, 16, 3, 3), BN folded into its bias
        let context = MaskContext(seed: 11)
        let (a, count) = try GraphMasking.apply(.randomInit, unit: unit.name, to: program, context: context)
        let (b, _) = try GraphMasking.apply(.randomInit, unit: unit.name, to: program, context: context)
        let (c, _) = try GraphMasking.apply(.randomInit, unit: unit.name, to: program, context: MaskContext(seed: 12))
        XCTAssertEqual(count, unit.parameters)
        let drawn = try XCTUnwrap(a.constants[unit.weight!]).floatValues
        XCTAssertEqual(drawn, try XCTUnwrap(b.constants[unit.weight!]).floatValues, "the same seed draws the same weights")
        XCTAssertNotEqual(drawn, try XCTUnwrap(c.constants[unit.weight!]).floatValues)
        XCTAssertNotEqual(drawn, try XCTUnwrap(program.constants[unit.weight!]).floatValues)
        let bound = 1 / Float(16 * 9).squareRoot()
        XCTAssertTrue(drawn.allSatisfy { abs($0) <= bound }, "uniform in ±1/√fan_in")
        let mean = drawn.reduce(0, +) / Float(drawn.count)
        let variance = drawn.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Float(drawn.count)
        XCTAssertEqual(Double(variance), Double(bound * bound / 3), accuracy: Double(bound * bound / 3) * 0.12, "a uniform's variance")
        XCTAssertEqual(Double(mean), 0, accuracy: Double(bound) * 0.1)
        XCTAssertEqual(a.constants[unit.bias!], program.constants[unit.bias!], "the bias (BN's constants, folded) is kept")
        for other in program.units where other.name != unit.name {
            if let w = other.weight { XCTAssertEqual(a.constants[w], program.constants[w], other.name) }
        }
        XCTAssertThrowsError(try GraphMasking.apply(.randomInit, unit: "layer1.0", to: program, context: context), "a branch has no weight")
    }

    /// Filters along axis 1 of a (K, N) weight are pruned as those along axis 0 of its transpose.
    func testStructuredPruningTakesFiltersAlongTheOutputAxis() {
        var rng = RandomSource(seed: 3)
        let (k, n) = (5, 6)
        let weight = (0..<(k * n)).map { _ in rng.nextNormal() }
        var transposed = [Float](repeating: 0, count: k * n)
        for i in 0..<k { for j in 0..<n { transposed[j * k + i] = weight[i * n + j] } }
        var byColumns = weight
        let zeroed = byColumns.withUnsafeMutableBufferPointer { LayerPruning.prune($0, shape: [k, n], outputAxis: 1, fraction: 0.5, method: .structured) }
        transposed.withUnsafeMutableBufferPointer { _ = LayerPruning.prune($0, shape: [n, k], outputAxis: 0, fraction: 0.5, method: .structured) }
        XCTAssertEqual(zeroed, 3 * k)
        for i in 0..<k { for j in 0..<n { XCTAssertEqual(byColumns[i * n + j], transposed[j * k + i]) } }
        let columns = (0..<n).filter { j in (0..<k).allSatisfy { byColumns[$0 * n + j] == 0 } }
        XCTAssertEqual(columns.count, 3, "whole columns (output units) are zeroed")
    }
}

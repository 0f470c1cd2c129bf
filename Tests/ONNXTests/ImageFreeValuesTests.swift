import Foundation
@testable import ONNX
import TensorEngine
import XCTest

/// A masked graph computes what is the same for every image once (`ImageFreeValues`): after a
/// zeroed weight, the nodes that only lead to it, and not at all what a zeroBranch merge drops.
final class ImageFreeValuesTests: XCTestCase {
    /// A residual block of engine-sized channels, a strided conv, a global average and a
    /// classifier. Nodes: 0 a, 1 ra, 2 b, 3 c (the projection), 4 sum, 5 block, 6 d, 7 rd,
    /// 8 pool, 9 flat, 10 logits.
    func program() throws -> (ONNXProgram, ONNXValue) {
        var builder = GraphBuilder(seed: 11)
        for (name, dims) in [("wa", [32, 16, 3, 3]), ("wb", [32, 32, 3, 3]), ("wc", [32, 16, 1, 1]), ("wd", [32, 32, 3, 3]),
                             ("ba", [32]), ("bb", [32]), ("bc", [32]), ("bd", [32]), ("fc", [10, 32]), ("fcb", [10])] {
            builder.weight(name, dims)
        }
        builder.conv("x", "wa", "ba", "a", kernel: 3)
        builder.node("Relu", ["a"], "ra")
        builder.conv("ra", "wb", "bb", "b", kernel: 3)
        builder.conv("x", "wc", "bc", "c", kernel: 1)
        builder.node("Add", ["b", "c"], "sum")
        builder.node("Relu", ["sum"], "block")
        builder.conv("block", "wd", "bd", "d", kernel: 3, stride: 2)
        builder.node("Relu", ["d"], "rd")
        builder.node("GlobalAveragePool", ["rd"], "pool")
        builder.node("Flatten", ["pool"], "flat")
        builder.node("Gemm", ["flat", "fc", "fcb"], "logits", ["transB": .int(1)])
        let program = try builder.program(input: [16, 6, 6], output: [10])
        return (program, .floats([40, 16, 6, 6], (0..<(40 * 16 * 36)).map { _ in builder.rng.nextNormal() }))
    }

    func testMaskedRunsComputeImageFreeValuesOnceAndGiveTheSameLogits() throws {
        Parallel.configure(threads: 2)
        let (program, x) = try program()
        let unit = { (weight: String) in try XCTUnwrap(program.units.first { $0.weight == weight }).name }
        let merge = try XCTUnwrap(program.units.first { $0.kind == .branch }).name
        let cases: [(String, ONNXProgram, ignoring: Set<Int>, shapeOnly: Set<Int>, unneeded: Set<Int>)] = [
            ("stem zeroed", try program.masked(.zeroKernel, unit: unit("wa")), [0], [], []),
            ("second conv zeroed", try program.masked(.zeroKernel, unit: unit("wb")), [2], [0, 1], []),
            ("projection zeroed", try program.masked(.zeroKernel, unit: unit("wc")), [3], [], []),
            ("last conv zeroed", try program.masked(.zeroKernel, unit: unit("wd")), [6], [0, 1, 2, 3, 4, 5], []),
            ("classifier zeroed", try program.masked(.zeroKernel, unit: unit("fc")), [10], Set(0...9), []),
            ("branch dropped", try program.masked(.zeroBranch, unit: merge), [], [], [0, 1, 2]),
            ("unmasked", program, [], [], []),
        ]
        for (what, masked, ignoring, shapeOnly, unneeded) in cases {
            let found = masked.imageFreeValues()
            XCTAssertEqual(found.ignoringInput, ignoring, what)
            XCTAssertEqual(found.shapeOnly, shapeOnly, what)
            XCTAssertEqual(found.unneeded, unneeded, what)
            let times = NodeTimes()
            NodeTimes.shared = times
            let logits = try XCTUnwrap(try masked.run(["x": x])["logits"])
            NodeTimes.shared = nil
            XCTAssertEqual(logits.shape, [40, 10], what)
            XCTAssertEqual(Set(times.nodes.map(\.node)), Set(0...10).subtracting(unneeded), "\(what): the nodes run")
            // Every image, every node: the same logits, within rounding (an image's kernel call
            // may take a batch of one instead of its group).
            let copy = try masked.replacing([:])
            copy.findsImageFreeValues = false
            let everyImage = try XCTUnwrap(try copy.run(["x": x])["logits"])
            let worst = zip(logits.floatValues, everyImage.floatValues).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? .nan
            XCTAssertLessThanOrEqual(worst, 1e-5, what)
            // An observed run computes what it shows on every image, and gives the same logits.
            var seen: [String: ONNXValue] = ["x": x]
            let observed = try XCTUnwrap(try masked.run(["x": x]) { name, value in seen[name] = value }["logits"])
            XCTAssertEqual(observed.floatValues.map(\.bitPattern), logits.floatValues.map(\.bitPattern), what)
            for (name, value) in seen { XCTAssertEqual(value.shape.first, 40, "\(what): \(name)") }
            // From every cut, on the values the observed run had live there, whatever part runs
            // image group by image group (40 images: 13 groups of 3 and one of 1): the same bits.
            for cut in 1..<masked.model.graph.nodes.count {
                let live = seen.filter { masked.liveValues(at: cut).contains($0.key) }
                XCTAssertEqual(try masked.run(live, from: cut)["logits"]?.floatValues.map(\.bitPattern),
                               logits.floatValues.map(\.bitPattern), "\(what), from cut \(cut)")
            }
        }
        // With the stem zeroed, every image gets the same logits; a dropped branch changes them.
        let stemZeroed = try XCTUnwrap(try program.masked(.zeroKernel, unit: unit("wa")).run(["x": x])["logits"]).floatValues
        XCTAssertNotEqual(Array(stemZeroed[0..<10]), Array(stemZeroed[10..<20]), "the shortcut still differs per image")
        let lastZeroed = try XCTUnwrap(try program.masked(.zeroKernel, unit: unit("wd")).run(["x": x])["logits"]).floatValues
        XCTAssertEqual(Array(lastZeroed[0..<10]), Array(lastZeroed[390..<400]), "after the last conv nothing differs per image")
    }
}

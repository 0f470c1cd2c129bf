import Datasets
import Foundation
@testable import ONNX
import TensorEngine
import XCTest

/// Networks as PyTorch 2.13 exports them (Fixtures/make_onnx_fixtures.py): a torchvision-style
/// ResNet-18 (7x7 stem, MaxPool, 1x1 downsample projections), a MobileNetV2 (depthwise
/// convolutions, ReLU6 as Clip, residual Adds) and a VGG (MaxPool, Dropout, Linear), each from
/// the default exporter (BN folded, weights in `.onnx.data`), the TorchScript exporter (BN folded)
/// and with BatchNormalization nodes kept. Every file gives onnxruntime's logits within 1e-4.
final class PyTorchExportTests: XCTestCase {
    static var fixtures: URL { Bundle.module.url(forResource: "exports", withExtension: nil)! }

    struct Reference: Decodable {
        struct Normalization: Decodable { let mean: [Float]; let std: [Float] }
        struct Network: Decodable { let accuracy: Double; let units: [String: [String: Double]] }
        let normalization: Normalization
        let networks: [String: Network]
    }

    func testEveryExportGivesOnnxruntimesLogits() throws {
        Parallel.configure(threads: 2)
        let root = PyTorchExportTests.fixtures
        let reference = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: root.appendingPathComponent("reference.json")))
        // The images as layersweep normalises them (the training split's mean and deviation).
        let test = try DatasetCatalog.load("fashion-mnist", dataDirectory: root.appendingPathComponent("data").path).test
        XCTAssertEqual(test.count, 256)
        let x = ONNXValue.floats([test.count] + test.shape, test.images)
        for arch in ["resnet18", "mobilenetv2", "vgg"] {
            let stored = try Data(contentsOf: root.appendingPathComponent("\(arch).logits"))
            let expected: [Float] = stored.withUnsafeBytes { raw in
                (0..<(stored.count / 4)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
            }
            for variant in ["", "-legacy", "-bn"] {
                let program = try ONNXProgram(contentsOf: root.appendingPathComponent("\(arch)\(variant).onnx"))
                XCTAssertEqual(program.inputNames.count, 1, "\(arch)\(variant)")
                let logits = try XCTUnwrap(try program.run([program.inputNames[0]: x])[program.outputNames[0]])
                XCTAssertEqual(logits.shape, [256, 10], "\(arch)\(variant)")
                var worst: Float = 0
                for (a, b) in zip(logits.floatValues, expected) { worst = max(worst, abs(a - b) / max(1, abs(b))) }
                XCTAssertLessThanOrEqual(worst, 1e-4, "\(arch)\(variant): worst relative difference \(worst)")
                var correct = 0
                for i in 0..<test.count {
                    let row = logits.floatValues[(i * 10)..<((i + 1) * 10)]
                    if row.firstIndex(of: row.max()!)! - i * 10 == Int(test.labels[i]) { correct += 1 }
                }
                XCTAssertEqual(Double(correct) / Double(test.count), reference.networks[arch]!.accuracy, accuracy: 1.0 / 256, "\(arch)\(variant)")
            }
        }
    }

    /// Units carry PyTorch's module paths in all three exports, and every zeroKernel and zeroBranch
    /// accuracy is PyTorch's within 0.002 (BN folded or not: the folded bias is the norm's constant).
    func testUnitsAreNamedByModulePathAndMasksGivePyTorchsAccuracies() throws {
        Parallel.configure(threads: 2)
        let root = PyTorchExportTests.fixtures
        let reference = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: root.appendingPathComponent("reference.json")))
        let test = try DatasetCatalog.load("fashion-mnist", dataDirectory: root.appendingPathComponent("data").path).test
        let x = ONNXValue.floats([test.count] + test.shape, test.images)
        func accuracy(_ program: ONNXProgram) throws -> Double {
            let logits = try XCTUnwrap(try program.run([program.inputNames[0]: x])[program.outputNames[0]]).floatValues
            var correct = 0
            for i in 0..<test.count {
                let row = logits[(i * 10)..<((i + 1) * 10)]
                if row.firstIndex(of: row.max()!)! - i * 10 == Int(test.labels[i]) { correct += 1 }
            }
            return Double(correct) / Double(test.count)
        }
        for (arch, expected) in reference.networks.sorted(by: { $0.key < $1.key }) {
            for variant in ["", "-legacy", "-bn"] {
                let program = try ONNXProgram(contentsOf: root.appendingPathComponent("\(arch)\(variant).onnx"))
                let names = Set(program.units.map(\.name))
                XCTAssertEqual(names, Set(expected.units.keys), "\(arch)\(variant): units \(program.units.map(\.name))")
                for (unit, masks) in expected.units.sorted(by: { $0.key < $1.key }) where names.contains(unit) {
                    // (The other references, recalibration and pruning, are the sweep tests'.)
                    for (mask, torchAccuracy) in masks {
                        guard let graphMask = ONNXProgram.Mask(rawValue: mask) else { continue }
                        let masked = try program.masked(graphMask, unit: unit)
                        XCTAssertEqual(try accuracy(masked), torchAccuracy, accuracy: 0.002, "\(arch)\(variant) \(unit) \(mask)")
                    }
                }
            }
        }
    }
    /// ShuffleNet's `x.chunk(2, dim=1)`, as the TorchScript exporter writes it: Slices whose ends
    /// come from `Shape`, `Gather` and an `Add` of a Constant node's value. That Add reads two
    /// node outputs but no image: no branch unit. The block's real residual Add is one, with the
    /// input that passed through no convolution as its shortcut; the graph runs.
    func testShapeArithmeticIsNoResidualMerge() throws {
        var builder = GraphBuilder(seed: 5)
        for (name, dims) in [("wa", [8, 8, 3, 3]), ("ba", [8]), ("wb", [4, 4, 1, 1]), ("bb", [4]), ("wc", [8, 8, 3, 3]), ("bc", [8])] {
            builder.weight(name, dims)
        }
        builder.constant("channel", [1]); builder.constant("zero", [0]); builder.constant("axis", [1]); builder.constant("two", [2])
        var one = ONNXTensorProto()
        (one.name, one.dims, one.dataType, one.int64Data) = ("", [1], 7, [1])
        builder.graph.nodes.append(ONNXNode(name: "/stage2/stage2.1/Constant_2", opType: "Constant", inputs: [], outputs: ["k"], attributes: ["value": .tensor(one)]))
        builder.conv("x", "wa", "ba", "a", kernel: 3)
        builder.node("Relu", ["a"], "r")
        builder.node("Shape", ["r"], "shape")
        builder.node("Gather", ["shape", "channel"], "channels")
        builder.graph.nodes.append(ONNXNode(name: "/stage2/stage2.1/Add", opType: "Add", inputs: ["channels", "k"], outputs: ["rounded"]))
        builder.node("Div", ["rounded", "two"], "half")
        builder.node("Slice", ["r", "zero", "half", "axis"], "kept")
        builder.node("Slice", ["r", "half", "channels", "axis"], "taken")
        builder.conv("taken", "wb", "bb", "branch", kernel: 1)
        builder.node("Concat", ["kept", "branch"], "joined", ["axis": .int(1)])
        builder.conv("joined", "wc", "bc", "c", kernel: 3)
        builder.graph.nodes.append(ONNXNode(name: "/layer1/layer1.0/Add", opType: "Add", inputs: ["c", "x"], outputs: ["sum"]))
        builder.node("GlobalAveragePool", ["sum"], "pool")
        builder.node("Flatten", ["pool"], "logits")
        let program = try builder.program(input: [8, 6, 6], output: [8])
        XCTAssertEqual(program.units.filter { $0.kind == .branch }.map(\.name), ["layer1.0"])
        XCTAssertEqual(program.units.first { $0.kind == .branch }?.shortcut, 1)
        XCTAssertEqual(program.units.filter { $0.kind != .branch }.count, 3)
        let x = ONNXValue.floats([2, 8, 6, 6], (0..<(2 * 8 * 36)).map { _ in builder.rng.nextNormal() })
        XCTAssertEqual(try program.run(["x": x])["logits"]?.shape, [2, 8])
    }

    /// A file exported with one example image and no dynamic batch (the README's three lines):
    /// its input is [1, C, H, W] and its flatten a Reshape to a constant [1, -1] (a channel
    /// shuffle's to [1, 2, 4, 6, 6]). Run on a batch, each image gives the logits it gives
    /// alone; a Reshape of a constant that does not carry the batch ([2] to [1, 2, 1, 1], a
    /// per-channel shift) is left as it is.
    func testAFixedBatchExportRunsOnBatchesImageByImageValues() throws {
        Parallel.configure(threads: 2)
        var builder = GraphBuilder(seed: 21)
        for (name, dims) in [("wa", [16, 8, 3, 3]), ("ba", [16]), ("fc", [10, 16 * 36]), ("fcb", [10])] { builder.weight(name, dims) }
        builder.constant("shuffle", [1, 2, 8, 6, 6]); builder.constant("back", [1, 16, 6, 6]); builder.constant("flat", [1, -1])
        builder.constant("pershape", [1, 2, 1, 1])
        var shift = ONNXTensorProto()
        (shift.name, shift.dims, shift.dataType, shift.floatData) = ("shift", [2], 1, [0.25, -0.5])
        builder.graph.initializers.append(shift)
        builder.node("Reshape", ["shift", "pershape"], "shift4", ["allowzero": .int(1)])
        builder.constant("zero", [0]); builder.constant("two", [2]); builder.constant("axis", [1])
        builder.node("Slice", ["x", "zero", "two", "axis"], "firstTwo")
        builder.node("Add", ["firstTwo", "shift4"], "shifted")
        builder.conv("x", "wa", "ba", "a", kernel: 3)
        builder.node("Relu", ["a"], "r")
        builder.node("Reshape", ["r", "shuffle"], "grouped", ["allowzero": .int(1)])
        builder.node("Transpose", ["grouped"], "swapped", ["perm": .ints([0, 2, 1, 3, 4])])
        builder.node("Reshape", ["swapped", "back"], "mixed", ["allowzero": .int(1)])
        builder.node("Reshape", ["mixed", "flat"], "flattened", ["allowzero": .int(1)])
        builder.node("Gemm", ["flattened", "fc", "fcb"], "logits", ["transB": .int(1)])
        builder.node("ReduceSum", ["shifted"], "extra", ["keepdims": .int(0)])
        var graph = builder.graph
        graph.inputs = [ONNXValueInfo(name: "x", shape: [1, 8, 6, 6])]
        graph.outputs = [ONNXValueInfo(name: "logits", shape: [1, 10]), ONNXValueInfo(name: "extra", shape: [])]
        var model = ONNXModel()
        (model.graph, model.opsets) = (graph, ["": 17])
        let program = try ONNXProgram(model, directory: nil)
        let images = 6, size = 8 * 36
        let x = (0..<(images * size)).map { _ in builder.rng.nextNormal() }
        let batch = try XCTUnwrap(try program.run(["x": .floats([images, 8, 6, 6], x)])["logits"])
        XCTAssertEqual(batch.shape, [images, 10])
        for i in 0..<images {
            let alone = try XCTUnwrap(try program.run(["x": .floats([1, 8, 6, 6], Array(x[(i * size)..<((i + 1) * size)]))])["logits"])
            for (a, b) in zip(batch.floatValues[(i * 10)..<((i + 1) * 10)], alone.floatValues) { XCTAssertEqual(a, b, accuracy: 1e-5 * max(1, abs(b))) }
        }
        let reshapes = program.model.graph.nodes.filter { $0.opType == "Reshape" }
        XCTAssertEqual(reshapes.map { program.constants[$0.inputs[1]]?.intValues ?? [] }, [[1, 2, 1, 1], [0, 2, 8, 6, 6], [0, 16, 6, 6], [0, -1]])
        // A Transpose that puts the batch last loses it: such a file runs on its traced batch
        // only, and any other is refused in one line that says how to export it.
        var lost = graph
        lost.nodes.insert(ONNXNode(name: "moved", opType: "Transpose", inputs: ["mixed"], outputs: ["moved"], attributes: ["perm": .ints([1, 2, 3, 0])]), at: lost.nodes.count - 3)
        let flattenIndex = try XCTUnwrap(lost.nodes.firstIndex { $0.outputs == ["flattened"] })
        lost.nodes[flattenIndex].inputs[0] = "moved"
        (model.graph, model.opsets) = (lost, ["": 17])
        let fixed = try ONNXProgram(model, directory: nil)
        XCTAssertEqual(try fixed.run(["x": .floats([1, 8, 6, 6], Array(x[0..<size]))])["logits"]?.shape, [1, 10])
        XCTAssertThrowsError(try fixed.run(["x": .floats([images, 8, 6, 6], x)])) { error in
            XCTAssertTrue("\(error)".contains("fixed batch of 1") && "\(error)".contains("dynamic_shapes"), "\(error)")
        }
    }

    /// Gelu (opset 20, which the exporters write for nn.GELU) in both forms gives PyTorch's
    /// values (torch.nn.functional.gelu, printed by torch 2.13); the backend node tests Debian
    /// ships predate the operator.
    func testGeluGivesPyTorchsValuesInBothForms() throws {
        let x: [Float] = [-3, -1, -0.5, 0, 0.5, 1, 3]
        let expected: [String: [Float]] = [
            "none": [-0.004050225019454956, -0.15865525603294373, -0.1542687714099884, 0, 0.3457312285900116, 0.8413447141647339, 2.9959497451782227],
            "tanh": [-0.0036374330520629883, -0.15880799293518066, -0.1542859971523285, 0, 0.3457140028476715, 0.8411920070648193, 2.9963626861572266],
        ]
        for (form, want) in expected.sorted(by: { $0.key < $1.key }) {
            var builder = GraphBuilder(seed: 0)
            builder.node("Gelu", ["x"], "y", ["approximate": .string(form)])
            let program = try builder.program(input: [7], output: [7], names: ("x", "y"))
            let y = try XCTUnwrap(try program.run(["x": .floats([1, 7], x)])["y"]).floatValues
            for (a, b) in zip(y, want) { XCTAssertEqual(a, b, accuracy: 1e-6, form) }
        }
    }

    /// Every residual Add of the exports is found, and a plain run (residual Adds done by the
    /// convolution before them where its channels fill the engine's blocks) gives the bits of a
    /// run that observes every value, node by node. (The exports are narrow: most of their convs
    /// take the plain path, so depth first is the engine-sized graph's test below.)
    func testResidualAddsAreFoundAndRunsGiveTheBitsOfNodeByNode() throws {
        Parallel.configure(threads: 2)
        let root = PyTorchExportTests.fixtures
        let test = try DatasetCatalog.load("fashion-mnist", dataDirectory: root.appendingPathComponent("data").path).test
        let x = ONNXValue.floats([64] + test.shape, Array(test.images.prefix(64 * test.shape.reduce(1, *))))
        // ResNet-18: 8 BasicBlocks, each an Add after conv2 (the downsample's conv is the other input);
        // MobileNetV2: the three inverted residuals with a skip (no Relu after the Add).
        for (arch, adds, relus) in [("resnet18", 8, 8), ("mobilenetv2", 3, 0), ("vgg", 0, 0)] {
            for variant in ["", "-legacy", "-bn"] {
                let program = try ONNXProgram(contentsOf: root.appendingPathComponent("\(arch)\(variant).onnx"))
                let graph = program.model.graph
                let norms = ONNXProgram.batchNormsAfterConvolutions(graph, constants: program.constants, outputs: Set(program.outputNames))
                let residuals = ONNXProgram.residualsAfterConvolutions(graph, outputs: Set(program.outputNames), norms: norms)
                XCTAssertEqual(Set(residuals.values.map(\.add)).count, adds, "\(arch)\(variant)")
                XCTAssertEqual(Set(residuals.values.compactMap(\.relu)).count, relus, "\(arch)\(variant)")
                let fused = try XCTUnwrap(try program.run([program.inputNames[0]: x])[program.outputNames[0]])
                let oneByOne = try XCTUnwrap(try program.run([program.inputNames[0]: x]) { _, _ in }[program.outputNames[0]])
                let differing = zip(fused.floatValues, oneByOne.floatValues).filter { $0.bitPattern != $1.bitPattern }
                XCTAssertEqual(differing.count, 0, "\(arch)\(variant): \(differing.count) logits differ, first \(differing.prefix(3))")
            }
        }
    }
    /// A residual block of engine-sized channels (16 and 32: whole blocks on AVX2 and AVX-512),
    /// a strided conv, a global average and a classifier: the batch runs image group by image
    /// group up to the Flatten before the Gemm, with the block's Add and Relu done by its second
    /// convolution, and gives the bits of the batch run node by node.
    func testAnEngineSizedGraphRunsDepthFirstWithTheSameBits() throws {
        Parallel.configure(threads: 2)
        var builder = GraphBuilder(seed: 7)
        for (name, dims) in [("wa", [32, 16, 3, 3]), ("wb", [32, 32, 3, 3]), ("wc", [32, 16, 1, 1]), ("wd", [32, 32, 3, 3]),
                             ("ba", [32]), ("bb", [32]), ("bc", [32]), ("bd", [32]), ("fc", [10, 32]), ("fcb", [10])] {
            builder.weight(name, dims)
        }
        builder.conv("x", "wa", "ba", "a", kernel: 3)
        builder.node("Relu", ["a"], "ra")
        builder.conv("ra", "wb", "bb", "b", kernel: 3)
        builder.conv("x", "wc", "bc", "c", kernel: 1)  // the projection, after the conv it is added to
        builder.node("Add", ["b", "c"], "sum")
        builder.node("Relu", ["sum"], "block")
        builder.conv("block", "wd", "bd", "d", kernel: 3, stride: 2)
        builder.node("Relu", ["d"], "rd")
        builder.node("GlobalAveragePool", ["rd"], "pool")
        builder.node("Flatten", ["pool"], "flat")
        builder.node("Gemm", ["flat", "fc", "fcb"], "logits", ["transB": .int(1)])
        let program = try builder.program(input: [16, 12, 12], output: [10])
        let graph = builder.graph
        let x = ONNXValue.floats([64, 16, 12, 12], (0..<(64 * 16 * 144)).map { _ in builder.rng.nextNormal() })
        let norms = ONNXProgram.batchNormsAfterConvolutions(graph, constants: program.constants, outputs: ["logits"])
        XCTAssertEqual(ONNXProgram.residualsAfterConvolutions(graph, outputs: ["logits"], norms: norms).mapValues(\.relu), [2: 5, 3: 5])
        let part = try XCTUnwrap(try program.imageGroupByImageGroup(["x": x], from: 0))
        let (end, live) = (part.end, part.live)
        XCTAssertEqual(graph.nodes[end].opType, "Gemm")
        XCTAssertEqual(live["flat"]?.shape, [64, 32])
        let depthFirst = try XCTUnwrap(try program.run(["x": x])["logits"])
        let oneByOne = try XCTUnwrap(try program.run(["x": x]) { _, _ in }["logits"])
        XCTAssertEqual(depthFirst.shape, [64, 10])
        XCTAssertEqual(depthFirst.floatValues.map(\.bitPattern), oneByOne.floatValues.map(\.bitPattern))
        // A run from a cut inside the block (the values live there, from a node-by-node run).
        var every: [String: ONNXValue] = ["x": x]
        _ = try program.run(["x": x]) { name, value in every[name] = value }
        let kept = every.filter { program.liveValues(at: 2).contains($0.key) }
        XCTAssertEqual(try program.run(kept, from: 2)["logits"]?.floatValues.map(\.bitPattern), oneByOne.floatValues.map(\.bitPattern))
        // Observing only the values live at a cut (as the prefix cache does) leaves the other
        // nodes fused, and still sees each watched value as made: the convolutions the Add reads
        // (cut 4) and the Add before its Relu (cut 5) too.
        for cut in 1...7 {
            let names = Set(program.liveValues(at: cut))
            var watched: [String: ONNXValue] = ["x": x]  // the graph's input is given, not made
            let logits = try program.run(["x": x], observing: names) { name, value in watched[name] = value }["logits"]
            XCTAssertEqual(Set(watched.keys).subtracting(["x"]), names.subtracting(["x"]), "cut \(cut)")
            for name in names {
                XCTAssertEqual(watched[name]?.floatValues.map(\.bitPattern), every[name]?.floatValues.map(\.bitPattern), "cut \(cut): \(name)")
            }
            XCTAssertEqual(logits?.floatValues.map(\.bitPattern), oneByOne.floatValues.map(\.bitPattern), "cut \(cut)")
            XCTAssertEqual(try program.run(watched, from: cut)["logits"]?.floatValues.map(\.bitPattern),
                           oneByOne.floatValues.map(\.bitPattern), "cut \(cut)")
        }
    }

    /// A MobileNetV2-style stage of 20 channels (neither whole blocks of 16 nor of 8): the
    /// expansion, a depthwise conv, the projection with its residual Add and a ReLU6 keep the
    /// engine's blocked layout with a zero-padded last block, within rounding of the reference
    /// kernels; depth first, node by node and from every cut give the same bits.
    func testChannelsThatDoNotFillBlocksRunBlockedPadded() throws {
        try XCTSkipIf(BlockedLayout.block == 0, "oneDNN has no blocked kernels on this CPU")
        Parallel.configure(threads: 2)
        var builder = GraphBuilder(seed: 13)
        for (name, dims) in [("wa", [20, 16, 3, 3]), ("ba", [20]), ("we", [48, 20, 1, 1]), ("be", [48]), ("wd", [48, 1, 3, 3]),
                             ("bd", [48]), ("wp", [20, 48, 1, 1]), ("bp", [20]), ("fc", [10, 20]), ("fcb", [10])] {
            builder.weight(name, dims)
        }
        builder.scalar("six", 6)
        builder.scalar("zero", 0)
        builder.conv("x", "wa", "ba", "a", kernel: 3)
        builder.node("Clip", ["a", "zero", "six"], "ra")
        builder.conv("ra", "we", "be", "e", kernel: 1)
        builder.node("Clip", ["e", "zero", "six"], "re")
        builder.conv("re", "wd", "bd", "d", kernel: 3)
        builder.graph.nodes[builder.graph.nodes.count - 1].attributes["group"] = .int(48)
        builder.node("Clip", ["d", "zero", "six"], "rd")
        builder.conv("rd", "wp", "bp", "p", kernel: 1)
        builder.node("Add", ["p", "ra"], "sum")
        builder.node("GlobalAveragePool", ["sum"], "pool")
        builder.node("Flatten", ["pool"], "flat")
        builder.node("Gemm", ["flat", "fc", "fcb"], "logits", ["transB": .int(1)])
        let program = try builder.program(input: [16, 9, 9], output: [10])
        let x = ONNXValue.floats([24, 16, 9, 9], (0..<(24 * 16 * 81)).map { _ in builder.rng.nextNormal() })
        let times = NodeTimes()
        NodeTimes.shared = times
        var every: [String: ONNXValue] = ["x": x]
        let oneByOne = try XCTUnwrap(try program.run(["x": x]) { name, value in every[name] = value }["logits"])
        NodeTimes.shared = nil
        let blocked = Dictionary(times.nodes.map { (builder.graph.nodes[$0.node].outputs[0], $0.blocked) }) { a, _ in a }
        for name in ["a", "e", "d", "sum"] { XCTAssertEqual(blocked[name], true, "\(name) stays blocked") }
        XCTAssertEqual(every["sum"]?.shape, [24, 20, 9, 9])
        let depthFirst = try XCTUnwrap(try program.run(["x": x])["logits"])
        XCTAssertEqual(depthFirst.floatValues.map(\.bitPattern), oneByOne.floatValues.map(\.bitPattern))
        for cut in 1..<(builder.graph.nodes.count - 1) {
            let kept = every.filter { program.liveValues(at: cut).contains($0.key) }
            XCTAssertEqual(try program.run(kept, from: cut)["logits"]?.floatValues.map(\.bitPattern),
                           oneByOne.floatValues.map(\.bitPattern), "cut \(cut)")
        }
        let reference = try builder.program(input: [16, 9, 9], output: [10])
        reference.usesEngine = false
        var plainValues: [String: ONNXValue] = [:]
        let expected = try XCTUnwrap(try reference.run(["x": x]) { name, value in plainValues[name] = value }["logits"]).floatValues
        for (a, b) in zip(oneByOne.floatValues, expected) { XCTAssertEqual(a, b, accuracy: 1e-4 * max(1, abs(b))) }
        for name in ["ra", "re", "rd", "sum"] {
            let (ours, theirs) = (try XCTUnwrap(every[name]).floatValues, try XCTUnwrap(plainValues[name]).floatValues)
            XCTAssertEqual(ours.count, theirs.count, name)
            XCTAssertLessThan(zip(ours, theirs).map { abs($0 - $1) }.max() ?? 1, 1e-4, name)
        }
    }

    /// An option-A shortcut as PyTorch exports `F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, 8, 8))`
    /// (two strided Slices and a channel Pad) beside a strided conv, added and averaged: the
    /// Slices and the Pad run on the engine's blocked layout and give exactly the values of
    /// the plain operators on the same input; depth first, node by node and from a cut inside
    /// agree bit for bit, and a run without engine kernels agrees within rounding.
    func testAnOptionAShortcutStaysBlockedWithThePlainOperatorsValues() throws {
        Parallel.configure(threads: 2)
        var builder = GraphBuilder(seed: 11)
        for (name, dims) in [("wa", [16, 16, 3, 3]), ("ba", [16]), ("wb", [32, 16, 3, 3]), ("bb", [32]), ("fc", [10, 32]), ("fcb", [10])] {
            builder.weight(name, dims)
        }
        builder.constant("start", [0]); builder.constant("end", [Int64(Int32.max)]); builder.constant("step", [2])
        builder.constant("h", [2]); builder.constant("w", [3]); builder.constant("pads", [0, 8, 0, 0, 0, 8, 0, 0])
        builder.conv("x", "wa", "ba", "a", kernel: 3)
        builder.node("Relu", ["a"], "r")
        builder.node("Slice", ["r", "start", "end", "h", "step"], "rows")
        builder.node("Slice", ["rows", "start", "end", "w", "step"], "picked")
        builder.node("Pad", ["picked", "pads"], "shortcut")
        builder.conv("r", "wb", "bb", "b", kernel: 3, stride: 2)
        builder.node("Add", ["b", "shortcut"], "sum")
        builder.node("Relu", ["sum"], "block")
        builder.node("GlobalAveragePool", ["block"], "pool")
        builder.node("Flatten", ["pool"], "flat")
        builder.node("Gemm", ["flat", "fc", "fcb"], "logits", ["transB": .int(1)])
        let program = try builder.program(input: [16, 12, 12], output: [10])
        let x = ONNXValue.floats([32, 16, 12, 12], (0..<(32 * 16 * 144)).map { _ in builder.rng.nextNormal() })
        var seen: [String: ONNXValue] = [:]
        let oneByOne = try XCTUnwrap(try program.run(["x": x]) { name, value in seen[name] = value }["logits"])
        // The shortcut's nodes alone, on the plain relu output: the plain operators' values.
        var shortcutOnly = GraphBuilder(seed: 0)
        shortcutOnly.graph.nodes = builder.graph.nodes.filter { ["rows", "picked", "shortcut"].contains($0.outputs[0]) || $0.opType == "Constant" }
        shortcutOnly.graph.initializers = builder.graph.initializers
        let plainProgram = try shortcutOnly.program(input: [16, 12, 12], output: [32, 6, 6], names: ("r", "shortcut"))
        let r = try XCTUnwrap(seen["r"]), shortcut = try XCTUnwrap(seen["shortcut"])
        XCTAssertEqual(shortcut.shape, [32, 32, 6, 6])
        let plain = try XCTUnwrap(try plainProgram.run(["r": r])["shortcut"])
        XCTAssertEqual(plain.shape, shortcut.shape)
        XCTAssertEqual(zip(shortcut.floatValues, plain.floatValues).filter { $0.bitPattern != $1.bitPattern }.count, 0)
        XCTAssertEqual(try XCTUnwrap(try program.run(["x": x])["logits"]).floatValues.map(\.bitPattern), oneByOne.floatValues.map(\.bitPattern))
        var live: [String: ONNXValue] = [:]
        for name in program.liveValues(at: 3) { live[name] = seen[name] ?? x }
        XCTAssertEqual(try program.run(live, from: 3)["logits"]?.floatValues.map(\.bitPattern), oneByOne.floatValues.map(\.bitPattern))
        let reference = try builder.program(input: [16, 12, 12], output: [10])
        reference.usesEngine = false
        let expected = try XCTUnwrap(try reference.run(["x": x])["logits"]).floatValues
        for (a, b) in zip(oneByOne.floatValues, expected) { XCTAssertEqual(a, b, accuracy: 1e-4 * max(1, abs(b))) }
    }
}

/// A graph of engine-sized convolutions and other nodes, with random weights, for tests.
struct GraphBuilder {
    var rng: RandomSource
    var graph = ONNXGraph()

    init(seed: UInt64) { rng = RandomSource(seed: seed) }

    mutating func weight(_ name: String, _ dims: [Int]) {
        var t = ONNXTensorProto()
        (t.name, t.dims, t.dataType) = (name, dims.map(Int64.init), 1)
        let fanIn = Float(dims.dropFirst().reduce(1, *))
        t.floatData = (0..<dims.reduce(1, *)).map { _ in rng.nextNormal() / fanIn.squareRoot() }
        graph.initializers.append(t)
    }

    mutating func scalar(_ name: String, _ value: Float) {
        var t = ONNXTensorProto()
        (t.name, t.dims, t.dataType, t.floatData) = (name, [], 1, [value])
        graph.initializers.append(t)
    }

    mutating func constant(_ name: String, _ values: [Int64]) {
        var t = ONNXTensorProto()
        (t.name, t.dims, t.dataType, t.int64Data) = (name, [Int64(values.count)], 7, values)
        graph.initializers.append(t)
    }

    mutating func conv(_ x: String, _ w: String, _ b: String, _ y: String, kernel: Int, stride: Int = 1) {
        let pad = Int64(kernel / 2)
        graph.nodes.append(ONNXNode(name: y, opType: "Conv", inputs: [x, w, b], outputs: [y], attributes: [
            "kernel_shape": .ints([Int64(kernel), Int64(kernel)]), "pads": .ints([pad, pad, pad, pad]),
            "strides": .ints([Int64(stride), Int64(stride)])]))
    }

    mutating func node(_ op: String, _ inputs: [String], _ output: String, _ attributes: [String: ONNXAttribute] = [:]) {
        graph.nodes.append(ONNXNode(name: output, opType: op, inputs: inputs, outputs: [output], attributes: attributes))
    }

    /// The graph as a program reading `names.input` (batch free, then `input`) and giving `names.output`.
    func program(input: [Int], output: [Int], names: (input: String, output: String) = ("x", "logits")) throws -> ONNXProgram {
        var graph = graph
        graph.inputs = [ONNXValueInfo(name: names.input, shape: [nil] + input.map { Int64($0) })]
        graph.outputs = [ONNXValueInfo(name: names.output, shape: [nil] + output.map { Int64($0) })]
        var model = ONNXModel()
        (model.graph, model.opsets) = (graph, ["": 17])
        return try ONNXProgram(model, directory: nil)
    }
}

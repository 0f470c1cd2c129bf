import EngineTestSupport
import Models
import TensorEngine
import XCTest

final class ModelStructureTests: XCTestCase {
    override func setUp() { Parallel.configure(threads: 2) }

    func build(_ name: String, input: [Int] = [3, 32, 32], classes: Int = 10, seed: UInt64 = 0) throws -> Network {
        Network.build(try ModelSpec(name: name, inputShape: input, classes: classes), seed: seed)
    }

    func testResNet20HasTheKnownParameterCountAndUnits() throws {
        let net = try build("resnet20")
        XCTAssertEqual(net.parameterCount, 269_722, "CIFAR ResNet-20 with option-A shortcuts has 0.27M parameters")
        XCTAssertEqual(net.units.filter { $0.kind == .conv }.count, 19)
        XCTAssertEqual(net.units.filter { $0.kind == .branch }.count, 9)
        XCTAssertEqual(net.units.map(\.name).prefix(4), ["stem.conv", "stage1.block1", "stage1.block1.conv1", "stage1.block1.conv2"])
        XCTAssertEqual(net.units.last?.name, "fc")
        XCTAssertEqual(net.unit("stage2.block1.conv1")?.parameterCount, 16 * 32 * 9)
        XCTAssertEqual(net.unit("stage2.block1")?.parameterNames,
                       ["stage2.block1.bn1.bias", "stage2.block1.bn1.weight", "stage2.block1.bn2.bias", "stage2.block1.bn2.weight",
                        "stage2.block1.conv1.weight", "stage2.block1.conv2.weight"])
        XCTAssertEqual(net.units.filter(\.isTransition).map(\.name),
                       ["stem.conv", "stage2.block1", "stage2.block1.conv1", "stage3.block1", "stage3.block1.conv1"])
        XCTAssertNil(net.parameter("stage3.block3.bn2.running_mean"), "buffers are not parameters")
        XCTAssertTrue(net.buffers.contains { $0.0 == "stage3.block3.bn2.running_var" })
    }

    func testDeeperResNetsPlainNetsAndOptionB() throws {
        XCTAssertEqual(try build("resnet32").units.filter { $0.kind == .conv }.count, 31)
        XCTAssertEqual(try build("resnet56").units.filter { $0.kind == .conv }.count, 55)
        let plain = try build("plain20")
        XCTAssertEqual(plain.parameterCount, 269_722, "plain nets have the same layers, without shortcuts")
        let optionB = try build("resnet20-b")
        XCTAssertEqual(optionB.units.filter { $0.name.hasSuffix("shortcut.conv") }.count, 2)
        XCTAssertEqual(optionB.parameterCount, 269_722 + 16 * 32 + 64 + 32 * 64 + 128)
    }

    /// Only the first layer with weights skips its input gradient (nothing reads the images').
    func testOnlyTheFirstLayerSkipsItsInputGradient() throws {
        for (name, first) in [("resnet8", "stem.conv"), ("fcn-64x2-bn", "fc1"), ("student-c2-w1", "conv1")] {
            let net = try build(name, input: [1, 8, 8])
            let skipping = net.root.namedLayers().filter { _, layer in
                (layer as? Conv2d).map { !$0.computesInputGradient } ?? (layer as? Linear).map { !$0.computesInputGradient } ?? false
            }
            XCTAssertEqual(skipping.map(\.0), [first], name)
        }
        var rng = RandomSource(seed: 4)
        let (full, skipping) = (Linear(6, 3, rng: &rng), Linear(6, 3, rng: &rng))
        skipping.weight.value.assign(full.weight.value)
        skipping.computesInputGradient = false
        let x = randomTensor([4, 6], seed: 5), dy = randomTensor([4, 3], seed: 6)
        _ = full.forward(x, training: true); _ = skipping.forward(x, training: true)
        XCTAssertEqual(skipping.backward(dy).array, [Float](repeating: 0, count: 24))
        _ = full.backward(dy)
        XCTAssertEqual(skipping.weight.grad.array, full.weight.grad.array)
    }

    func testFCNAndStudentShapes() throws {
        let fcn = try build("fcn-1024x3-bn", input: [1, 28, 28])
        XCTAssertEqual(fcn.units.map(\.name), ["fc1", "fc2", "fc3", "readout"])
        XCTAssertEqual(fcn.parameterCount, 784 * 1024 + 2 * 1024 * 1024 + 3 * 2048 + 1024 * 10 + 10)
        let y = fcn.forward(randomTensor([3, 1, 28, 28], seed: 1), training: true)
        XCTAssertEqual(y.shape, [3, 10])
        for k in 0...4 {
            let student = try build("student-c\(k)-w0.5", input: [3, 32, 32])
            XCTAssertEqual(student.units.filter { $0.kind == .conv }.count, k)
            XCTAssertEqual(student.forward(randomTensor([2, 3, 32, 32], seed: 2), training: true).shape, [2, 10])
        }
    }

    func testBadModelNamesExplainWhatIsValid() {
        for name in ["resnet21", "vgg16", "fcn-abc", "student-c9", "plain20-b"] {
            XCTAssertThrowsError(try ModelSpec(name: name, inputShape: [1, 28, 28], classes: 10), name) { error in
                XCTAssertTrue("\(error)".contains("resnet20"), "\(error) should list valid names")
            }
        }
        XCTAssertThrowsError(try ModelSpec(name: "resnet20", inputShape: [28, 28], classes: 10))
    }

    func testSameSeedSameWeightsDifferentSeedDifferent() throws {
        let a = try build("resnet20", seed: 4), b = try build("resnet20", seed: 4), c = try build("resnet20", seed: 5)
        XCTAssertEqual(a.stateTensors.map { $0.1.array }, b.stateTensors.map { $0.1.array })
        XCTAssertNotEqual(a.parameters[0].1.value.array, c.parameters[0].1.value.array)
    }

    func testZeroBranchLeavesShortcut() throws {
        let net = try build("resnet8", input: [1, 8, 8])
        guard let block = net.layer("stage1.block1") as? BasicBlock else { return XCTFail("no block") }
        let x = randomTensor([2, 16, 8, 8], seed: 3)
        block.branchEnabled = false
        let y = block.forward(x, training: false)
        for i in 0..<x.count { XCTAssertEqual(y.data[i], max(x.data[i], 0)) }
    }
}

/// The whole network's gradient against finite differences (along each tensor's gradient).
final class NetworkGradientTests: XCTestCase {
    override func setUp() { Parallel.configure(threads: 2) }

    func checkNetwork(_ name: String, input: [Int], batch: Int, training: Bool, seed: UInt64, epsilon: Double = 1e-3) throws {
        let net = Network.build(try ModelSpec(name: name, inputShape: input, classes: 3), seed: seed)
        let x = randomTensor([batch] + input, seed: seed + 1)
        let labels = (0..<batch).map { Int32($0 % 3) }
        for (_, p) in net.parameters { p.zeroGrad() }
        // Warm the BN running statistics so eval mode is not the identity.
        _ = net.forward(x, training: true)
        let result = Loss.softmaxCrossEntropy(net.forward(x, training: training), labels: labels)
        net.backward(result.gradient)
        let objective = { Double(Loss.softmaxCrossEntropy(net.forward(x, training: training), labels: labels).loss) }
        let tensors = net.parameters.map { ($0.0, $0.1.value, $0.1.grad) }
        GradientCheck.compareAlongGradient(tensors, objective: objective, epsilon: epsilon)
        XCTAssertGreaterThan(tensors.filter { $0.2.sumOfSquares > 0 }.count, tensors.count / 2, "most tensors get a gradient")
    }

    func testResNet20GradientTrainingMode() throws {
        try checkNetwork("resnet20", input: [1, 8, 8], batch: 4, training: true, seed: 10)
    }

    func testResNet20GradientEvalModeOptionB() throws {
        try checkNetwork("resnet20-b", input: [2, 8, 8], batch: 2, training: false, seed: 20)
    }

    func testPlainAndFCNAndStudentGradients() throws {
        try checkNetwork("plain8", input: [1, 6, 6], batch: 3, training: true, seed: 30)
        // A 16-unit BN layer on a batch of 8 is strongly curved: a smaller step keeps the
        // second-order error under the tolerance (the Float32 noise is still far below it).
        try checkNetwork("fcn-16x2-bn", input: [1, 4, 4], batch: 8, training: true, seed: 40, epsilon: 1e-4)
        try checkNetwork("student-c3-w0.25", input: [3, 8, 8], batch: 3, training: true, seed: 50)
    }

    /// The size check runs before anything is allocated, so it must count what `build` makes.
    func testEstimatedParametersMatchTheBuiltNetworks() throws {
        for (name, input) in [("resnet8", [1, 28, 28]), ("resnet20", [3, 32, 32]), ("resnet20-b", [1, 28, 28]), ("plain20", [1, 28, 28]),
                              ("resnet32-b", [3, 32, 32]), ("fcn-64x3-bn", [1, 28, 28]), ("fcn-32-16", [3, 8, 8]),
                              ("student-c0-w1", [1, 28, 28]), ("student-c3-w0.5", [3, 32, 32]), ("student-c4-w1.5", [1, 28, 28])] {
            let spec = try ModelSpec(name: name, inputShape: input, classes: 7)
            XCTAssertEqual(spec.estimatedParameters, Double(Network.build(spec, seed: 0).parameterCount), name)
        }
    }

    func testAbsurdSizesAreRefusedBeforeAllocating() {
        let cases: [(String, [Int], Int, String)] = [
            ("resnet8", [1, 28, 28], 1_000_000_000, "need 2 to 100000 classes"),
            ("resnet8", [1, 999_999, 28], 10, "beyond 1024 channels of 4096x4096 pixels"),
            ("fcn-65536x20", [1, 28, 28], 10, "the limit is 1000000000"),
            ("student-c1-w64", [3, 4096, 4096], 10, "the limit is 1000000000"),
            ("student-c1-w1e308", [1, 28, 28], 10, "M in (0, 64]"),
            ("resnet1208", [1, 28, 28], 10, "between 8 and 1202"),
            ("fcn-8x101", [1, 28, 28], 10, "at most 100 layers"),
        ]
        for (name, input, classes, expected) in cases {
            XCTAssertThrowsError(try ModelSpec(name: name, inputShape: input, classes: classes), name) {
                XCTAssertTrue("\($0)".contains(expected), "\(name): \($0)")
            }
        }
    }

    /// A mistyped model name gets the nearest common name; the error lists the whole grammar.
    func testUnknownModelsGetADidYouMeanAndTheGrammar() {
        XCTAssertEqual(ModelSpec.suggestion(for: "resnt20"), "resnet20")
        XCTAssertEqual(ModelSpec.suggestion(for: "ResNet-56"), "resnet56")
        XCTAssertNil(ModelSpec.suggestion(for: "vgg16"))
        let text = ModelError.unknown("resnt20").description
        XCTAssertTrue(text.contains("(did you mean resnet20?)"), text)
        for family in ["resnetD", "plainD", "fcn-W", "student-cK-wM", "resnet8"] { XCTAssertTrue(text.contains(family), text) }
    }
}

/// A ResNet keeps its activations channel-blocked between layers in training; the same network
/// with every layer on NCHW must give the same loss gradients up to rounding.
final class BlockedResNetTests: XCTestCase {
    override func setUp() { Parallel.configure(threads: 2) }

    func testBlockedResNetTrainsLikeThePlainOne() throws {
        try XCTSkipIf(BlockedLayout.block == 0, "no blocked layout on this CPU")
        for name in ["resnet8", "plain8", "resnet8-b"] {
            let spec = try ModelSpec(name: name, inputShape: [3, 8, 8], classes: 10)
            let (blocked, plain) = (Network.build(spec, seed: 1), Network.build(spec, seed: 1))
            for case let (_, conv as Conv2d) in plain.root.namedLayers() { conv.emitsBlocked = false }
            if let block = blocked.layer("stage2.block1") as? BasicBlock { block.branchEnabled = false }
            if let block = plain.layer("stage2.block1") as? BasicBlock { block.branchEnabled = false }
            let x = randomTensor([5, 3, 8, 8], seed: 2)
            let (yb, yp) = (blocked.forward(x, training: true), plain.forward(x, training: true))
            XCTAssertFalse(yb.blocked, "\(name): logits are plain")
            let dy = randomTensor(yp.shape, seed: 3)
            blocked.backward(dy)
            plain.backward(dy)
            for i in 0..<yp.count { XCTAssertEqual(yb[i], yp[i], accuracy: 1e-4 * max(1, abs(yp[i])), "\(name) logits") }
            for ((n, a), (_, b)) in zip(plain.parameters, blocked.parameters) {
                let scale = max(1e-3, a.grad.array.map(abs).max() ?? 0)
                let worst = zip(a.grad.array, b.grad.array).map { abs($0 - $1) }.max() ?? 0
                XCTAssertLessThanOrEqual(worst, 1e-3 * scale, "\(name) \(n) gradient")
            }
            for ((n, a), (_, b)) in zip(plain.buffers, blocked.buffers) {
                for i in 0..<a.count { XCTAssertEqual(a[i], b[i], accuracy: 1e-5 * max(1, abs(a[i])), "\(name) \(n)") }
            }
        }
    }
}

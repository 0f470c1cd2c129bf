import EngineTestSupport
@testable import Models
import Procedures
import TensorEngine
import XCTest

/// The evaluation plan (BN folded after masking, fused ReLU and residual sums, blocked layout)
/// against the unfused inference-mode forward pass, on every mask of every unit.
final class InferencePlanTests: XCTestCase {
    override func setUp() { Parallel.configure(threads: 2) }
    override func tearDown() { Parallel.configure(threads: 2) }

    /// A network whose batch norms are far from the identity (as after training).
    func network(_ name: String, input: [Int], seed: UInt64) throws -> Network {
        let net = Network.build(try ModelSpec(name: name, inputShape: input, classes: 10), seed: seed)
        var rng = RandomSource(seed: seed + 1)
        for (_, bn) in net.batchNorms {
            for c in 0..<bn.channels {
                bn.gamma.value.data[c] = 0.5 + abs(rng.nextNormal())
                bn.beta.value.data[c] = 0.2 * rng.nextNormal()
                bn.runningMean.data[c] = 0.3 * rng.nextNormal()
                bn.runningVar.data[c] = 0.5 + abs(rng.nextNormal())
            }
        }
        return net
    }

    /// The largest difference between the plan's logits and the unfused pass's, relative to the
    /// largest logit. Each fused layer is within γ(K + 4) ≈ 3.5e-5 (K = 576) of exact arithmetic
    /// relative to its terms (FusedConvolutionTests); over a network's ~20 layers the observed
    /// relative difference stays below 2e-6, so 2e-5 leaves room for error growth through the
    /// weights without hiding a wrong fold (which shows as 1e-2 or more).
    static let tolerance: Float = 2e-5

    func relativeDifference(_ plan: Tensor, _ plain: Tensor) -> Float {
        let scale = max(plain.array.map(abs).max() ?? 1, 1e-3)
        return zip(plan.array, plain.array).map { abs($0 - $1) }.max()! / scale
    }

    func testThePlanMatchesTheUnfusedPassOnEveryMaskOfEveryUnit() throws {
        for (name, input) in [("resnet20", [1, 28, 28]), ("resnet20-b", [3, 32, 32]), ("plain20", [1, 16, 16]),
                              ("student-c3-w1", [1, 28, 28]), ("fcn-64x2-bn", [1, 8, 8])] {
            let x = randomTensor([5] + input, seed: 3)
            var worst: Float = 0
            let units = try network(name, input: input, seed: 1).units
            for unit in [nil] + units {
                for mask in MaskKind.allCases where unit == nil || (mask.applies(to: unit!.kind) && mask != .zeroKernelRecalibrated) {
                    let net = try network(name, input: input, seed: 1)
                    if let unit { try Masking.apply(mask, to: unit, of: net, context: MaskContext(seed: 4)) }
                    let plain = net.forward(x, training: false)
                    let planned = InferencePlan(net).forward(x)
                    XCTAssertEqual(planned.shape, plain.shape)
                    let difference = relativeDifference(planned, plain)
                    worst = max(worst, difference)
                    XCTAssertLessThanOrEqual(difference, Self.tolerance, "\(name) \(unit?.name ?? "baseline") \(mask)")
                    if unit == nil { break }
                }
            }
            print("\(name): plan vs unfused logits, worst relative difference \(worst)")
        }
    }

    /// A ResNet's stem (conv, BN, ReLU) is one step, each block one step, so the prefix cache
    /// keeps whole blocks' outputs.
    func testAResNetsStepsAreTheStemEachBlockThePoolAndTheHead() throws {
        try XCTSkipIf(BlockedLayout.block == 0, "oneDNN has no blocked kernels on this CPU")
        let plan = InferencePlan(try network("resnet20", input: [1, 28, 28], seed: 1))
        XCTAssertEqual(plan.steps.map(\.layers), [0..<3] + (3..<12).map { $0..<($0 + 1) } + [12..<13, 13..<14])
        XCTAssertEqual(plan.step(holding: 1), 0)
        XCTAssertEqual(plan.step(holding: 5), 3)
    }

    /// The plan gives the same bits with 1, 2 and 3 threads.
    func testThePlanIsIdenticalForAnyThreadCount() throws {
        let net = try network("resnet20", input: [1, 28, 28], seed: 2)
        let x = randomTensor([37, 1, 28, 28], seed: 8)
        let outputs = valuesWithThreads([1, 2, 3]) { InferencePlan(net).forward(x).array }
        XCTAssertEqual(outputs[0], outputs[1])
        XCTAssertEqual(outputs[0], outputs[2])
    }

    /// Depth first (each image group through every step on one thread) gives the same bits as
    /// step by step over the whole batch, for the logits and for the step inputs it keeps, on
    /// the direct and the Winograd kernels, with a batch whose groups are uneven.
    func testDepthFirstGivesTheSameBitsAsStepByStep() throws {
        defer { Winograd.enabled = true }
        for (name, input) in [("resnet20", [1, 28, 28]), ("resnet20-b", [3, 32, 32]), ("fcn-64x2-bn", [1, 8, 8])] {
            for winograd in [true, false] {
                Winograd.enabled = winograd
                let plan = InferencePlan(try network(name, input: input, seed: 5))
                let x = LayoutTensor(plain: randomTensor([37] + input, seed: 9))
                var stepwise = [x]
                for step in plan.steps { stepwise.append(step.run(stepwise.last!)) }
                let keeping: Set<Int> = [1, plan.steps.count / 2, plan.steps.count - 1]
                let (output, kept) = plan.run(0..<plan.steps.count, x, keeping: keeping)
                XCTAssertEqual(output.plain.array.map(\.bitPattern), stepwise.last!.plain.array.map(\.bitPattern), "\(name) winograd \(winograd)")
                XCTAssertEqual(Set(kept.keys), keeping)
                for (k, activation) in kept {
                    XCTAssertEqual(activation.shape, stepwise[k].shape)
                    XCTAssertEqual(activation.blocked, stepwise[k].blocked)
                    XCTAssertEqual(activation.storage.array.map(\.bitPattern), stepwise[k].storage.array.map(\.bitPattern), "\(name) step \(k)")
                }
                // Resuming from a kept input gives the same logits.
                let resumed = plan.run((plan.steps.count / 2)..<plan.steps.count, kept[plan.steps.count / 2]!)
                XCTAssertEqual(resumed.plain.array.map(\.bitPattern), output.plain.array.map(\.bitPattern))
            }
        }
    }
}

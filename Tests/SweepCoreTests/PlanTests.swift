import Procedures
import SweepCore
import StudyTestSupport
import SweepFile
import SweepPlan
import XCTest

final class PlanTests: StudyTestCase {
    func plan(_ text: String) throws -> Plan { try Plan.expand(try SpecLoader.parse(text, file: "t.yaml")) }

    func testResNet20PlanHasTrainBaselineAndApplicableMasks() throws {
        let p = try plan("name: s\ndatasets: [synthetic]\nmodels: [resnet20]\nseeds: 2\n")
        let perSeed = 1 + 1 + 20 + 9  // train, baseline, zeroKernel on 19 convs + fc, zeroBranch on 9 blocks
        XCTAssertEqual(p.tasks.count, 2 * perSeed)
        let t = try XCTUnwrap(p["synthetic/resnet20/seed1/stage2.block1.conv2/zeroKernel"])
        XCTAssertEqual(t.dependencies, ["synthetic/resnet20/seed1/train"])
        XCTAssertEqual(t.kind, .mask)
        XCTAssertNil(p["synthetic/resnet20/seed0/stage2.block1/zeroKernel"], "zeroKernel does not apply to a branch")
        XCTAssertNotNil(p["synthetic/resnet20/seed0/stage2.block1/zeroBranch"])
        XCTAssertEqual(p.tasks.map(\.key), p.tasks.map(\.key).sorted())
        let train = try XCTUnwrap(p["synthetic/resnet20/seed0/train"])
        XCTAssertGreaterThan(train.cost, 50 * t.cost, "training costs far more than an evaluation")
    }

    /// With the prefix cache, a mask costs the layers from its unit to the end, so the deep
    /// masks' evaluations are cheap and the shallow ones are dispatched first; without it every
    /// mask costs a whole evaluation.
    func testAMasksCostIsItsSuffixWhenPrefixesAreReused() throws {
        let spec = "name: s\ndatasets: [synthetic]\nmodels: [resnet20]\n"
        let cost = { (p: Plan, unit: String) in p["synthetic/resnet20/seed0/\(unit)/zeroKernel"]!.cost }
        let reused = try plan(spec)
        let full = try XCTUnwrap(reused["synthetic/resnet20/seed0/baseline"]).cost
        XCTAssertEqual(cost(reused, "stem.conv"), full, accuracy: 1e-6 * full)
        XCTAssertGreaterThan(cost(reused, "stage1.block1.conv1"), cost(reused, "stage2.block1.conv1"))
        XCTAssertGreaterThan(cost(reused, "stage2.block1.conv1"), cost(reused, "stage3.block3.conv2"))
        XCTAssertEqual(cost(reused, "fc"), 0.05 * full, accuracy: 1e-6 * full, "at least the data and the loss")
        let plain = try plan(spec + "evaluation: {prefix_cache_mb: 0}\n")
        XCTAssertEqual(cost(plain, "fc"), cost(plain, "stem.conv"))
    }

    func testLayerGlobsSelectUnits() throws {
        let p = try plan("name: s\ndatasets: [synthetic]\nmodels: [resnet20]\nlayers: ['stage*.block*.conv1']\nmasks: [zeroKernel]\n")
        XCTAssertEqual(p.tasks.filter { $0.kind == .mask }.count, 9)
    }

    func testSeedsDependOnlyOnKeyAndSweepSeed() throws {
        let a = try plan("name: s\ndatasets: [synthetic]\nmodels: [resnet8]\nseed: 1\n")
        let b = try plan("name: other\ndatasets: [synthetic]\nmodels: [resnet8, fcn-16]\nseed: 1\nmasks: [randomInit]\n")
        let c = try plan("name: s\ndatasets: [synthetic]\nmodels: [resnet8]\nseed: 2\n")
        let key = "synthetic/resnet8/seed0/train"
        XCTAssertEqual(a[key]?.seed, b[key]?.seed, "adding models or masks does not change a task's seed")
        XCTAssertNotEqual(a[key]?.seed, c[key]?.seed)
        XCTAssertNotEqual(a[key]?.seed, a["synthetic/resnet8/seed0/baseline"]?.seed)
    }

    func testNoopPlan() throws {
        let p = try plan("name: n\nstudy: noop\nnoop_tasks: 120\n")
        XCTAssertEqual(p.tasks.count, 120)
        XCTAssertEqual(p.tasks.first?.key, "noop/task000")
    }
}

import Foundation
import StudyTestSupport
import SweepFile
import XCTest
import Procedures
import TensorEngine
import SweepCore

/// The `sweep` executable end to end: what a user types, what they see, and the exit status.
final class CLITests: StudyTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("cli-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(at: dir) }

    func sweep(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        try SweepProcess.run(arguments)
    }

    func testTrainThenEvalOnSyntheticData() throws {
        let checkpoint = dir.appendingPathComponent("r8.safetensors").path
        let train = try sweep(["train", "--model", "resnet8", "--dataset", "synthetic", "--epochs", "3", "--batch-size", "32",
                               "--lr", "0.05", "--threads", "2", "--output", checkpoint])
        XCTAssertEqual(train.status, 0, train.stderr)
        XCTAssertTrue(train.stderr.contains("epoch 3/3"), train.stderr)
        XCTAssertTrue(train.stderr.contains("img/s") && train.stderr.contains("ETA"), train.stderr)
        XCTAssertTrue(train.stdout.contains("test accuracy"), train.stdout)
        let eval = try sweep(["eval", checkpoint, "--dataset", "synthetic"])
        XCTAssertEqual(eval.status, 0, eval.stderr)
        // The same accuracy as printed after training: the checkpoint holds everything needed.
        let accuracy = { (s: String) in s.components(separatedBy: "test accuracy ")[1].prefix(6) }
        XCTAssertEqual(accuracy(eval.stdout), accuracy(train.stdout))
    }

    /// OpenBLAS 0.3.21 falls back to its generic "Prescott" kernels on CPUs it does not know;
    /// `sweep` relaunches itself with the CPU's own set, unless the user chose one.
    func testSweepRunsOpenBLASWithTheCPUsOwnKernels() throws {
        let bench = { (environment: [String: String]) throws -> String in
            let p = SweepProcess.process(["bench", "--model", "fcn-1024x3-bn", "--seconds", "0.01", "--batch-size", "8", "--json"])
            p.environment = p.environment!.filter { $0.key != "OPENBLAS_CORETYPE" }.merging(environment) { _, b in b }
            let result = try SweepProcess.run(p)
            XCTAssertEqual(result.status, 0, result.stderr)
            let rows = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]]
            return try XCTUnwrap(rows?.first?["blasCore"] as? String, result.stdout)
        }
        let core = try bench([:])
        let flags = BLASKernels.cpuFlags
        if flags.contains("avx2") && flags.contains("fma") {
            XCTAssertNotEqual(core.lowercased(), "prescott", "an AVX2 CPU ran OpenBLAS's generic kernels")
        }
        XCTAssertEqual(try bench(["OPENBLAS_CORETYPE": "Prescott"]), "Prescott", "the user's own choice was overridden")
    }

    func testVersionAndHelpLeadWithTheSweepCommands() throws {
        let version = try sweep(["--version"])
        XCTAssertEqual(version.status, 0)
        XCTAssertTrue(version.stdout.hasPrefix("layersweep "), version.stdout)
        // Help paragraphs are wrapped by the parser, not broken mid-sentence in the source.
        let runHelp = try sweep(["run", "--help"]).stdout.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        for (line, next) in zip(runHelp, runHelp.dropFirst()) where !line.hasPrefix(" ") && !next.hasPrefix(" ") {
            let broken = line.count < 60 && !line.isEmpty && (next.first?.isLowercase ?? false)
            XCTAssertFalse(broken, "a line break inside a sentence: '\(line)' / '\(next)'")
        }
        let help = try sweep(["--help"])
        let examples = help.stdout.components(separatedBy: "Examples:").last ?? ""
        XCTAssertTrue(examples.trimmingCharacters(in: .whitespacesAndNewlines).hasPrefix("sweep plan"), help.stdout)
    }

    /// `sweep train`'s flags, a sweep file's training section and the engine share one set of defaults.
    func testTrainingDefaultsAreDefinedOnce() throws {
        let help = try sweep(["train", "--help"]).stdout.replacingOccurrences(of: "\n", with: " ")
            .split(separator: " ").filter { !$0.isEmpty }.joined(separator: " ")
        let section = TrainingSection()
        for (flag, value) in [("--epochs", "\(section.epochs)"), ("--batch-size", "\(section.batchSize)"), ("--learning-rate", "\(section.learningRate)"),
                              ("--momentum", "\(section.momentum)"), ("--weight-decay", "\(section.weightDecay)"), ("--schedule", section.schedule)] {
            let after = try XCTUnwrap(help.range(of: "OPTIONS:")).upperBound
            let start = try XCTUnwrap(help[after...].range(of: flag)).upperBound
            let text = String(help[start...].prefix(200))
            // The first default after the flag is its own (each listed flag has one).
            let shown = text.components(separatedBy: "(default: ").dropFirst().first?.components(separatedBy: ")").first
            XCTAssertEqual(shown, value, "\(flag): \(text)")
        }
        XCTAssertEqual(section.config(seed: 3), TrainingConfig(seed: 3))
        XCTAssertEqual(section.epochs, TrainingDefaults.epochs)
    }

    /// `sweep plan FILE --json`: every task with its dependencies (each one a task of the plan),
    /// counts that add up, the estimate and the forecast.
    func testPlanAsJSONListsEveryTask() throws {
        let quick = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("sweeps/quick.yaml").path
        let r = try sweep(["plan", quick, "--json", "--ranks", "8"])
        XCTAssertEqual(r.status, 0, r.stderr)
        struct Task: Decodable { let key: String; let kind: String; let dependencies: [String]; let cost: Double }
        struct Forecast: Decodable { let ranks: Int; let makespan_seconds: Double }
        struct Plan: Decodable { let name: String; let counts: [String: Int]; let tasks: [Task]; let forecast: Forecast?; let multiply_adds: Double }
        let plan = try JSONDecoder().decode(Plan.self, from: Data(r.stdout.utf8))
        XCTAssertEqual(plan.name, "quick")
        XCTAssertEqual(plan.counts.values.reduce(0, +), plan.tasks.count)
        let keys = Set(plan.tasks.map(\.key))
        XCTAssertEqual(keys.count, plan.tasks.count)
        XCTAssertTrue(plan.tasks.allSatisfy { $0.dependencies.allSatisfy(keys.contains) && $0.cost > 0 })
        XCTAssertEqual(plan.forecast?.ranks, 8)
        XCTAssertEqual(plan.multiply_adds, plan.tasks.reduce(0) { $0 + $1.cost }, accuracy: plan.multiply_adds * 1e-9)
    }

    func testLayersListsUnitsWithCounts() throws {
        let r = try sweep(["layers", "resnet20"])
        XCTAssertEqual(r.status, 0)
        let lines = r.stdout.split(separator: "\n")
        XCTAssertEqual(lines.count, 19 + 9 + 1 + 1)
        XCTAssertTrue(lines.contains { $0.hasPrefix("stage2.block1.conv1") && $0.contains("4608") && $0.contains("transition") })
        XCTAssertEqual(lines.last, "total parameters: 269434")
    }

    func testBadInputGivesOneLineAndNonZeroExit() throws {
        let cases: [([String], String)] = [
            (["train", "--model", "vgg16", "--dataset", "synthetic"], "unknown model 'vgg16'"),
            (["train", "--dataset", "nope", "--data-dir", dir.path + "/missing"], "dataset 'nope' not found"),
            (["train", "--schedule", "linear"], "--schedule 'linear'"),
            (["eval", dir.path + "/absent.safetensors", "--dataset", "synthetic"], "absent.safetensors: no such checkpoint"),
        ]
        for (arguments, expected) in cases {
            let r = try sweep(arguments)
            XCTAssertNotEqual(r.status, 0, "\(arguments)")
            let errorLines = r.stderr.split(separator: "\n").filter { $0.hasPrefix("Error") }
            XCTAssertEqual(errorLines.count, 1, r.stderr)
            XCTAssertTrue(r.stderr.contains(expected), "\(arguments): \(r.stderr)")
        }
    }
}

@testable import Cluster
import Foundation
import SweepCore
import XCTest

/// The coordinator and worker loops over the in-process transport (the MPI transport is
/// exercised with the real launcher in sweepTests).
final class RunnerTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("runner-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(at: dir) }

    func writeSpec(_ extra: String = "") throws -> String {
        let path = dir.appendingPathComponent("s.yaml").path
        try """
        name: small
        datasets:
          - {name: synthetic, train_limit: 128, test_limit: 64}
        models: [resnet8]
        seeds: 2
        training: {epochs: 1, batch_size: 32, learning_rate: 0.05}
        masks: [zeroKernel, zeroBranch, zeroKernelRecalibrated, randomInit]
        evaluation: {recalibration_batches: 2}
        \(extra)
        """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// Rows without the run-dependent columns.
    func stable(_ rows: [ResultRow]) -> [ResultRow] {
        rows.map { var r = $0; r.seconds = 0; r.rank = 0; r.host = ""; return r }
    }

    func run(_ options: RunOptions) throws -> RunSummary {
        try XCTUnwrap(try SweepLauncher.run(options, log: { _ in }))
    }

    func testMessagesRoundTripWithAttachments() throws {
        let task = PlannedTask(key: "d/m/seed0/x/zeroKernel", kind: .mask, dataset: "d", model: "m", seedIndex: 0, unit: "x",
                               mask: .zeroKernel, dependencies: ["d/m/seed0/train"], cost: 2.5, seed: 42)
        var outcome = TaskOutcome(status: .diverged, seconds: 1.25)
        outcome.error = "loss nan"
        outcome.testLoss = .nan
        let blob = Data((0..<100_000).map { UInt8($0 % 256) })
        for message in [Message.hello(host: "h", threads: 3), .configure(specText: "name: x\n"),
                        .task(task, inputs: ["abc"], attachments: ["abc": blob, "def": Data([1])]),
                        .result(key: "k", outcome: TaskOutcome(status: .ok), checkpoint: blob), .stop] {
            XCTAssertEqual(try MessageCodec.decode(try MessageCodec.encode(message)), message)
        }
        guard case let .result(_, decoded, _) = try MessageCodec.decode(try MessageCodec.encode(.result(key: "k", outcome: outcome, checkpoint: nil))) else {
            return XCTFail()
        }
        XCTAssertTrue(decoded.testLoss!.isNaN, "non-finite numbers survive the JSON header")
    }

    func testSameResultsWithOneOrThreeWorkers() throws {
        let spec = try writeSpec()
        let one = try run(RunOptions(specPath: spec, output: dir.appendingPathComponent("one").path, localWorkers: 1))
        let three = try run(RunOptions(specPath: spec, output: dir.appendingPathComponent("three").path, localWorkers: 3))
        XCTAssertEqual(one.rows.count, 2 * (2 + 8 + 3 + 7 + 8))
        XCTAssertTrue(one.rows.allSatisfy { $0.status == "ok" }, "\(one.rows.filter { $0.status != "ok" })")
        XCTAssertEqual(stable(one.rows), stable(three.rows))
        XCTAssertEqual(Set(three.rows.map(\.rank)).count, 3, "all three workers got work")
        let csv = try String(contentsOf: one.directory.resultsCSV, encoding: .utf8)
        XCTAssertEqual(csv.split(separator: "\n").count, one.rows.count + 1)
    }

    func testPrefixReuseDoesNotChangeResults() throws {
        let spec = try writeSpec()
        let reused = try run(RunOptions(specPath: spec, output: dir.appendingPathComponent("reuse").path, localWorkers: 2))
        let text = try String(contentsOfFile: spec, encoding: .utf8)
            .replacingOccurrences(of: "evaluation: {recalibration_batches: 2}", with: "evaluation: {recalibration_batches: 2, prefix_cache_mb: 0}")
        try text.write(toFile: spec, atomically: true, encoding: .utf8)
        let naive = try run(RunOptions(specPath: spec, output: dir.appendingPathComponent("naive").path, localWorkers: 2))
        XCTAssertEqual(stable(reused.rows), stable(naive.rows))
    }

    func testResumeRunsOnlyWhatIsMissingAndMatchesAnUninterruptedRun() throws {
        let spec = try writeSpec()
        let full = try run(RunOptions(specPath: spec, output: dir.appendingPathComponent("full").path, localWorkers: 2))
        // An interrupted run: keep the journal's header and its first half, drop the results.
        let cut = dir.appendingPathComponent("cut")
        try FileManager.default.copyItem(at: full.directory.url, to: cut)
        let journal = cut.appendingPathComponent("journal.jsonl")
        let lines = try String(contentsOf: journal, encoding: .utf8).split(separator: "\n")
        let kept = lines.prefix(1 + (lines.count - 1) / 2)
        try (kept.joined(separator: "\n") + "\n").write(to: journal, atomically: true, encoding: .utf8)
        try FileManager.default.removeItem(at: cut.appendingPathComponent("results.csv"))
        var ran: [String] = []
        let resumed = try XCTUnwrap(try SweepLauncher.run(RunOptions(resumePath: cut.path, localWorkers: 2), log: { ran.append($0) }))
        XCTAssertEqual(stable(resumed.rows), stable(full.rows))
        XCTAssertEqual(ran.filter { $0.hasPrefix("[") }.count, lines.count - kept.count, "only the missing tasks ran")
        XCTAssertTrue(FileManager.default.fileExists(atPath: cut.appendingPathComponent("results.csv").path))
        let document = try JSONSerialization.jsonObject(with: Data(contentsOf: cut.appendingPathComponent("results.json"))) as? [String: Any]
        XCTAssertEqual(document?["complete"] as? Bool, true)
    }

    func testDivergedTrainingSkipsItsDependentsAndTheSweepGoesOn() throws {
        let spec = try writeSpec()
        var text = try String(contentsOfFile: spec, encoding: .utf8)
        text = text.replacingOccurrences(of: "learning_rate: 0.05", with: "learning_rate: 1.0e+9, momentum: 0, weight_decay: 0, schedule: constant")
            .replacingOccurrences(of: "models: [resnet8]", with: "models: [resnet8, fcn-8]")
        try text.write(toFile: spec, atomically: true, encoding: .utf8)
        let summary = try run(RunOptions(specPath: spec, output: dir.appendingPathComponent("div").path, localWorkers: 2))
        let trains = summary.rows.filter { $0.kind == "train" }
        XCTAssertTrue(trains.contains { $0.status == "diverged" && ($0.error ?? "").contains("diverged") }, "\(trains)")
        for row in summary.rows where row.kind != "train" {
            let train = trains.first { row.key.hasPrefix("\($0.dataset)/\($0.model)/seed\($0.seed)/") }!
            XCTAssertEqual(row.status, train.status == "ok" ? "ok" : "skipped", row.key)
        }
    }
}

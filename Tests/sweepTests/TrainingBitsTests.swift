import Foundation
import SweepCore
import StudyTestSupport
import SweepFile
@testable import SweepStore
import XCTest

/// The training store serves a network only to an engine that would train the same bits
/// (`TrainingIdentity.bitsVersion`). This test keeps that version honest: it trains two tiny
/// networks (a ResNet-8: convolutions, batch norm, residual sums; an FCN with batch norm: GEMMs)
/// on AVX2 kernels, which every machine here has, and compares their checkpoints' hashes with
/// the ones recorded for the current version.
final class TrainingBitsTests: StudyTestCase {
    /// Checkpoint hashes by bits version. When engine arithmetic changes, raise
    /// `TrainingIdentity.bitsVersion` and record the new hashes under the new version.
    static let recorded: [Int: [String: String]] = [
        1: ["synthetic/resnet8/seed0/train": "2da10fc04b72fd9434a6a0704d483b8e",
            "synthetic/fcn-32-bn/seed0/train": "7fe570568e33695dd09ce2861b037da3"],
    ]

    /// OpenBLAS's Haswell kernels and oneDNN's AVX2 ones on any machine (AVX-512 machines too):
    /// the same bits on both kinds.
    static let avx2 = ["OPENBLAS_CORETYPE": "Haswell", "ONEDNN_MAX_CPU_ISA": "AVX2"]

    func testTrainingBitsMatchTheRecordedBitsVersion() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bits-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let spec = dir.appendingPathComponent("bits.yaml").path
        try """
        name: bits
        study: zeroing
        seed: 1
        datasets: [{name: synthetic, train_limit: 256, test_limit: 64}]
        models: [resnet8, fcn-32-bn]
        training: {epochs: 1, batch_size: 32, learning_rate: 0.05}
        layers: [fc]
        masks: [zeroKernel]
        """.write(toFile: spec, atomically: true, encoding: .utf8)
        let engine = SweepProcess.process(["cache", "list", "--cache", dir.appendingPathComponent("none").path])
        let run = SweepProcess.process(["run", spec, "-o", dir.appendingPathComponent("run").path, "--no-cache"])
        for p in [engine, run] { p.environment?.merge(Self.avx2) { _, b in b } }
        let kind = try SweepProcess.run(engine).stdout
        XCTAssertTrue(kind.contains("openblas haswell, onednn cpu_isa_avx2, block 8"), "the kernels were pinned to AVX2: \(kind)")
        let result = try SweepProcess.run(run)
        XCTAssertEqual(result.status, 0, result.stderr)

        var hashes: [String: String] = [:]
        for line in try String(contentsOfFile: dir.appendingPathComponent("run/journal.jsonl").path, encoding: .utf8).split(separator: "\n") {
            guard let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], object["kind"] as? String == "train",
                  let key = object["key"] as? String, let checkpoint = (object["outcome"] as? [String: Any])?["checkpoint"] as? String else { continue }
            hashes[key] = checkpoint
        }
        let version = TrainingIdentity.bitsVersion
        guard let expected = Self.recorded[version] else {
            return XCTFail("no hashes recorded for bits version \(version); record these: \(hashes)")
        }
        XCTAssertEqual(hashes, expected, """
            the engine now trains other bits than bits version \(version) recorded: a training store could serve networks this \
            engine would not produce. Raise TrainingIdentity.bitsVersion to \(version + 1) and record these hashes under it in \
            TrainingBitsTests.recorded: \(hashes)
            """)
    }
}

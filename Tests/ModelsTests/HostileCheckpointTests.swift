import EngineTestSupport
import Foundation
@testable import Models
import TensorEngine
import XCTest

/// Checkpoints as an attacker or a careless exporter writes them: the safetensors reader is as
/// strict as the format, impossible values are refused naming the tensor, and random mutations
/// of a valid file never crash the reader.
final class HostileCheckpointTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        Parallel.configure(threads: 2)
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("hostile-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(at: dir) }

    /// An 8-byte length and a JSON header padded to 8 bytes, then `data`.
    func file(_ json: String, data: Int) -> Data {
        var text = Data(json.utf8)
        while text.count % 8 != 0 { text.append(0x20) }
        return withUnsafeBytes(of: UInt64(text.count).littleEndian) { Data($0) } + text + Data(count: data)
    }

    func problem(_ bytes: Data) -> String {
        do { _ = try SafeTensorsFile.decode(bytes, file: "x.safetensors"); return "no error" } catch { return "\(error)" }
    }

    // MARK: - The format, strictly

    /// Python's reader refuses tensors that share bytes, bytes no tensor owns, and a header
    /// naming a key twice; so do we (ours loaded all three).
    func testTensorsMustTileTheDataExactlyAndKeysAreUnique() {
        let overlap = file(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#, data: 12)
        XCTAssertTrue(problem(overlap).contains("'b' overlaps another tensor's bytes"), problem(overlap))
        let hole = file(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#, data: 12)
        XCTAssertTrue(problem(hole).contains("bytes 4..<8 belong to no tensor"), problem(hole))
        let trailing = file(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, data: 8)
        XCTAssertTrue(problem(trailing).contains("bytes 4..<8 after the last tensor"), problem(trailing))
        let same = file(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"I32","shape":[1],"data_offsets":[0,4]}}"#, data: 4)
        XCTAssertTrue(problem(same).contains("header names 'a' twice"), problem(same))
        let metadata = file(#"{"__metadata__":{"k":"1","k":"2"},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, data: 4)
        XCTAssertTrue(problem(metadata).contains("names 'k' twice"), problem(metadata))
        let empty = file(#"{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, data: 4)
        XCTAssertEqual(problem(empty), "no error", "an empty tensor owns no bytes")
    }

    /// `torch.save` files (a zip, or a pickle before PyTorch 1.6) and ONNX models are named, with
    /// how to save a safetensors file, instead of "header length 578712552184433488 exceeds ...".
    func testOtherFormatsAreNamedWithHowToSaveSafetensors() {
        var zip = Data([0x50, 0x4B, 0x03, 0x04])
        zip += Data(repeating: 7, count: 600)
        XCTAssertTrue(problem(zip).contains("zip archive, as torch.save writes"), problem(zip))
        let pickle = Data([0x80, 0x02, 0x8A, 0x0A]) + Data(repeating: 1, count: 100)
        XCTAssertTrue(problem(pickle).contains("Python pickle"), problem(pickle))
        let onnx = Data([0x08, 0x07, 0x12, 0x07]) + Data("pytorch".utf8) + Data(repeating: 0, count: 64)
        XCTAssertTrue(problem(onnx).contains("ONNX model"), problem(onnx))
        for text in [problem(zip), problem(pickle), problem(onnx)] {
            XCTAssertTrue(text.contains("safetensors.torch.save_file(model.state_dict()"), text)
            XCTAssertFalse(text.contains("\n"))
        }
    }

    // MARK: - Values no network holds

    /// A NaN or infinite weight and a negative running variance: refused on one line naming the
    /// tensor, for our checkpoints and PyTorch's (both were accepted and gave NaN rows).
    func testNonFiniteWeightsAndNegativeVariancesAreRefusedNamingTheTensor() throws {
        let network = Network.build(try ModelSpec(name: "resnet8", inputShape: [1, 8, 8], classes: 4), seed: 1)
        func poisoned(_ name: String, at index: Int, _ value: Float) -> SafeTensorsFile {
            var file = Checkpoint.file(of: network)
            file.tensors = file.tensors.map { n, t in
                guard n == name else { return (n, t) }
                let copy = t.copy()
                copy.data[index] = value
                return (n, copy)
            }
            return file
        }
        let cases: [(String, Int, Float, String)] = [
            ("stage2.block1.conv1.weight", 17, .nan, "tensor 'stage2.block1.conv1.weight' holds nan at index 17"),
            ("fc.bias", 0, .infinity, "tensor 'fc.bias' holds inf at index 0"),
            ("stem.bn.running_var", 3, -0.5, "tensor 'stem.bn.running_var' holds a negative variance (-0.5 at index 3)"),
        ]
        for (name, index, value, expected) in cases {
            let file = poisoned(name, at: index, value)
            XCTAssertThrowsError(try Checkpoint.network(from: file, path: "ours.safetensors")) {
                XCTAssertTrue("\($0)".hasPrefix("ours.safetensors: \(expected)"), "\($0)")
                XCTAssertFalse("\($0)".contains("\n"))
            }
            let torch = SafeTensorsFile(tensors: file.tensors, metadata: [:])
            XCTAssertThrowsError(try TorchImport.network(from: torch, path: "theirs.safetensors", inputShape: [1, 8, 8])) {
                XCTAssertTrue("\($0)".contains(expected), "\($0)")
            }
        }
        // A refused restore leaves the network as it was.
        let target = Network.build(try ModelSpec(name: "resnet8", inputShape: [1, 8, 8], classes: 4), seed: 2)
        let before = target.stateTensors.map(\.1.array)
        XCTAssertThrowsError(try Checkpoint.restore(target, from: poisoned("fc.bias", at: 0, .nan)))
        XCTAssertEqual(target.stateTensors.map(\.1.array), before)
    }

    /// `fc.*` and `linear.*`, or `conv1.weight` and `stem.conv.weight`, both become one of our
    /// tensors: refused naming both (one was silently dropped).
    func testTwoTensorsForOneNameAreRefused() throws {
        let network = Network.build(try ModelSpec(name: "resnet8", inputShape: [1, 8, 8], classes: 4), seed: 1)
        // PyTorch's names for a CIFAR ResNet: conv1, bn1, layer1.0.conv1, ..., fc.
        let torch = network.stateTensors.map { name, t -> (String, Tensor) in
            var n = name.replacingOccurrences(of: "stem.conv", with: "conv1").replacingOccurrences(of: "stem.bn", with: "bn1")
            if n.hasPrefix("stage") {
                var parts = n.split(separator: ".").map(String.init)
                (parts[0], parts[1]) = ("layer" + parts[0].dropFirst(5), String(Int(parts[1].dropFirst(5))! - 1))
                n = parts.joined(separator: ".")
            }
            return (n, t)
        }
        XCTAssertNoThrow(try TorchImport.network(from: SafeTensorsFile(tensors: torch), path: "one.safetensors", inputShape: [1, 8, 8]))
        for (extra, original, ours) in [("linear.weight", "fc.weight", "fc.weight"), ("stem.conv.weight", "conv1.weight", "stem.conv.weight")] {
            let tensors = torch + [(extra, torch.first { $0.0 == original }!.1)]
            XCTAssertThrowsError(try TorchImport.network(from: SafeTensorsFile(tensors: tensors), path: "two.safetensors", inputShape: [1, 8, 8])) {
                let text = "\($0)"
                XCTAssertTrue(text.contains("'\(original)' and '\(extra)' are both \(ours)") || text.contains("'\(extra)' and '\(original)' are both \(ours)"), text)
            }
        }
    }

    /// PyTorch's default FCN: `nn.Linear` (with its bias) then `BatchNorm1d`. Ours has no bias
    /// there; the bias moves into the norm's running mean, and the imported network computes
    /// what PyTorch's does (it was refused: "tensors that do not fit: 0.bias, 3.bias").
    func testBiasesBeforeABatchNormFoldIntoItsRunningMean() throws {
        let input = [1, 6, 6]
        let ours = Network.build(try ModelSpec(name: "fcn-16x2-bn", inputShape: input, classes: 5), seed: 3)
        _ = ours.forward(randomTensor([8, 1, 6, 6], seed: 4), training: true)  // non-trivial running statistics
        // Their Sequential: 0 Linear(bias), 1 BatchNorm1d, 2 ReLU, 3 Linear(bias), 4 BatchNorm1d, 5 ReLU, 6 Linear.
        let index = ["fc1": 0, "bn1": 1, "fc2": 3, "bn2": 4, "readout": 6]
        var tensors: [(String, Tensor)] = []
        for (name, t) in ours.stateTensors {
            let parts = name.split(separator: ".").map(String.init)
            tensors.append(("\(index[parts[0]]!).\(parts[1])", t.copy()))
        }
        // With a bias b, PyTorch's BN sees y + b; a running mean of μ + b gives our μ exactly.
        for (linear, norm) in [(0, 1), (3, 4)] {
            let mean = tensors.first { $0.0 == "\(norm).running_mean" }!.1
            let bias = randomTensor(mean.shape, seed: UInt64(linear + 10))
            for i in 0..<mean.count { mean.data[i] += bias.data[i] }
            tensors.append(("\(linear).bias", bias))
        }
        let imported = try TorchImport.network(from: SafeTensorsFile(tensors: tensors), path: "mlp.safetensors", inputShape: input)
        XCTAssertEqual(imported.spec.name, "fcn-16-16-bn")
        let x = randomTensor([4, 1, 6, 6], seed: 9)
        let (a, b) = (ours.forward(x, training: false).array, imported.forward(x, training: false).array)
        for (u, v) in zip(a, b) { XCTAssertEqual(u, v, accuracy: 1e-5 * max(1, abs(u))) }
    }

    /// A FIFO would block the reader forever, /dev/zero never ends, a directory read as "You don't
    /// have permission": each is named for what it is before anything is read.
    func testPipesDevicesAndDirectoriesAreNamedBeforeReading() throws {
        let fifo = dir.appendingPathComponent("pipe.safetensors").path
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        for (path, expected) in [(fifo, "is a pipe (FIFO)"), ("/dev/zero", "is a device"), (dir.path, "is a directory"),
                                 (dir.appendingPathComponent("none").path, "no such checkpoint")] {
            XCTAssertThrowsError(try SafeTensorsFile.read(URL(fileURLWithPath: path))) {
                XCTAssertTrue("\($0)".contains(expected), "\($0)")
            }
        }
    }

    // MARK: - Fuzzing

    /// Random mutations of a valid checkpoint (bytes flipped, header numbers replaced, cuts,
    /// splices): every case decodes or throws, and a decoded file's tensors hold exactly their
    /// shapes' elements. `LAYERSWEEP_FUZZ_CASES` sets the count (default 3,000, at most 60 s).
    func testRandomMutationsOfAValidCheckpointNeverCrashTheReader() throws {
        let network = Network.build(try ModelSpec(name: "fcn-4-bn", inputShape: [1, 2, 2], classes: 3), seed: 1)
        let valid = try Checkpoint.file(of: network, metadata: ["layersweep.note": "fuzz"]).encoded()
        let headerLength = Int(valid.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.1) << (8 * UInt64($1.0)) })
        let cases = Int(ProcessInfo.processInfo.environment["LAYERSWEEP_FUZZ_CASES"] ?? "") ?? 3000
        var generator = FuzzMutator(seed: 20261204)
        let deadline = Date().addingTimeInterval(60)
        var (decoded, refused, ran) = (0, 0, 0)
        for _ in 0..<cases where Date() < deadline {
            let bytes = generator.mutate(valid, headerRange: 8..<(8 + headerLength))
            ran += 1
            do {
                let file = try SafeTensorsFile.decode(bytes, file: "fuzz")
                for (_, t) in file.tensors { XCTAssertEqual(t.count, t.shape.reduce(1, *)) }
                _ = try? Checkpoint.network(from: file, path: "fuzz")
                decoded += 1
            } catch {
                XCTAssertFalse("\(error)".contains("\n"), "\(error)")
                refused += 1
            }
        }
        print("safetensors fuzz: \(ran) cases, \(decoded) decoded, \(refused) refused, no crash")
        XCTAssertGreaterThan(refused, 0)
    }
}

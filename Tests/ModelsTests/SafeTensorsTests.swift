import EngineTestSupport
import Foundation
import Models
import TensorEngine
import XCTest

final class SafeTensorsTests: XCTestCase {
    override func setUp() { Parallel.configure(threads: 2) }

    var fixture: URL { Bundle.module.url(forResource: "tiny", withExtension: "safetensors", subdirectory: "Fixtures")! }

    /// tiny.safetensors was written by the Python `safetensors` package (Fixtures/make_fixture.py).
    func testReadsFileWrittenByPythonPackage() throws {
        let file = try SafeTensorsFile.read(fixture)
        XCTAssertEqual(file.metadata["layersweep.note"], "fixture")
        let conv = try XCTUnwrap(file["conv.weight"])
        XCTAssertEqual(conv.shape, [2, 1, 3, 3])
        XCTAssertEqual(conv.array, (0..<18).map { Float($0) / 8 - 1 })
        XCTAssertEqual(file["bn.running_var"]?.array, [0.5, 2.0])
        XCTAssertEqual(file["fc.bias"]?.array, [1.5, -2.25, 3.0], "F64 converts to Float32")
        XCTAssertEqual(file["half"]?.array, [0.5, -1.0, 65504.0], "F16 converts to Float32")
    }

    func testCheckpointRoundTripRestoresIdenticalNetwork() throws {
        let spec = try ModelSpec(name: "resnet8", inputShape: [1, 8, 8], classes: 4)
        let net = Network.build(spec, seed: 3)
        _ = net.forward(randomTensor([4, 1, 8, 8], seed: 1), training: true)  // non-trivial BN statistics
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("roundtrip-\(UUID()).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        try Checkpoint.save(net, to: url, metadata: ["layersweep.dataset": "synthetic"])
        let (loaded, metadata) = try Checkpoint.load(url)
        XCTAssertEqual(metadata["layersweep.dataset"], "synthetic")
        XCTAssertEqual(loaded.spec, spec)
        XCTAssertEqual(loaded.stateTensors.map { $0.0 }, net.stateTensors.map { $0.0 })
        XCTAssertEqual(loaded.stateTensors.map { $0.1.array }, net.stateTensors.map { $0.1.array })
        let x = randomTensor([2, 1, 8, 8], seed: 9)
        XCTAssertEqual(loaded.forward(x, training: false).array, net.forward(x, training: false).array)
        let bytes = try Data(contentsOf: url)
        let headerLength = bytes.prefix(8).enumerated().reduce(0) { $0 | Int($1.1) << (8 * $1.0) }
        XCTAssertEqual(headerLength % 8, 0, "header padded to 8 bytes, as the format recommends")
    }

    /// Our checkpoints open in the Python package (skipped loudly when it is not installed;
    /// scripts/test installs it).
    func testPythonPackageReadsOurCheckpoint() throws {
        let python = ProcessInfo.processInfo.environment["LAYERSWEEP_PYTHON"] ?? "python3"
        guard run(python, ["-c", "import safetensors, numpy"]).status == 0 else {
            throw XCTSkip("SKIPPED: Python safetensors package not importable with \(python); run scripts/test")
        }
        let net = Network.build(try ModelSpec(name: "fcn-4-bn", inputShape: [1, 2, 2], classes: 3), seed: 1)
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("py-\(UUID()).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        try Checkpoint.save(net, to: url)
        let script = Bundle.module.url(forResource: "check_ours", withExtension: "py", subdirectory: "Fixtures")!
        let out = run(python, [script.path, url.path])
        XCTAssertEqual(out.status, 0, out.text)
        var expected = ["meta layersweep.classes=3", "meta layersweep.input=1,2,2", "meta layersweep.model=fcn-4-bn"]
        for (name, t) in net.stateTensors.sorted(by: { $0.0 < $1.0 }) {
            let sum = t.buffer.reduce(0.0) { $0 + Double($1) }
            expected.append("\(name) float32 \(t.shape) \(String(format: "%.6f", sum))")
        }
        XCTAssertEqual(out.text.split(separator: "\n").map(String.init), expected)
    }

    func testMalformedFilesGiveOneLineErrors() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bad-st-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let good = try SafeTensorsFile(tensors: [("w", Tensor(shape: [2, 2], values: [1, 2, 3, 4]))]).encoded()
        let cases: [(String, Data, String)] = [
            ("short", Data([1, 2, 3]), "too short"),
            ("header", Data([200, 0, 0, 0, 0, 0, 0, 0]) + Data("{}".utf8), "exceeds"),
            ("json", Data([8, 0, 0, 0, 0, 0, 0, 0]) + Data("not json".utf8), "not valid JSON"),
            ("truncated", good.dropLast(4), "does not fit"),
            ("dtype", Data([48, 0, 0, 0, 0, 0, 0, 0]) + Data(#"{"w":{"dtype":"I8","shape":[1],"data_offsets":[0,1]}}"#.utf8).prefix(48) + Data([0]), "dtype"),
            ("negative", header(#"{"w":{"dtype":"F32","shape":[-300,-784],"data_offsets":[0,940800]}}"#) + Data(count: 16), "shape [-300, -784]"),
            ("huge", header(#"{"w":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,16]}}"#) + Data(count: 16), "does not fit"),
            ("fraction", header(#"{"w":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}}"#) + Data(count: 8), "lacks dtype, shape or data_offsets"),
        ]
        for (name, bytes, expected) in cases {
            let url = dir.appendingPathComponent("\(name).safetensors")
            try bytes.write(to: url)
            XCTAssertThrowsError(try SafeTensorsFile.read(url), name) { error in
                let text = "\(error)"
                XCTAssertTrue(text.contains(url.path) && text.contains(expected), "\(name): \(text)")
                XCTAssertFalse(text.contains("\n"))
            }
        }
        let wrongModel = dir.appendingPathComponent("plain.safetensors")
        try good.write(to: wrongModel)
        XCTAssertThrowsError(try Checkpoint.load(wrongModel)) { XCTAssertTrue("\($0)".contains("not a layersweep checkpoint")) }
        let manyClasses = dir.appendingPathComponent("classes.safetensors")
        try SafeTensorsFile(tensors: [], metadata: ["layersweep.model": "resnet8", "layersweep.input": "1,28,28",
                                                    "layersweep.classes": "1000000000"]).write(to: manyClasses)
        XCTAssertThrowsError(try Checkpoint.load(manyClasses)) {
            XCTAssertTrue("\($0)".contains(manyClasses.path) && "\($0)".contains("need 2 to 100000 classes"), "\($0)")
        }
    }

    /// An 8-byte length and a JSON header padded to 8 bytes.
    private func header(_ json: String) -> Data {
        var text = Data(json.utf8)
        while text.count % 8 != 0 { text.append(0x20) }
        return withUnsafeBytes(of: UInt64(text.count).littleEndian) { Data($0) } + text
    }

    private func run(_ executable: String, _ arguments: [String]) -> (status: Int32, text: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [executable] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        do { try process.run() } catch { return (-1, "\(error)") }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}

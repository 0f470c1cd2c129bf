import EngineTestSupport
import Foundation
@testable import ONNX
import XCTest

/// The protobuf reader and the ONNX model decoder on hand-made and hostile bytes.
final class ONNXReaderTests: XCTestCase {
    // MARK: - Writing protobuf, for the tests

    /// A varint.
    func varint(_ v: UInt64) -> [UInt8] {
        var out: [UInt8] = [], x = v
        repeat { out.append(UInt8(x & 0x7F) | (x > 0x7F ? 0x80 : 0)); x >>= 7 } while x > 0
        return out
    }
    func key(_ field: Int, _ wire: Int) -> [UInt8] { varint(UInt64(field << 3 | wire)) }
    func bytesField(_ field: Int, _ payload: [UInt8]) -> [UInt8] { key(field, 2) + varint(UInt64(payload.count)) + payload }
    func stringField(_ field: Int, _ s: String) -> [UInt8] { bytesField(field, Array(s.utf8)) }
    func intField(_ field: Int, _ v: Int64) -> [UInt8] { key(field, 0) + varint(UInt64(bitPattern: v)) }

    /// A model: y = Relu(Conv(x, w, b)) with a 1x1x3x3 weight and a bias in an initializer.
    func convModel(packedDims: Bool = true) -> Data {
        let weights: [Float] = [-1, 0, 1, -2, 0, 2, -1, 0, 1]
        let raw = weights.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) }
        let dims: [UInt8] = packedDims ? bytesField(1, [1, 1, 3, 3].flatMap { varint($0) }) : [1, 1, 3, 3].flatMap { intField(1, Int64($0)) }
        let w = dims + intField(2, 1) + stringField(8, "w") + bytesField(9, raw)
        let b = intField(1, 1) + intField(2, 1) + key(4, 5) + withUnsafeBytes(of: Float(0.5).bitPattern.littleEndian, Array.init) + stringField(8, "b")
        let pads = bytesField(5, stringField(1, "pads") + intField(20, 7) + bytesField(8, [1, 1, 1, 1]))
        let conv = stringField(1, "x") + stringField(1, "w") + stringField(1, "b") + stringField(2, "c") + stringField(3, "conv0") + stringField(4, "Conv") + pads
        let relu = stringField(1, "c") + stringField(2, "y") + stringField(4, "Relu")
        let input = bytesField(11, stringField(1, "x") + bytesField(2, bytesField(1, intField(1, 1))))
        let output = bytesField(12, stringField(1, "y"))
        let graph = bytesField(1, conv) + bytesField(1, relu) + bytesField(5, w) + bytesField(5, b) + input + output
        let model = intField(1, 8) + stringField(2, "test") + bytesField(8, intField(2, 13)) + bytesField(7, graph)
        return Data(model)
    }

    func testAHandWrittenModelDecodesAndRuns() throws {
        for packed in [true, false] {
            let program = try ONNXProgram(try ONNXModel(convModel(packedDims: packed)), directory: nil)
            XCTAssertEqual(program.inputNames, ["x"])
            XCTAssertEqual(program.model.opsets[""], 13)
            let x: [Float] = (0..<16).map { Float($0) }
            let y = try XCTUnwrap(try program.run(["x": .floats([1, 1, 4, 4], x)])["y"])
            XCTAssertEqual(y.shape, [1, 1, 4, 4])
            // Hand-computed: at (0, 0) the padded window meets x[0,0], x[0,1], x[1,0], x[1,1] at
            // taps (1,1), (1,2), (2,1), (2,2): 0·0 + 2·1 + 0·4 + 1·5 + 0.5; at (1, 1) all nine taps.
            XCTAssertEqual(y.floatValues[0], 7.5)
            XCTAssertEqual(y.floatValues[5], 8.5)  // 0 + 2 − 8 + 12 − 8 + 10 + 0.5
            // (0, 3) meets x[0,2], x[1,2] at taps (1,0), (2,0): −2·2 − 1·6 + 0.5 < 0, and the ReLU clips it.
            XCTAssertEqual(y.floatValues[3], 0)
            // The weights live on in `constants` only: the model keeps no copy of their bytes.
            XCTAssertFalse(program.model.graph.initializers.isEmpty)
            for t in program.model.graph.initializers {
                XCTAssertTrue(t.raw == nil && t.floatData.isEmpty && t.int64Data.isEmpty, t.name)
                XCTAssertNotNil(program.constants[t.name], t.name)
            }
        }
    }

    /// Truncated and garbled bytes, absurd lengths and dimensions, deep nesting: one-line
    /// errors, never a trap.
    func testBadBytesAreOneLineErrors() throws {
        let good = convModel()
        var cases: [(String, Data)] = [
            ("truncated", good.prefix(good.count - 7)),
            ("varint", Data([0x08] + Array(repeating: 0xFF, count: 11))),
            ("length", Data([0x3A, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F])),
            ("group wire type", Data([0x0B])),
            ("empty", Data()),
        ]
        var deep: [UInt8] = []
        // An attribute's graph holding a node whose attribute holds a graph ..., 40 levels deep.
        for _ in 0..<40 { deep = stringField(1, "body") + intField(20, 5) + bytesField(6, bytesField(1, stringField(4, "If") + bytesField(5, deep))) }
        cases.append(("nesting", Data(bytesField(7, bytesField(1, bytesField(5, deep))))))
        for (name, bytes) in cases {
            XCTAssertThrowsError(try ONNXModel(bytes), name) { XCTAssertFalse("\($0)".contains("\n"), "\(name): \($0)") }
        }
        // A dimension beyond what is read, and raw data that does not fill the shape.
        let hugeDims = intField(1, 1 << 40) + intField(1, 1 << 40) + intField(2, 1) + stringField(8, "w")
        XCTAssertThrowsError(try ONNXTensorProto(file: Data(hugeDims)).value(directory: nil)) { XCTAssertTrue("\($0)".contains("tensor 'w'"), "\($0)") }
        let short = intField(1, 4) + intField(2, 1) + stringField(8, "w") + bytesField(9, [0, 0, 128, 63])
        XCTAssertThrowsError(try ONNXTensorProto(file: Data(short)).value(directory: nil)) { XCTAssertTrue("\($0)".contains("4 bytes of data for 4 float32 values"), "\($0)") }
        let half = intField(1, 1) + intField(2, 10) + stringField(8, "h") + bytesField(9, [0, 60])
        XCTAssertThrowsError(try ONNXTensorProto(file: Data(half)).value(directory: nil)) { XCTAssertTrue("\($0)".contains("export in float32"), "\($0)") }
    }

    /// An operator outside the supported set, a NaN weight, a safetensors file named .onnx: one
    /// line naming the node, the tensor or what the file is.
    func testUnsupportedOperatorsNaNWeightsAndOtherFormatsAreNamed() throws {
        var model = try ONNXModel(convModel())
        model.graph.nodes[1].opType = "Foo"
        XCTAssertThrowsError(try ONNXProgram(model, directory: nil)) {
            XCTAssertTrue("\($0)".contains("operator Foo is not supported; layersweep runs Abs, Add,"), "\($0)")
        }
        let nan = Float.nan.bitPattern.littleEndian
        var raw = convModel()
        // The weight's raw data: its first float (−1) becomes NaN.
        let first = withUnsafeBytes(of: Float(-1).bitPattern.littleEndian, Array.init)
        let at = try XCTUnwrap(raw.range(of: Data(first)))
        raw.replaceSubrange(at, with: withUnsafeBytes(of: nan, Array.init))
        XCTAssertThrowsError(try ONNXProgram(try ONNXModel(raw), directory: nil)) {
            XCTAssertTrue("\($0)".contains("tensor 'w' holds nan at index 0"), "\($0)")
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("onnx-other-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var st = Data([16, 0, 0, 0, 0, 0, 0, 0])
        st.append(Data(#"{"__metadata__":{}}"#.utf8).prefix(16))
        try st.write(to: dir.appendingPathComponent("net.onnx"))
        XCTAssertThrowsError(try ONNXProgram(contentsOf: dir.appendingPathComponent("net.onnx"))) {
            XCTAssertTrue("\($0)".contains("is a safetensors file, not an ONNX model"), "\($0)")
        }
    }

    /// External data: read beside the model, at its offset and length; never outside the folder;
    /// a short or missing file is one line naming the tensor and the file.
    func testExternalDataIsReadBesideTheModelAndNowhereElse() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("onnx-ext-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let values: [Float] = [1.5, -2, 3.25]
        try Data(Array(repeating: 0, count: 8) + values.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) }).write(to: dir.appendingPathComponent("net.onnx.data"))
        func tensor(_ location: String, offset: Int, length: Int) -> ONNXTensorProto {
            func entry(_ k: String, _ v: String) -> [UInt8] { bytesField(13, stringField(1, k) + stringField(2, v)) }
            let bytes = intField(1, 3) + intField(2, 1) + stringField(8, "fc.weight") + entry("location", location)
                + entry("offset", String(offset)) + entry("length", String(length)) + intField(14, 1)
            return try! ONNXTensorProto(file: Data(bytes))
        }
        XCTAssertEqual(try tensor("net.onnx.data", offset: 8, length: 12).value(directory: dir), .floats([3], values))
        let cases = [(tensor("net.onnx.data", offset: 8, length: 16), "which has 20 (a short or wrong data file)"),
                     (tensor("../net.onnx.data", offset: 0, length: 12), "points outside the model's folder"),
                     (tensor("/etc/passwd", offset: 0, length: 12), "points outside the model's folder"),
                     (tensor("missing.data", offset: 0, length: 12), "missing beside the model"),
                     (tensor("net.onnx.data", offset: 0, length: 8), "8 bytes of data for 3 float32 values")]
        for (t, expected) in cases {
            XCTAssertThrowsError(try t.value(directory: dir)) { XCTAssertTrue("\($0)".contains(expected), "\($0)") }
        }
    }

    /// Random mutations of a valid model (`LAYERSWEEP_FUZZ_CASES`, default 3,000, at most 60 s):
    /// each decodes, prepares and runs or throws; none traps.
    func testRandomMutationsOfAModelNeverCrashTheReader() throws {
        let valid = convModel()
        let cases = Int(ProcessInfo.processInfo.environment["LAYERSWEEP_FUZZ_CASES"] ?? "") ?? 3000
        var mutator = FuzzMutator(seed: 11)
        let deadline = Date().addingTimeInterval(60)
        var (ran, decoded, ranGraph) = (0, 0, 0)
        for _ in 0..<cases where Date() < deadline {
            let bytes = mutator.mutate(valid, headerRange: 0..<valid.count)
            ran += 1
            guard let model = try? ONNXModel(bytes) else { continue }
            decoded += 1
            guard let program = try? ONNXProgram(model, directory: nil) else { continue }
            let inputs = Dictionary(uniqueKeysWithValues: program.inputNames.map { ($0, ONNXValue.floats([1, 1, 4, 4], Array(repeating: 1, count: 16))) })
            if (try? program.run(inputs)) != nil { ranGraph += 1 }
        }
        print("onnx fuzz: \(ran) cases, \(decoded) decoded, \(ranGraph) ran, no crash")
        XCTAssertGreaterThan(decoded, 0)
    }
}

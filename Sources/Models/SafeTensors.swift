import Foundation
import TensorEngine
import Yams

/// A safetensors file: an 8-byte little-endian header length, a JSON header mapping each tensor
/// name to its dtype, shape and byte range, optional string metadata, then the raw data.
/// (https://huggingface.co/docs/safetensors). We write F32; we read F32, F64, F16 and BF16, and
/// integer tensors (I64, I32, U8, BOOL) as floats.
public struct SafeTensorsFile {
    public var tensors: [(String, Tensor)]
    public var metadata: [String: String]

    public init(tensors: [(String, Tensor)], metadata: [String: String] = [:]) {
        self.tensors = tensors
        self.metadata = metadata
    }

    public subscript(name: String) -> Tensor? { tensors.first { $0.0 == name }?.1 }

    /// The serialised bytes, tensors laid out in name order, header padded to 8 bytes.
    public func encoded() throws -> Data {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        let ordered = tensors.sorted { $0.0 < $1.0 }
        for (name, tensor) in ordered {
            let bytes = tensor.count * 4
            header[name] = ["dtype": "F32", "shape": tensor.shape, "data_offsets": [offset, offset + bytes]] as [String: Any]
            offset += bytes
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while json.count % 8 != 0 { json.append(0x20) }
        var out = Data(capacity: 8 + json.count + offset)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        for (_, tensor) in ordered {
            let le = tensor.buffer.map { $0.bitPattern.littleEndian }
            le.withUnsafeBytes { out.append(contentsOf: $0) }
        }
        return out
    }

    /// Writes atomically (temp file, then rename).
    public func write(to url: URL) throws {
        try encoded().write(to: url, options: .atomic)
    }

    public static func read(_ url: URL) throws -> SafeTensorsFile {
        let data: Data
        do { data = try RegularFile.read(url.path, what: "checkpoint") } catch let error as FileProblem {
            throw SafeTensorsError(file: url.path, problem: error.problem)
        }
        return try decode(data, file: url.path)
    }

    public static func decode(_ data: Data, file: String = "<memory>") throws -> SafeTensorsFile {
        func fail(_ problem: String) -> SafeTensorsError { SafeTensorsError(file: file, problem: problem) }
        guard data.count >= 8 else { throw fail("too short for a safetensors header (\(data.count) bytes)") }
        let headerLength = data.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.1) << (8 * UInt64($1.0)) }
        guard headerLength <= UInt64(data.count - 8), headerLength <= maxHeaderBytes else {
            if let other = otherFormat(data) { throw fail(other) }
            throw fail("header length \(headerLength) exceeds the file's \(data.count - 8) remaining bytes")
        }
        let headerEnd = 8 + Int(headerLength)
        let headerBytes = data.subdata(in: 8..<headerEnd)
        let object: Any
        do { object = try JSONSerialization.jsonObject(with: headerBytes) } catch {
            throw fail(otherFormat(data) ?? "header is not valid JSON")
        }
        guard let header = object as? [String: Any] else { throw fail("header is not a JSON object") }
        if let key = duplicateKey(headerBytes) { throw fail("header names '\(key)' twice") }
        let payload = data.count - headerEnd
        var metadata: [String: String] = [:]
        var tensors: [(String, Tensor)] = []
        var ranges: [(name: String, range: Range<Int>)] = []
        for (name, value) in header.sorted(by: { $0.key < $1.key }) {
            if name == "__metadata__" {
                guard let m = value as? [String: String] else { throw fail("__metadata__ must map strings to strings") }
                metadata = m
                continue
            }
            guard let entry = value as? [String: Any], let dtype = entry["dtype"] as? String,
                  let rawShape = entry["shape"] as? [Any], let shape = integers(rawShape),
                  let rawOffsets = entry["data_offsets"] as? [Any], let offsets = integers(rawOffsets),
                  offsets.count == 2 else {
                throw fail("tensor '\(name)' lacks dtype, shape or data_offsets")
            }
            guard let width = ["F32": 4, "F64": 8, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "U8": 1, "BOOL": 1][dtype] else {
                throw fail("tensor '\(name)' has dtype \(dtype); supported: F32, F64, F16, BF16, I64, I32, U8, BOOL")
            }
            guard let count = elementCount(shape), count <= payload else {
                throw fail("tensor '\(name)' has shape \(shape), which does not fit in the file's \(payload) data bytes")
            }
            guard offsets[0] >= 0, offsets[1] >= offsets[0], offsets[1] <= payload,
                  offsets[1] - offsets[0] == count * width else {
                throw fail("tensor '\(name)' byte range \(offsets) does not fit shape \(shape) x \(width) bytes in \(payload) data bytes")
            }
            ranges.append((name, offsets[0]..<offsets[1]))
            let tensor = Tensor(shape: shape)
            data.withUnsafeBytes { raw in
                let base = raw.baseAddress! + headerEnd + offsets[0]
                for i in 0..<count {
                    switch dtype {
                    case "F32": tensor.data[i] = Float(bitPattern: UInt32(littleEndian: base.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
                    case "F64": tensor.data[i] = Float(Double(bitPattern: UInt64(littleEndian: base.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))))
                    case "F16": tensor.data[i] = Float(Float16(bitPattern: UInt16(littleEndian: base.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))))
                    // Integer tensors (PyTorch's num_batches_tracked counters) are read as floats.
                    case "I64": tensor.data[i] = Float(Int64(littleEndian: base.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self)))
                    case "I32": tensor.data[i] = Float(Int32(littleEndian: base.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self)))
                    case "U8", "BOOL": tensor.data[i] = Float(base.load(fromByteOffset: i, as: UInt8.self))
                    default: tensor.data[i] = Float(bitPattern: UInt32(UInt16(littleEndian: base.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) << 16)  // BF16
                    }
                }
            }
            tensors.append((name, tensor))
        }
        // As the format (and Python's reader) demands: the tensors tile the data exactly, in
        // offset order, no byte shared and none left over.
        var end = 0
        for (name, range) in ranges.sorted(by: { ($0.range.lowerBound, $0.range.upperBound) < ($1.range.lowerBound, $1.range.upperBound) }) {
            guard range.lowerBound == end else {
                throw fail(range.lowerBound < end ? "tensor '\(name)' overlaps another tensor's bytes (data_offsets \(range.lowerBound)..<\(range.upperBound))"
                                                 : "bytes \(end)..<\(range.lowerBound) belong to no tensor (before '\(name)')")
            }
            end = range.upperBound
        }
        guard end == payload else { throw fail("bytes \(end)..<\(payload) after the last tensor belong to no tensor") }
        return SafeTensorsFile(tensors: tensors, metadata: metadata)
    }

    /// The largest header read (Python's reader has the same bound): a larger one is hostile.
    static let maxHeaderBytes: UInt64 = 100 << 20

    /// A key that the header's JSON object (or its metadata) gives twice: JSONSerialization keeps
    /// one silently, so the document is composed again by Yams, which reports duplicates. A
    /// header Yams cannot read at all is left to JSONSerialization's verdict.
    private static func duplicateKey(_ header: Data) -> String? {
        do { _ = try Yams.compose(yaml: String(decoding: header, as: UTF8.self)) } catch YamlError.duplicatedKeysInMapping(let duplicates, _) {
            return duplicates.sorted().first ?? "a key"
        } catch {}
        return nil
    }

    /// What a file that is not safetensors is, and how to save one that is, when its first bytes
    /// tell: `torch.save` writes a zip archive (or, before PyTorch 1.6, a pickle).
    static func otherFormat(_ data: Data) -> String? {
        let head = [UInt8](data.prefix(4))
        let save = "save the state_dict as safetensors: safetensors.torch.save_file(model.state_dict(), \"net.safetensors\")"
        if head == [0x50, 0x4B, 0x03, 0x04] { return "is a zip archive, as torch.save writes: \(save)" }
        if head.first == 0x80, head.count > 1, (2...5).contains(head[1]) { return "is a Python pickle, as torch.save wrote before PyTorch 1.6: \(save)" }
        if head.first == 0x08, data.range(of: Data("onnx".utf8)) != nil || data.range(of: Data("pytorch".utf8)) != nil {
            return "looks like an ONNX model (protobuf), not a safetensors file: \(save)"
        }
        return nil
    }
}

/// JSON numbers that are exact integers (a shape of 2.5 or 1e30 is not a shape).
private func integers(_ values: [Any]) -> [Int]? {
    var out: [Int] = []
    for value in values {
        guard let number = value as? NSNumber, let exact = Int(exactly: number.doubleValue) else { return nil }
        out.append(exact)
    }
    return out
}

/// The number of elements of `shape`, or nil when a dimension is negative or the product overflows.
func elementCount(_ shape: [Int]) -> Int? {
    var count = 1
    for d in shape {
        guard d >= 0 else { return nil }
        let (product, overflow) = count.multipliedReportingOverflow(by: d)
        guard !overflow else { return nil }
        count = product
    }
    return count
}

/// A safetensors file that cannot be used, with the file and the reason.
public struct SafeTensorsError: Error, CustomStringConvertible, Equatable {
    public let file: String
    public let problem: String
    public var description: String { "\(file): \(problem)" }

    public init(file: String, problem: String) {
        self.file = file
        self.problem = problem
    }
}

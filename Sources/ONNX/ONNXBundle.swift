import Foundation

/// A model file and the external data files its tensors name, as one blob: rank 0 reads them
/// beside the model and ships this to workers, which need no shared filesystem. Layout: the
/// magic `LSONNX1\n`, a little-endian UInt32 header length, a JSON header listing each part's
/// name and size (the model first, as ""), then the parts' bytes in that order.
public enum ONNXBundle {
    static let magic = Data("LSONNX1\n".utf8)

    private struct Part: Codable { let name: String; let size: Int }

    /// Whether `data` is a bundle (and not, say, a safetensors checkpoint).
    public static func isBundle(_ data: Data) -> Bool { data.starts(with: magic) }

    /// The bundle of the model at `url`: its bytes and every external data file it names.
    public static func read(_ url: URL) throws -> Data {
        let model: Data
        do { model = try Data(contentsOf: url) } catch { throw ONNXError.model("\(url.path): cannot read (\(error.localizedDescription))") }
        let decoded: ONNXModel
        do { decoded = try ONNXModel(model) } catch let error as ProtobufError { throw ONNXError.model("\(url.path): not a readable ONNX model: \(error)") }
        var files: [String: Data] = [:]
        for tensor in decoded.graph.initializers where tensor.isExternal {
            guard let location = tensor.externalLocation else { throw ONNXError.model("\(url.path): tensor '\(tensor.name)' points outside the model's folder") }
            guard files[location] == nil else { continue }
            let path = url.deletingLastPathComponent().appendingPathComponent(location)
            guard let data = FileManager.default.contents(atPath: path.path) else {
                throw ONNXError.model("\(url.path): tensor '\(tensor.name)' is stored in \(location), which is missing beside the model (copy it with the .onnx file)")
            }
            files[location] = data
        }
        return try encode(model: model, files: files)
    }

    public static func encode(model: Data, files: [String: Data]) throws -> Data {
        let parts = [Part(name: "", size: model.count)] + files.keys.sorted().map { Part(name: $0, size: files[$0]!.count) }
        // Sorted keys: the same parts give the same bytes (a bundle is named by its hash).
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let header = try encoder.encode(parts)
        var out = magic
        withUnsafeBytes(of: UInt32(header.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(header)
        out.append(model)
        for name in files.keys.sorted() { out.append(files[name]!) }
        return out
    }

    /// The model bytes and the external data files, every size checked against the blob.
    public static func decode(_ data: Data) throws -> (model: Data, files: [String: Data]) {
        func fail(_ why: String) -> ONNXError { .model("not a layersweep ONNX bundle: \(why)") }
        guard isBundle(data), data.count >= magic.count + 4 else { throw fail("no magic") }
        var offset = data.startIndex + magic.count
        let length = Int(data[offset]) | Int(data[offset + 1]) << 8 | Int(data[offset + 2]) << 16 | Int(data[offset + 3]) << 24
        offset += 4
        guard length <= data.endIndex - offset else { throw fail("header of \(length) bytes") }
        let parts: [Part]
        do { parts = try JSONDecoder().decode([Part].self, from: data.subdata(in: offset..<(offset + length))) } catch { throw fail("header") }
        offset += length
        var model: Data?
        var files: [String: Data] = [:]
        for part in parts {
            guard part.size >= 0, part.size <= data.endIndex - offset else { throw fail("part '\(part.name)' of \(part.size) bytes") }
            let bytes = data.subdata(in: offset..<(offset + part.size))
            offset += part.size
            if part.name.isEmpty { model = bytes } else { files[part.name] = bytes }
        }
        guard let model, offset == data.endIndex else { throw fail("parts do not fill the blob") }
        return (model, files)
    }
}

import Foundation

/// A TensorProto: a weight, a constant, or a test's input or output. Its values live in
/// `raw_data` (little-endian bytes), in a typed repeated field, or in an external file
/// (`location`, `offset`, `length` relative to the model's folder: PyTorch's default exporter
/// writes `net.onnx.data`).
public struct ONNXTensorProto {
    public var name = ""
    public var dims: [Int64] = []
    public var dataType: Int64 = 0
    /// The bytes of `raw_data`, a range of the file's data (not copied).
    var raw: Data?
    var floatData: [Float] = []
    var int64Data: [Int64] = []
    var int32Data: [Int64] = []
    var doubleData: [Double] = []
    public var external: [String: String] = [:]
    public var isExternal = false

    public init() {}

    /// The tensor's name, type and shape without its values (nor the bytes they point into).
    var withoutValues: ONNXTensorProto {
        var t = self
        (t.raw, t.floatData, t.int64Data, t.int32Data, t.doubleData) = (nil, [], [], [], [])
        return t
    }

    init(_ reader: WireReader) throws {
        var r = reader
        while let (number, wire) = try r.field() {
            switch (number, wire) {
            case (1, _): try r.int64s(wire, into: &dims)
            case (2, .varint): dataType = try r.int64()
            case (4, _): try r.floats(wire, into: &floatData)
            case (5, _): try r.int64s(wire, into: &int32Data)
            case (7, _): try r.int64s(wire, into: &int64Data)
            case (8, .lengthDelimited): name = try r.string()
            case (9, .lengthDelimited): raw = r.data[try r.bytes()]
            case (10, _): try r.doubles(wire, into: &doubleData)
            case (13, .lengthDelimited):
                let (k, v) = try ONNXModel.entry(try r.message())
                external[k] = v
            case (14, .varint): isExternal = try r.int64() == 1
            case (3, .lengthDelimited): throw ProtobufError(message: "tensor split into segments is not supported")
            default: try r.skip(wire)
            }
        }
    }

    /// Decodes a TensorProto file (a test's `input_0.pb`).
    public init(file data: Data) throws { try self.init(WireReader(data)) }

    /// Element type names, for messages.
    static let typeNames: [Int64: String] = [1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64",
                                             8: "string", 9: "bool", 10: "float16", 11: "float64", 12: "uint32", 13: "uint64", 16: "bfloat16"]
    var typeName: String { ONNXTensorProto.typeNames[dataType] ?? "type \(dataType)" }

    /// The shape, every dimension checked (non-negative, a product that fits).
    func shape() throws -> [Int] {
        var count = 1
        var shape: [Int] = []
        for d in dims {
            guard d >= 0, d <= Int64(Int32.max) else { throw ONNXError.tensor(name, "has dimension \(d)") }
            let (product, overflow) = count.multipliedReportingOverflow(by: Int(d))
            guard !overflow, product <= ONNXValue.maxElements else { throw ONNXError.tensor(name, "has \(dims) elements, more than layersweep reads") }
            count = product
            shape.append(Int(d))
        }
        return shape
    }

    /// The values, as floats (float32 and float64 tensors) or integers (int64, int32, int8,
    /// uint8, bool: shapes, indices, axes). `directory` is where external data files live.
    public func value(directory: URL?) throws -> ONNXValue {
        try value(external: directory.map(ExternalData.directory))
    }

    /// The values, external data read from `external`.
    public func value(external: ExternalData?) throws -> ONNXValue {
        let shape = try shape()
        let count = shape.reduce(1, *)
        let bytes: Data?
        if isExternal { bytes = try externalBytes(external) } else { bytes = raw }
        func checked<T>(_ values: [T]) throws -> [T] {
            guard values.count == count else { throw ONNXError.tensor(name, "holds \(values.count) values for shape \(shape)") }
            return values
        }
        func fromBytes<T>(_ width: Int, _ convert: (UnsafeRawBufferPointer, Int) -> T) throws -> [T]? {
            guard let bytes else { return nil }
            guard bytes.count == count * width else {
                throw ONNXError.tensor(name, "has \(bytes.count) bytes of data for \(count) \(typeName) values")
            }
            return bytes.withUnsafeBytes { raw in (0..<count).map { convert(raw, $0 * width) } }
        }
        switch dataType {
        case 1:
            let v = try fromBytes(4) { Float(bitPattern: UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: $1, as: UInt32.self))) }
            return .floats(shape, try checked(v ?? floatData))
        case 11:
            let v = try fromBytes(8) { Float(Double(bitPattern: UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: $1, as: UInt64.self)))) }
            return .floats(shape, try checked(v ?? doubleData.map(Float.init)))
        case 7:
            let v = try fromBytes(8) { Int64(littleEndian: $0.loadUnaligned(fromByteOffset: $1, as: Int64.self)) }
            return .ints(shape, try checked(v ?? int64Data))
        case 6:
            let v = try fromBytes(4) { Int64(Int32(littleEndian: $0.loadUnaligned(fromByteOffset: $1, as: Int32.self))) }
            return .ints(shape, try checked(v ?? int32Data))
        case 2, 9:
            let v = try fromBytes(1) { Int64($0.load(fromByteOffset: $1, as: UInt8.self)) }
            return .ints(shape, try checked(v ?? int32Data))
        case 3:
            let v = try fromBytes(1) { Int64($0.load(fromByteOffset: $1, as: Int8.self)) }
            return .ints(shape, try checked(v ?? int32Data))
        case 10, 16:
            throw ONNXError.tensor(name, "is \(typeName); layersweep reads float32 networks: export in float32 (model.float() before torch.onnx.export)")
        default:
            throw ONNXError.tensor(name, "is \(typeName), which layersweep does not read")
        }
    }

    /// Where a model's external data files are: beside the model file, or already read (a
    /// bundle shipped to a worker).
    public enum ExternalData {
        case directory(URL)
        case files([String: Data])
    }

    /// The file name an external-data tensor points at, checked: relative, inside the model's
    /// folder.
    public var externalLocation: String? {
        guard isExternal, let location = external["location"], !location.isEmpty, !location.hasPrefix("/"),
              !location.split(separator: "/").contains("..") else { return nil }
        return location
    }

    /// The bytes an external-data tensor points at: a file beside the model (never outside its
    /// folder), at `offset`, `length` bytes.
    func externalBytes(_ source: ExternalData?) throws -> Data {
        guard let location = external["location"], !location.isEmpty else { throw ONNXError.tensor(name, "is external but names no location") }
        guard externalLocation != nil else { throw ONNXError.tensor(name, "points outside the model's folder (\(location))") }
        guard let source else { throw ONNXError.tensor(name, "is external data (\(location)), and the model was not read from a file") }
        let file: Data
        switch source {
        case let .files(files):
            guard let data = files[location] else { throw ONNXError.tensor(name, "is stored in \(location), which did not come with the model") }
            file = data
        case let .directory(directory):
            let url = directory.appendingPathComponent(location)
            guard let handle = FileHandle(forReadingAtPath: url.path) else {
                throw ONNXError.tensor(name, "is stored in \(location), which is missing beside the model (copy it with the .onnx file)")
            }
            defer { try? handle.close() }
            let size = try handle.seekToEnd()
            let (offset, length) = try range(in: size, location: location)
            try handle.seek(toOffset: offset)
            return try handle.read(upToCount: Int(length)) ?? Data()
        }
        let (offset, length) = try range(in: UInt64(file.count), location: location)
        return file.subdata(in: (file.startIndex + Int(offset))..<(file.startIndex + Int(offset + length)))
    }

    /// `offset` and `length` of the tensor in a file of `size` bytes, checked.
    private func range(in size: UInt64, location: String) throws -> (UInt64, UInt64) {
        guard let offset = UInt64(external["offset"] ?? "0") else { throw ONNXError.tensor(name, "has offset '\(external["offset"] ?? "")'") }
        let length: UInt64
        if let text = external["length"] {
            guard let l = UInt64(text) else { throw ONNXError.tensor(name, "has length '\(text)'") }
            length = l
        } else {
            guard offset <= size else { throw ONNXError.tensor(name, "starts at \(offset), beyond \(location)'s \(size) bytes") }
            length = size - offset
        }
        guard offset <= size, length <= size - offset else {
            throw ONNXError.tensor(name, "needs bytes \(offset)..<\(offset &+ length) of \(location), which has \(size) (a short or wrong data file)")
        }
        return (offset, length)
    }
}

/// A model that cannot be run, told on one line.
public enum ONNXError: Error, CustomStringConvertible, Equatable {
    case tensor(String, String)
    case node(String, String)
    case model(String)

    public var description: String {
        switch self {
        case let .tensor(name, problem): return "tensor '\(name)' \(problem)"
        case let .node(node, problem): return "node \(node): \(problem)"
        case let .model(problem): return problem
        }
    }
}

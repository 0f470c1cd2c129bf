import CZlib
import Foundation

/// An array read from NumPy's `.npy` format (or one member of an `.npz` archive): its shape
/// and its elements in C order, as bytes (uint8), floats (float32) or integers (labels).
public struct NumPyArray: Sendable {
    public enum Elements: Sendable {
        case bytes([UInt8])
        case floats([Float])
        case integers([Int64])
    }

    public let shape: [Int]
    public let elements: Elements

    /// The `.npy` header's dictionary: `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }`.
    struct Header: Equatable {
        var descr: String
        var fortranOrder: Bool
        var shape: [Int]
    }

    /// The most elements an array may hold (a header's shape is checked against the file size too).
    static let maxElements = 1 << 36

    /// Parses a whole `.npy` file held in `data`; `file` names it in errors.
    public static func parse(_ data: Data, file: String) throws -> NumPyArray {
        func fail(_ problem: String) -> DatasetError { DatasetError(file: file, problem: problem) }
        let magic: [UInt8] = [0x93] + Array("NUMPY".utf8)
        guard data.count >= 10, Array(data.prefix(6)) == magic else { throw fail("is not a NumPy .npy array (bad magic)") }
        let s = data.startIndex
        let major = data[s + 6]
        let (headerLength, headerStart): (Int, Int)
        switch major {
        case 1: (headerLength, headerStart) = (Int(data[s + 8]) | Int(data[s + 9]) << 8, 10)
        case 2, 3:
            guard data.count >= 12 else { throw fail("truncated .npy header") }
            headerLength = (0..<4).reduce(0) { $0 | Int(data[s + 8 + $1]) << (8 * $1) }
            headerStart = 12
        default: throw fail(".npy format version \(major) is not 1, 2 or 3")
        }
        guard headerLength <= 1 << 20, headerStart + headerLength <= data.count else { throw fail("truncated .npy header (\(headerLength) bytes promised)") }
        let text = String(decoding: data[(s + headerStart)..<(s + headerStart + headerLength)], as: UTF8.self)
        let header = try parseHeader(text, file: file)
        return try decode(header, payload: data[(s + headerStart + headerLength)...], file: file)
    }

    /// The header dictionary, strictly: exactly the three keys NumPy writes, a dtype string,
    /// a boolean and a tuple of non-negative integers.
    static func parseHeader(_ text: String, file: String) throws -> Header {
        var scanner = Array(text.utf8)[...]
        func fail(_ problem: String) -> DatasetError { DatasetError(file: file, problem: ".npy header: \(problem)") }
        func skipSpace() { while let c = scanner.first, c == 0x20 || c == 0x0A || c == 0x09 { scanner.removeFirst() } }
        func expect(_ c: UInt8) throws {
            skipSpace()
            guard scanner.first == c else { throw fail("expected '\(Character(Unicode.Scalar(c)))'") }
            scanner.removeFirst()
        }
        func string() throws -> String {
            skipSpace()
            guard let quote = scanner.first, quote == 0x27 || quote == 0x22 else { throw fail("expected a quoted string") }
            scanner.removeFirst()
            guard let end = scanner.firstIndex(of: quote), end - scanner.startIndex <= 64 else { throw fail("unterminated string") }
            let value = String(decoding: scanner[..<end], as: UTF8.self)
            scanner = scanner[(end + 1)...]
            return value
        }
        func integer() throws -> Int {
            skipSpace()
            var digits = 0, value = 0
            while let c = scanner.first, (0x30...0x39).contains(c) {
                guard digits < 15 else { throw fail("dimension too large") }
                value = value * 10 + Int(c - 0x30)
                digits += 1
                scanner.removeFirst()
            }
            if scanner.first == 0x4C { scanner.removeFirst() }   // Python 2's long suffix
            guard digits > 0 else { throw fail("expected a dimension") }
            return value
        }
        var fields: [String: Any] = [:]
        try expect(0x7B)
        while true {
            skipSpace()
            if scanner.first == 0x7D { scanner.removeFirst(); break }
            let key = try string()
            try expect(0x3A)
            skipSpace()
            switch key {
            case "descr": fields[key] = try string()
            case "fortran_order":
                if scanner.starts(with: Array("True".utf8)) { fields[key] = true; scanner.removeFirst(4) }
                else if scanner.starts(with: Array("False".utf8)) { fields[key] = false; scanner.removeFirst(5) }
                else { throw fail("fortran_order is not True or False") }
            case "shape":
                try expect(0x28)
                var dims: [Int] = []
                while true {
                    skipSpace()
                    if scanner.first == 0x29 { scanner.removeFirst(); break }
                    guard dims.count < 8 else { throw fail("more than 8 dimensions") }
                    dims.append(try integer())
                    skipSpace()
                    if scanner.first == 0x2C { scanner.removeFirst() } else { try expect(0x29); break }
                }
                fields[key] = dims
            default: throw fail("unexpected key '\(SafeLine.clean(key, limit: 40))'")
            }
            skipSpace()
            if scanner.first == 0x2C { scanner.removeFirst() } else { try expect(0x7D); break }
        }
        guard let descr = fields["descr"] as? String, let fortran = fields["fortran_order"] as? Bool, let shape = fields["shape"] as? [Int] else {
            throw fail("needs descr, fortran_order and shape")
        }
        return Header(descr: descr, fortranOrder: fortran, shape: shape)
    }

    /// The element type a dtype string names: kind ("u", "i", "f"), size and byte order.
    static func elementType(_ descr: String) -> (kind: Character, size: Int, bigEndian: Bool)? {
        guard descr.count >= 3, let order = descr.first, "<>|=".contains(order),
              let size = Int(descr.dropFirst(2)), [1, 2, 4, 8].contains(size) else { return nil }
        let kind = descr[descr.index(after: descr.startIndex)]
        guard "uif".contains(kind), kind != "f" || size == 4 || size == 8 else { return nil }
        return (kind, size, order == ">")
    }

    static func decode(_ header: Header, payload: Data, file: String) throws -> NumPyArray {
        func fail(_ problem: String) -> DatasetError { DatasetError(file: file, problem: problem) }
        guard let type = elementType(header.descr) else {
            throw fail("dtype '\(SafeLine.clean(header.descr, limit: 20))' is not an unsigned, signed integer or float array (uint8 or float32 images, integer labels)")
        }
        var count = 1
        for d in header.shape {
            let (p, o) = count.multipliedReportingOverflow(by: d)
            guard !o, p <= maxElements else { throw fail("shape \(header.shape) is too large") }
            count = p
        }
        guard payload.count == count * type.size else {
            throw fail("shape \(header.shape) of \(header.descr) needs \(count * type.size) bytes of data, the file holds \(payload.count)")
        }
        // Element i of C order sits at this position of the file's order (Fortran: reversed strides).
        // Fortran strides: the first axis varies fastest in the file.
        var fortranStrides = [Int](repeating: 1, count: header.shape.count)
        for d in fortranStrides.indices.dropFirst() { fortranStrides[d] = fortranStrides[d - 1] * header.shape[d - 1] }
        let order: ((Int) -> Int)? = header.fortranOrder && header.shape.count > 1 ? { i in
            var rest = i, position = 0
            for d in (0..<header.shape.count).reversed() {
                position += rest % header.shape[d] * fortranStrides[d]
                rest /= header.shape[d]
            }
            return position
        } : nil
        func read<T>(_ make: (UnsafeRawBufferPointer, Int) -> T) -> [T] {
            payload.withUnsafeBytes { raw in (0..<count).map { i in make(raw, (order?(i) ?? i) * type.size) } }
        }
        func word(_ raw: UnsafeRawBufferPointer, _ at: Int) -> UInt64 {
            var v: UInt64 = 0
            for b in 0..<type.size { v |= UInt64(raw[at + (type.bigEndian ? type.size - 1 - b : b)]) << (8 * b) }
            return v
        }
        switch (type.kind, type.size) {
        case ("u", 1) where order == nil: return NumPyArray(shape: header.shape, elements: .bytes([UInt8](payload)))
        case ("u", 1): return NumPyArray(shape: header.shape, elements: .bytes(read { $0[$1] }))
        case ("f", 4): return NumPyArray(shape: header.shape, elements: .floats(read { Float(bitPattern: UInt32(word($0, $1))) }))
        case ("f", 8): return NumPyArray(shape: header.shape, elements: .floats(read { Float(Double(bitPattern: word($0, $1))) }))
        case ("u", _): return NumPyArray(shape: header.shape, elements: .integers(read { Int64(clamping: word($0, $1)) }))
        default:   // signed
            let bits = 64 - 8 * type.size
            return NumPyArray(shape: header.shape, elements: .integers(read { Int64(bitPattern: word($0, $1) << bits) >> bits }))
        }
    }

    /// Reads a `.npy` file.
    public static func read(_ path: String) throws -> NumPyArray {
        try parse(try DatasetFile.read(path), file: path)
    }
}

/// Whole small files read with their size checked first.
enum DatasetFile {
    static func read(_ path: String, limit: Int = 1 << 36) throws -> Data {
        var s = stat()
        guard stat(path, &s) == 0 else { throw DatasetError(file: path, problem: "no such file") }
        guard s.st_mode & S_IFMT == S_IFREG else { throw DatasetError(file: path, problem: "is not a regular file") }
        guard s.st_size > 0 else { throw DatasetError(file: path, problem: "is empty (0 bytes)") }
        guard Int(s.st_size) <= limit else { throw DatasetError(file: path, problem: "is larger than \(limit >> 30) GiB") }
        guard let data = FileManager.default.contents(atPath: path) else { throw DatasetError(file: path, problem: "cannot be read") }
        return data
    }
}

/// The members of a `.npz` file: a ZIP archive (stored, or deflated by `savez_compressed`,
/// ZIP64 for large members) of `.npy` files. Only what NumPy writes is read; every offset and
/// size is checked against the archive, and each member's CRC-32.
public struct NumPyArchive {
    public let path: String
    private let data: Data
    /// Member name (without `.npy`) -> (method, compressed size, uncompressed size, CRC, local header offset).
    private let members: [String: (method: Int, compressed: Int, size: Int, crc: UInt32, offset: Int)]

    public var names: [String] { members.keys.sorted() }

    /// The member names for a message: control characters removed, at most eight shown.
    public var listedNames: String {
        let shown = names.prefix(8).map { SafeLine.clean($0, limit: 40) }.joined(separator: ", ")
        return names.count > 8 ? shown + ", … (\(names.count))" : shown
    }

    public init(_ path: String) throws {
        self.path = path
        data = try DatasetFile.read(path)
        func fail(_ problem: String) -> DatasetError { DatasetError(file: path, problem: "not a readable .npz (ZIP) archive: \(problem)") }
        let bytes = [UInt8](data)
        func u16(_ at: Int) throws -> Int {
            guard at >= 0, at + 2 <= bytes.count else { throw fail("a record runs past the end") }
            return Int(bytes[at]) | Int(bytes[at + 1]) << 8
        }
        func u32(_ at: Int) throws -> Int {
            let (low, high) = (try u16(at), try u16(at + 2))
            return low | high << 16
        }
        func u64(_ at: Int) throws -> Int {
            let v = UInt64(try u32(at)) | UInt64(try u32(at + 4)) << 32
            guard v < 1 << 48 else { throw fail("a 64-bit size is implausible") }
            return Int(v)
        }
        // The end-of-central-directory record: in the last 64 KiB + 22 bytes.
        var eocd = -1
        for at in stride(from: bytes.count - 22, through: max(0, bytes.count - 22 - 65_535), by: -1) where try u32(at) == 0x0605_4B50 {
            eocd = at
            break
        }
        guard eocd >= 0 else { throw fail("no end-of-central-directory record") }
        var entries = try u16(eocd + 10), directoryOffset = try u32(eocd + 16)
        if entries == 0xFFFF || directoryOffset == 0xFFFF_FFFF {
            let locator = eocd - 20
            guard try u32(locator) == 0x0706_4B50 else { throw fail("ZIP64 locator missing") }
            let record = try u64(locator + 8)
            guard try u32(record) == 0x0606_4B50 else { throw fail("ZIP64 directory record missing") }
            entries = try u64(record + 32)
            directoryOffset = try u64(record + 48)
        }
        guard entries <= 10_000 else { throw fail("\(entries) members") }
        var members: [String: (Int, Int, Int, UInt32, Int)] = [:]
        var at = directoryOffset
        for _ in 0..<entries {
            guard try u32(at) == 0x0201_4B50 else { throw fail("bad central directory entry at byte \(at)") }
            let method = try u16(at + 10)
            let crc = UInt32(try u32(at + 16))
            var compressed = try u32(at + 20), size = try u32(at + 24)
            let nameLength = try u16(at + 28), extraLength = try u16(at + 30), commentLength = try u16(at + 32)
            var offset = try u32(at + 42)
            guard at + 46 + nameLength <= bytes.count else { throw fail("a member name runs past the end") }
            let name = String(decoding: bytes[(at + 46)..<(at + 46 + nameLength)], as: UTF8.self)
            // ZIP64 extra field: the 64-bit values of whichever fields are 0xFFFFFFFF, in order.
            var extra = at + 46 + nameLength
            let extraEnd = extra + extraLength
            while extra + 4 <= extraEnd {
                let id = try u16(extra), length = try u16(extra + 2)
                if id == 0x0001 {
                    var field = extra + 4
                    if size == 0xFFFF_FFFF { size = try u64(field); field += 8 }
                    if compressed == 0xFFFF_FFFF { compressed = try u64(field); field += 8 }
                    if offset == 0xFFFF_FFFF { offset = try u64(field); field += 8 }
                }
                extra += 4 + length
            }
            guard method == 0 || method == 8 else { throw fail("member \(SafeLine.clean(name, limit: 40)) uses compression method \(method) (NumPy writes stored or deflated members)") }
            guard offset + 30 <= bytes.count, compressed <= bytes.count, size <= NumPyArray.maxElements * 8 else {
                throw fail("member \(SafeLine.clean(name, limit: 40)) points outside the archive")
            }
            let key = name.hasSuffix(".npy") ? String(name.dropLast(4)) : name
            members[key] = (method, compressed, size, crc, offset)
            at = extraEnd + commentLength
        }
        self.members = members
    }

    /// The array stored under `name` (without `.npy`).
    public func array(_ name: String) throws -> NumPyArray {
        guard let m = members[name] else { throw DatasetError(file: path, problem: "has no array '\(SafeLine.clean(name, limit: 40))' (it holds \(listedNames))") }
        let file = "\(path)[\(SafeLine.clean(name, limit: 40))]"
        func fail(_ problem: String) -> DatasetError { DatasetError(file: file, problem: problem) }
        let s = data.startIndex
        func u16(_ at: Int) -> Int { Int(data[s + at]) | Int(data[s + at + 1]) << 8 }
        guard u16(m.offset) | u16(m.offset + 2) << 16 == 0x0403_4B50 else { throw fail("bad local header") }
        let start = m.offset + 30 + u16(m.offset + 26) + u16(m.offset + 28)
        guard start >= 0, start + m.compressed <= data.count else { throw fail("member data runs past the end of the archive") }
        let stored = data[(s + start)..<(s + start + m.compressed)]
        let member: Data
        if m.method == 0 {
            guard m.compressed == m.size else { throw fail("stored member sizes disagree") }
            member = Data(stored)
        } else {
            member = try Self.inflate(stored, size: m.size, file: file)
        }
        let crc = member.withUnsafeBytes { raw in
            raw.count == 0 ? 0 : UInt32(crc32(0, raw.bindMemory(to: UInt8.self).baseAddress, uInt(raw.count)))
        }
        guard crc == m.crc else { throw fail("CRC-32 mismatch (the archive is damaged)") }
        return try NumPyArray.parse(member, file: file)
    }

    /// Raw deflate (ZIP's method 8) of exactly `size` bytes.
    static func inflate(_ input: Data, size: Int, file: String) throws -> Data {
        var out = Data(count: size)
        var stream = z_stream()
        guard inflateInit2_(&stream, -15, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw DatasetError(file: file, problem: "zlib failed to start")
        }
        defer { inflateEnd(&stream) }
        var input = input
        let status: Int32 = input.withUnsafeMutableBytes { inp in
            out.withUnsafeMutableBytes { outp in
                stream.next_in = inp.bindMemory(to: Bytef.self).baseAddress
                stream.avail_in = uInt(inp.count)
                stream.next_out = outp.bindMemory(to: Bytef.self).baseAddress
                stream.avail_out = uInt(outp.count)
                return CZlib.inflate(&stream, Z_FINISH)
            }
        }
        guard status == Z_STREAM_END, Int(stream.total_out) == size else {
            throw DatasetError(file: file, problem: "corrupt deflated member (zlib status \(status), \(stream.total_out) of \(size) bytes)")
        }
        return out
    }
}

import Foundation

/// A file that is not the protobuf it claims to be: where, and what is wrong.
public struct ProtobufError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public var description: String { message }
}

/// The protobuf wire format, read (https://protobuf.dev/programming-guides/encoding/): a
/// message is a sequence of fields, each a key (field number << 3 | wire type) and a value —
/// a varint, 8 or 4 little-endian bytes, or a length and that many bytes (a string, bytes, a
/// nested message or a packed repeated field). No Swift protobuf package is used: this reader is
/// the one hand-written parser the project allows, and every length and offset it reads is
/// checked against the bytes that remain before it is used. Byte ranges stay ranges into the
/// file's `Data` (weights are not copied until a tensor is made of them).
struct WireReader {
    enum WireType: Int {
        case varint = 0, fixed64 = 1, lengthDelimited = 2, fixed32 = 5
    }

    let data: Data
    private(set) var offset: Int
    let end: Int
    /// How deeply messages nest here (a hostile file could nest graphs until the stack ends).
    let depth: Int
    static let maxDepth = 64

    init(_ data: Data, range: Range<Int>? = nil, depth: Int = 0) {
        self.data = data
        let r = range ?? data.startIndex..<data.endIndex
        offset = r.lowerBound
        end = r.upperBound
        self.depth = depth
    }

    var isAtEnd: Bool { offset >= end }

    private func fail(_ what: String) -> ProtobufError {
        ProtobufError(message: "\(what) at byte \(offset - data.startIndex)")
    }

    /// A base-128 varint of at most 10 bytes.
    mutating func varint() throws -> UInt64 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard offset < end else { throw fail("truncated varint") }
            let byte = data[offset]
            offset += 1
            guard shift < 64, shift < 63 || byte <= 1 else { throw fail("varint longer than 64 bits") }
            value |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return value }
            shift += 7
        }
    }

    /// The next field's number and wire type; nil at the end of the message.
    mutating func field() throws -> (number: Int, wire: WireType)? {
        guard !isAtEnd else { return nil }
        let key = try varint()
        let number = key >> 3
        guard number >= 1, number <= 536_870_911 else { throw fail("field number \(number)") }
        guard let wire = WireType(rawValue: Int(key & 7)) else { throw fail("wire type \(key & 7) (groups are not used by ONNX)") }
        return (Int(number), wire)
    }

    /// The byte range of a length-delimited value.
    mutating func bytes() throws -> Range<Int> {
        let length = try varint()
        guard length <= UInt64(end - offset) else { throw fail("length \(length) beyond the \(end - offset) bytes left") }
        let range = offset..<(offset + Int(length))
        offset += Int(length)
        return range
    }

    mutating func string() throws -> String { String(decoding: data[try bytes()], as: UTF8.self) }

    /// A reader over a nested message.
    mutating func message() throws -> WireReader {
        guard depth < WireReader.maxDepth else { throw fail("messages nested more than \(WireReader.maxDepth) deep") }
        return WireReader(data, range: try bytes(), depth: depth + 1)
    }

    mutating func fixed32() throws -> UInt32 {
        guard end - offset >= 4 else { throw fail("truncated 32-bit value") }
        var v: UInt32 = 0
        for i in 0..<4 { v |= UInt32(data[offset + i]) << (8 * UInt32(i)) }
        offset += 4
        return v
    }

    mutating func fixed64() throws -> UInt64 {
        guard end - offset >= 8 else { throw fail("truncated 64-bit value") }
        var v: UInt64 = 0
        for i in 0..<8 { v |= UInt64(data[offset + i]) << (8 * UInt64(i)) }
        offset += 8
        return v
    }

    /// Skips a value of a field this reader does not need.
    mutating func skip(_ wire: WireType) throws {
        switch wire {
        case .varint: _ = try varint()
        case .fixed64: _ = try fixed64()
        case .fixed32: _ = try fixed32()
        case .lengthDelimited: _ = try bytes()
        }
    }

    /// An int64 field (two's complement in a varint).
    mutating func int64() throws -> Int64 { Int64(bitPattern: try varint()) }

    /// A 32-bit float field.
    mutating func float() throws -> Float { Float(bitPattern: try fixed32()) }

    // MARK: - Repeated scalars, packed or one per field

    /// Appends a repeated int64 field's values: a packed run, or one value.
    mutating func int64s(_ wire: WireType, into out: inout [Int64]) throws {
        guard wire == .lengthDelimited else { out.append(try int64()); return }
        var packed = WireReader(data, range: try bytes(), depth: depth)
        while !packed.isAtEnd { out.append(try packed.int64()) }
    }

    /// Appends a repeated float field's values: a packed run, or one value.
    mutating func floats(_ wire: WireType, into out: inout [Float]) throws {
        guard wire == .lengthDelimited else { out.append(try float()); return }
        let range = try bytes()
        guard range.count % 4 == 0 else { throw fail("packed floats of \(range.count) bytes") }
        var packed = WireReader(data, range: range, depth: depth)
        out.reserveCapacity(out.count + range.count / 4)
        while !packed.isAtEnd { out.append(try packed.float()) }
    }

    /// Appends a repeated double field's values.
    mutating func doubles(_ wire: WireType, into out: inout [Double]) throws {
        guard wire == .lengthDelimited else { out.append(Double(bitPattern: try fixed64())); return }
        let range = try bytes()
        guard range.count % 8 == 0 else { throw fail("packed doubles of \(range.count) bytes") }
        var packed = WireReader(data, range: range, depth: depth)
        while !packed.isAtEnd { out.append(Double(bitPattern: try packed.fixed64())) }
    }
}

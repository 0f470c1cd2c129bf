import Foundation

/// Seeded mutations of a file: flipped bytes, header digits replaced by extreme numbers, cuts,
/// repeats and splices, a few at a time (the usual moves of a mutation fuzzer).
public struct FuzzMutator {
    public var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    public mutating func below(_ n: Int) -> Int { n <= 0 ? 0 : Int(next() % UInt64(n)) }

    /// One mutant of `data`; `headerRange` is where text worth mutating as text lies.
    public mutating func mutate(_ data: Data, headerRange: Range<Int>) -> Data {
        var bytes = [UInt8](data)
        let numbers = ["-1", "0", "4294967296", "9223372036854775807", "1e308", "-9223372036854775808", "2.5", "18446744073709551615", "null", "\"x\""]
        for _ in 0...below(3) {
            guard !bytes.isEmpty else { break }
            switch below(7) {
            case 0: bytes[below(bytes.count)] ^= UInt8(1 << below(8))
            case 1: bytes[below(bytes.count)] = UInt8(truncatingIfNeeded: next())
            case 2:  // a header number (a shape, an offset) replaced by an extreme one
                let header = Array(headerRange.clamped(to: 0..<bytes.count))
                let digits = header.filter { (0x30...0x39).contains(bytes[$0]) }
                guard let start = digits.isEmpty ? nil : digits[below(digits.count)] else { continue }
                var end = start
                while end < bytes.count, (0x30...0x39).contains(bytes[end]) { end += 1 }
                bytes.replaceSubrange(start..<end, with: Array(numbers[below(numbers.count)].utf8))
            case 3: bytes.removeLast(below(bytes.count) + 1)
            case 4:  // a piece repeated
                let start = below(bytes.count), length = below(min(64, bytes.count - start)) + 1
                bytes.insert(contentsOf: bytes[start..<(start + length)], at: below(bytes.count))
            case 5:  // the length prefix changed
                let value = [UInt64(0), 1, UInt64(bytes.count), UInt64(bytes.count) * 2, UInt64.max, next()][below(6)]
                for i in 0..<min(8, bytes.count) { bytes[i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
            default:  // a piece cut out
                let start = below(bytes.count), length = below(min(32, bytes.count - start)) + 1
                bytes.removeSubrange(start..<(start + length))
            }
        }
        return Data(bytes)
    }
}

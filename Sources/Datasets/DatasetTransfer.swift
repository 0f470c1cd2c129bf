import Foundation

/// Both splits of a decoded dataset as one byte string, for a rank that cannot read the files:
/// rank 0 sends what it decoded instead of each node needing a copy of the image folder.
/// Decoding checks every count against the bytes present (a message is input like any other).
public enum DatasetTransfer {
    private static let magic = Array("LSDATA1\n".utf8)

    public static func encode(train: Dataset, test: Dataset) -> Data {
        var out = Data(magic)
        for split in [train, test] {
            func put(_ v: Int) { withUnsafeBytes(of: UInt64(v).littleEndian) { out.append(contentsOf: $0) } }
            put(split.shape.count)
            split.shape.forEach(put)
            put(split.classes)
            put(split.count)
            split.labels.withUnsafeBytes { out.append(contentsOf: $0) }
            switch split.pixels {
            case .values(let v):
                put(0)
                v.withUnsafeBytes { out.append(contentsOf: $0) }
            case .bytes(let b, let tables):
                put(1)
                for t in tables { t.withUnsafeBytes { out.append(contentsOf: $0) } }
                b.withUnsafeBytes { out.append(contentsOf: $0) }
            }
        }
        return out
    }

    public static func decode(_ data: Data, name: String) throws -> (train: Dataset, test: Dataset) {
        func fail(_ problem: String) -> DatasetError { DatasetError(file: "dataset '\(name)' from rank 0", problem: problem) }
        var offset = data.startIndex
        func take(_ n: Int) throws -> Data {
            guard n >= 0, n <= data.endIndex - offset else { throw fail("truncated") }
            defer { offset += n }
            return data[offset..<(offset + n)]
        }
        func int(_ limit: Int) throws -> Int {
            let v = try take(8).withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
            guard v <= UInt64(limit) else { throw fail("a count of \(v) exceeds \(limit)") }
            return Int(v)
        }
        /// `n` values of `T`, copied (the bytes need not be aligned for `T`).
        func values<T: Numeric>(_ n: Int, as: T.Type) throws -> [T] {
            let bytes = try take(n * MemoryLayout<T>.size)
            var out = [T](repeating: 0, count: n)
            out.withUnsafeMutableBytes { dst in bytes.withUnsafeBytes { dst.copyMemory(from: $0) } }
            return out
        }
        guard try take(magic.count) == Data(magic) else { throw fail("not a dataset transfer") }
        var splits: [Dataset] = []
        for _ in 0..<2 {
            guard try int(8) == 3 else { throw fail("image shape is not (channels, height, width)") }
            let shape = [try int(64), try int(ImageCodec.maxSide), try int(ImageCodec.maxSide)]
            let classes = try int(100_000), count = try int(1 << 31)
            let size = shape.reduce(1, *)
            guard size > 0, count > 0, classes > 0 else { throw fail("empty split") }
            let labels = try values(count, as: Int32.self)
            guard labels.allSatisfy({ $0 >= 0 && Int($0) < classes }) else { throw fail("a label outside 0..<\(classes)") }
            let (total, overflow) = count.multipliedReportingOverflow(by: size)
            guard !overflow else { throw fail("too many pixels") }
            switch try int(1) {
            case 0:
                let floats = try values(total, as: Float.self)
                splits.append(Dataset(name: name, images: floats, labels: labels, shape: shape, classes: classes))
            default:
                let tables = try (0..<shape[0]).map { _ in try values(256, as: Float.self) }
                let bytes = [UInt8](try take(total))
                splits.append(Dataset(name: name, pixels: .bytes(bytes, tables: tables), labels: labels, shape: shape, classes: classes))
            }
        }
        guard offset == data.endIndex else { throw fail("\(data.endIndex - offset) trailing bytes") }
        return (splits[0], splits[1])
    }
}

import CZlib
import Foundation

/// Reader for IDX files (the MNIST family's format), raw or gzip-compressed: a 4-byte magic
/// (0, 0, type, rank), `rank` big-endian UInt32 dimensions, then the values. Only unsigned bytes
/// (type 0x08) occur in image datasets.
public enum IDX {
    /// The dimensions and raw bytes of an unsigned-byte IDX file.
    public static func read(_ path: String) throws -> (dimensions: [Int], bytes: [UInt8]) {
        let data = try readMaybeGzip(path)
        func fail(_ problem: String) -> DatasetError { DatasetError(file: path, problem: problem) }
        guard data.count >= 4 else { throw fail("too short for an IDX header (\(data.count) bytes)") }
        guard data[0] == 0, data[1] == 0 else {
            throw fail(String(format: "bad IDX magic %02x %02x %02x %02x (expected 00 00 08 NN)", data[0], data[1], data[2], data[3]))
        }
        guard data[2] == 0x08 else {
            throw fail(String(format: "IDX element type 0x%02x is not unsigned byte (0x08)", data[2]))
        }
        let rank = Int(data[3])
        guard rank >= 1, rank <= 4 else { throw fail("IDX rank \(rank) is not 1...4") }
        let headerSize = 4 + 4 * rank
        guard data.count >= headerSize else { throw fail("truncated IDX header (\(data.count) of \(headerSize) bytes)") }
        let dims = (0..<rank).map { d -> Int in
            let o = 4 + 4 * d
            return Int(data[o]) << 24 | Int(data[o + 1]) << 16 | Int(data[o + 2]) << 8 | Int(data[o + 3])
        }
        let actual = data.count - headerSize
        var expected = 1
        for d in dims {
            let (product, overflow) = expected.multipliedReportingOverflow(by: d)
            guard !overflow else {
                throw fail("header promises \(dims.map(String.init).joined(separator: "x")) values, more than the file's \(actual) bytes of data")
            }
            expected = product
        }
        guard actual == expected else {
            throw fail(actual < expected
                ? "truncated: header promises \(dims.map(String.init).joined(separator: "x")) = \(expected) bytes, file holds \(actual)"
                : "\(actual - expected) trailing bytes after \(expected) bytes of data")
        }
        return (dims, Array(data[headerSize...]))
    }

    /// Writes an unsigned-byte IDX file (gzip-compressed if the name ends in .gz); tests and
    /// dataset transforms use it.
    public static func write(_ path: String, dimensions: [Int], bytes: [UInt8]) throws {
        var data: [UInt8] = [0, 0, 0x08, UInt8(dimensions.count)]
        for d in dimensions { data += [UInt8(d >> 24 & 0xFF), UInt8(d >> 16 & 0xFF), UInt8(d >> 8 & 0xFF), UInt8(d & 0xFF)] }
        data += bytes
        if path.hasSuffix(".gz") {
            guard let gz = gzopen(path, "wb") else { throw DatasetError(file: path, problem: "cannot create") }
            let written = data.withUnsafeBytes { gzwrite(gz, $0.baseAddress, UInt32($0.count)) }
            gzclose(gz)
            guard written == data.count else { throw DatasetError(file: path, problem: "short gzip write") }
        } else {
            try Data(data).write(to: URL(fileURLWithPath: path))
        }
    }

    /// The whole file, inflated if it is gzip (zlib reads plain files through unchanged).
    static func readMaybeGzip(_ path: String) throws -> [UInt8] {
        guard FileManager.default.fileExists(atPath: path) else {
            throw DatasetError(file: path, problem: "no such file")
        }
        guard let gz = gzopen(path, "rb") else { throw DatasetError(file: path, problem: "cannot open") }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = chunk.withUnsafeMutableBytes { gzread(gz, $0.baseAddress, UInt32($0.count)) }
            if n < 0 {
                var code: Int32 = 0
                let message = gzerror(gz, &code).map { String(cString: $0) } ?? "read error"
                gzclose(gz)
                throw DatasetError(file: path, problem: "corrupt gzip data (\(message))")
            }
            if n == 0 { break }
            out += chunk[0..<Int(n)]
        }
        var code: Int32 = 0
        let message = gzerror(gz, &code).map { String(cString: $0) } ?? ""
        gzclose(gz)
        if code != Z_OK && code != Z_STREAM_END {
            throw DatasetError(file: path, problem: "corrupt or truncated gzip data (\(message))")
        }
        return out
    }
}

extension IDX {
    /// Loads an image file and its label file into a dataset, checking they agree and that every
    /// label is one of `classes` (the MNIST family has 10).
    public static func loadPair(images: String, labels: String, name: String, classes: Int = 10) throws -> Dataset {
        let (idims, pixels) = try read(images)
        let (ldims, labelBytes) = try read(labels)
        guard idims.count == 3 || idims.count == 4 else {
            throw DatasetError(file: images, problem: "image file has rank \(idims.count); expected N x H x W (or N x H x W x C)")
        }
        guard ldims.count == 1 else { throw DatasetError(file: labels, problem: "label file has rank \(ldims.count); expected 1") }
        guard ldims[0] == idims[0] else {
            throw DatasetError(file: labels, problem: "\(ldims[0]) labels for \(idims[0]) images in \(images)")
        }
        if let bad = labelBytes.firstIndex(where: { Int($0) >= classes }) {
            throw DatasetError(file: labels, problem: "label \(labelBytes[bad]) of example \(bad) is outside 0...\(classes - 1) (this dataset has \(classes) classes)")
        }
        guard idims[0] > 0 else { throw DatasetError(file: images, problem: "holds no images") }
        let (n, h, w) = (idims[0], idims[1], idims[2])
        let c = idims.count == 4 ? idims[3] : 1
        var floats = [Float](repeating: 0, count: pixels.count)
        // IDX stores channels last; we hold NCHW.
        for i in 0..<n {
            for y in 0..<h {
                for x in 0..<w {
                    for ch in 0..<c {
                        floats[((i * c + ch) * h + y) * w + x] = Float(pixels[((i * h + y) * w + x) * c + ch]) / 255
                    }
                }
            }
        }
        return Dataset(name: name, images: floats, labels: labelBytes.map { Int32($0) }, shape: [c, h, w], classes: classes)
    }
}

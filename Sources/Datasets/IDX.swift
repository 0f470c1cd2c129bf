import CZlib
import Foundation

/// Reader for IDX files (the MNIST family's format), raw or gzip-compressed: a 4-byte magic
/// (0, 0, type, rank), `rank` big-endian UInt32 dimensions, then the values. Only unsigned bytes
/// (type 0x08) occur in image datasets.
public enum IDX {
    /// The dimensions and raw bytes of an unsigned-byte IDX file, read straight into an array of
    /// the size the header gives (no second copy of a 47 MB file while it loads).
    public static func read(_ path: String) throws -> (dimensions: [Int], bytes: [UInt8]) {
        let file = try GzipStream(path)
        defer { file.close() }
        func fail(_ problem: String) -> DatasetError { DatasetError(file: path, problem: problem) }
        let magic = try file.read(4)
        guard magic.count >= 4 else { throw fail("too short for an IDX header (\(magic.count) bytes)") }
        guard magic[0] == 0, magic[1] == 0 else {
            throw fail(String(format: "bad IDX magic %02x %02x %02x %02x (expected 00 00 08 NN)", magic[0], magic[1], magic[2], magic[3]))
        }
        guard magic[2] == 0x08 else {
            throw fail(String(format: "IDX element type 0x%02x is not unsigned byte (0x08)", magic[2]))
        }
        let rank = Int(magic[3])
        guard rank >= 1, rank <= 4 else { throw fail("IDX rank \(rank) is not 1...4") }
        let sizes = try file.read(4 * rank)
        guard sizes.count == 4 * rank else { throw fail("truncated IDX header (\(4 + sizes.count) of \(4 + 4 * rank) bytes)") }
        let dims = (0..<rank).map { d -> Int in
            let o = 4 * d
            return Int(sizes[o]) << 24 | Int(sizes[o + 1]) << 16 | Int(sizes[o + 2]) << 8 | Int(sizes[o + 3])
        }
        let promised = dims.map(String.init).joined(separator: "x")
        var expected = 1
        for d in dims {
            let (product, overflow) = expected.multipliedReportingOverflow(by: d)
            guard !overflow else { throw fail("header promises \(promised) values, more than the file's \(try file.skipToEnd()) bytes of data") }
            expected = product
        }
        // The header's count is checked against what the file can hold before it is allocated:
        // its size, or for gzip data deflate's largest ratio (1032:1) times it.
        guard expected <= file.mostBytesItCanHold else {
            throw fail("header promises \(promised) = \(expected) values, more than this \(file.byteCount)-byte file can hold")
        }
        var bytes = [UInt8](repeating: 0, count: expected)
        let got = try bytes.withUnsafeMutableBytes { try file.read(into: $0) }
        guard got == expected else {
            try file.checkIntact()
            throw fail("truncated: header promises \(promised) = \(expected) bytes, file holds \(got)")
        }
        let extra = try file.skipToEnd()
        guard extra == 0 else { throw fail("\(extra) trailing bytes after \(expected) bytes of data") }
        return (dims, bytes)
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
}

/// A file read through zlib, inflated if it is gzip (zlib reads plain files through unchanged);
/// errors name the file.
final class GzipStream {
    private let path: String
    private let handle: gzFile

    /// The file's size on disk, and whether it starts with gzip's magic.
    let byteCount: Int
    private let compressed: Bool

    init(_ path: String) throws {
        var info = stat()
        guard stat(path, &info) == 0 else { throw DatasetError(file: path, problem: "no such file") }
        guard info.st_mode & S_IFMT == S_IFREG else { throw DatasetError(file: path, problem: "is not a regular file") }
        var head: [UInt8] = []
        if let h = FileHandle(forReadingAtPath: path) {
            head = [UInt8]((try? h.read(upToCount: 2)) ?? Data())
            try? h.close()
        }
        guard let handle = gzopen(path, "rb") else { throw DatasetError(file: path, problem: "cannot open") }
        self.path = path
        self.handle = handle
        byteCount = Int(info.st_size)
        compressed = head == [0x1F, 0x8B]
    }

    /// An upper bound on the bytes a read can return (more is a header's lie).
    var mostBytesItCanHold: Int { compressed ? byteCount.multipliedReportingOverflow(by: 1032).partialValue + 1024 : byteCount }

    func close() { gzclose(handle) }

    /// Fills `buffer` as far as the file goes; the number of bytes read.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        var done = 0
        while done < buffer.count {
            let n = gzread(handle, buffer.baseAddress! + done, UInt32(min(buffer.count - done, 1 << 30)))
            if n < 0 { throw corrupt("corrupt gzip data") }
            if n == 0 { break }
            done += Int(n)
        }
        return done
    }

    /// Up to `count` bytes.
    func read(_ count: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        let n = try out.withUnsafeMutableBytes { try read(into: $0) }
        return Array(out.prefix(n))
    }

    /// Reads what is left; its length.
    func skipToEnd() throws -> Int {
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        var total = 0
        while true {
            let n = try chunk.withUnsafeMutableBytes { try read(into: $0) }
            total += n
            if n < chunk.count { break }
        }
        try checkIntact()
        return total
    }

    /// Throws if zlib met a damaged or cut gzip stream.
    func checkIntact() throws {
        var code: Int32 = 0
        _ = gzerror(handle, &code)
        if code != Z_OK && code != Z_STREAM_END { throw corrupt("corrupt or truncated gzip data") }
    }

    private func corrupt(_ what: String) -> DatasetError {
        var code: Int32 = 0
        let message = gzerror(handle, &code).map { String(cString: $0) } ?? "read error"
        return DatasetError(file: path, problem: "\(what) (\(message))")
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
        return Dataset(name: name, bytes: planar(pixels, count: n, height: h, width: w, channels: c),
                       labels: labelBytes.map { Int32($0) }, shape: [c, h, w], classes: classes)
    }

    /// Pixel bytes stored channels last (IDX's order) in NCHW order.
    static func planar<T: Numeric>(_ pixels: [T], count n: Int, height h: Int, width w: Int, channels c: Int) -> [T] {
        guard c > 1 else { return pixels }   // one channel: the same order
        var out = [T](repeating: 0, count: pixels.count)
        for i in 0..<n {
            for y in 0..<h {
                for x in 0..<w {
                    for ch in 0..<c { out[((i * c + ch) * h + y) * w + x] = pixels[((i * h + y) * w + x) * c + ch] }
                }
            }
        }
        return out
    }
}

import CImageCodecs
import Foundation

/// PNG and JPEG files decoded by Debian's libpng and libjpeg-turbo (`CImageCodecs`), 8 bits per
/// sample, channels last. Errors name the file.
public enum ImageCodec {
    /// The largest side, and the most pixels, an image may have: enough for any photograph
    /// dataset, small enough that a hostile header cannot make a worker allocate gigabytes.
    public static let maxSide = 16_384
    public static let maxPixels = 40_000_000

    public enum Format: Sendable {
        case png, jpeg

        var code: image_format { self == .png ? IMAGE_PNG : IMAGE_JPEG }
    }

    /// A file's header: its size and whether it is colour.
    public struct Header: Equatable, Sendable {
        public let width: Int
        public let height: Int
        public let channels: Int
    }

    /// The format `bytes` (a file's first 8 bytes or more) announce; nil for anything else.
    public static func sniff(_ bytes: [UInt8]) -> Format? {
        switch bytes.withUnsafeBufferPointer({ image_sniff($0.baseAddress, $0.count) }) {
        case Int32(IMAGE_PNG.rawValue): return .png
        case Int32(IMAGE_JPEG.rawValue): return .jpeg
        default: return nil
        }
    }

    /// Reads a file's header only, and checks its size against the limits.
    public static func header(_ path: String, format: Format) throws -> Header {
        var info = image_info()
        guard image_read_info(path, format.code, &info) == 0 else { throw failure(path, format, &info) }
        let header = Header(width: Int(info.width), height: Int(info.height), channels: Int(info.channels))
        guard header.width >= 1, header.height >= 1 else {
            throw DatasetError(file: path, problem: "image is \(header.width) x \(header.height) pixels")
        }
        guard header.width <= maxSide, header.height <= maxSide, header.width * header.height <= maxPixels else {
            throw DatasetError(file: path, problem: "image is \(header.width) x \(header.height) pixels; layersweep reads images of up to \(maxSide) pixels a side and \(maxPixels / 1_000_000) megapixels")
        }
        return header
    }

    /// Decodes a file as `channels` (1 or 3) channels into height x width x channels bytes.
    public static func decode(_ path: String, format: Format, channels: Int, expected: Header) throws -> [UInt8] {
        let count = expected.width * expected.height * channels
        var info = image_info()
        var out = [UInt8](repeating: 0, count: count)
        let status = out.withUnsafeMutableBufferPointer {
            image_decode(path, format.code, Int32(channels), maxPixels, $0.baseAddress, $0.count, &info)
        }
        guard status == 0 else { throw failure(path, format, &info) }
        guard Int(info.width) == expected.width, Int(info.height) == expected.height else {
            throw DatasetError(file: path, problem: "changed while it was read (\(expected.width) x \(expected.height), then \(info.width) x \(info.height))")
        }
        return out
    }

    private static func failure(_ path: String, _ format: Format, _ info: inout image_info) -> DatasetError {
        let message = withUnsafeBytes(of: &info.error) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
        let kind = format == .png ? "PNG" : "JPEG"
        return DatasetError(file: path, problem: "corrupt or truncated \(kind): \(SafeLine.clean(message))")
    }
}

/// Text from a file or a library made fit for one line of a terminal.
enum SafeLine {
    static func clean(_ text: String, limit: Int = 160) -> String {
        let visible = String(String.UnicodeScalarView(text.unicodeScalars.map { $0.properties.generalCategory == .control ? " " : $0 }))
        return visible.count > limit ? String(visible.prefix(limit)) + "…" : visible
    }
}

import Foundation

/// Reader for the CIFAR-100 binary version: records of a coarse label byte (20 superclasses), a
/// fine label byte (100 classes) and 3072 pixel bytes, in `train.bin` and `test.bin`.
public enum CIFAR100 {
    public static let recordSize = 2 + 3 * 32 * 32

    /// Which of the two labels a record's class is.
    public enum Labels: String, Codable, Sendable, CaseIterable {
        case fine, coarse

        public var classes: Int { self == .fine ? 100 : 20 }
    }

    /// Reads one file.
    public static func readFile(_ path: String, labels which: Labels) throws -> (pixels: [UInt8], labels: [Int32]) {
        try CIFAR10.readRecords(path, labelBytes: 2, format: "CIFAR-100") { labels, i in
            let (coarse, fine) = (labels[0], labels[1])
            guard coarse < 20, fine < 100 else {
                throw DatasetError(file: path, problem: "record \(i) has labels \(coarse)/\(fine); CIFAR-100 coarse labels are 0...19, fine 0...99")
            }
            return Int32(which == .fine ? fine : coarse)
        }
    }

    /// Loads `train.bin` and `test.bin` from `directory` (or its `cifar-100-binary` folder).
    public static func load(directory: String, name: String, labels: Labels) throws -> (train: Dataset, test: Dataset) {
        var dir = directory
        let nested = (directory as NSString).appendingPathComponent("cifar-100-binary")
        if FileManager.default.fileExists(atPath: nested) { dir = nested }
        func split(_ file: String) throws -> Dataset {
            let (pixels, l) = try readFile((dir as NSString).appendingPathComponent(file), labels: labels)
            return Dataset(name: name, bytes: pixels, labels: l, shape: [3, 32, 32], classes: labels.classes)
        }
        return (try split("train.bin"), try split("test.bin"))
    }

    /// Writes a file of records from NCHW bytes (for tests).
    public static func writeFile(_ path: String, pixels: [UInt8], coarse: [UInt8], fine: [UInt8]) throws {
        var bytes = [UInt8](); bytes.reserveCapacity(fine.count * recordSize)
        for i in fine.indices {
            bytes += [coarse[i], fine[i]]
            bytes += pixels[(i * (recordSize - 2))..<((i + 1) * (recordSize - 2))]
        }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }
}

import Foundation

/// Reader for the CIFAR-10 binary version: records of 1 label byte and 3072 pixel bytes
/// (1024 red, 1024 green, 1024 blue, row-major 32x32), in `data_batch_1..5.bin` and `test_batch.bin`.
public enum CIFAR10 {
    public static let recordSize = 1 + 3 * 32 * 32
    public static let trainFiles = (1...5).map { "data_batch_\($0).bin" }
    public static let testFile = "test_batch.bin"

    /// Reads one batch file.
    public static func readBatch(_ path: String) throws -> (pixels: [UInt8], labels: [Int32]) {
        try readRecords(path, labelBytes: 1, format: "CIFAR-10") { labels, i in
            guard labels[0] < 10 else {
                throw DatasetError(file: path, problem: "record \(i) has label \(labels[0]); CIFAR-10 labels are 0...9")
            }
            return Int32(labels[0])
        }
    }

    /// The records of a CIFAR binary file: `labelBytes` label bytes (turned into a label by
    /// `label`, which checks them) then 3072 pixel bytes each.
    static func readRecords(_ path: String, labelBytes: Int, format: String,
                            label: (_ bytes: UnsafeBufferPointer<UInt8>, _ record: Int) throws -> Int32) throws -> (pixels: [UInt8], labels: [Int32]) {
        let data = try DatasetFile.read(path)
        let recordSize = labelBytes + 3 * 32 * 32
        guard data.count % recordSize == 0 else {
            throw DatasetError(file: path, problem: "\(data.count) bytes is not a whole number of \(recordSize)-byte records (truncated or not \(format) binary)")
        }
        let n = data.count / recordSize
        var pixels = [UInt8](repeating: 0, count: n * (recordSize - labelBytes))
        var labels = [Int32](repeating: 0, count: n)
        try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            let bytes = raw.bindMemory(to: UInt8.self)
            try pixels.withUnsafeMutableBufferPointer { out in
                for i in 0..<n {
                    let record = i * recordSize
                    labels[i] = try label(UnsafeBufferPointer(rebasing: bytes[record..<(record + labelBytes)]), i)
                    (out.baseAddress! + i * (recordSize - labelBytes)).update(from: bytes.baseAddress! + record + labelBytes, count: recordSize - labelBytes)
                }
            }
        }
        return (pixels, labels)
    }

    /// Loads the train batches found in `directory` (at least one) and the test batch.
    public static func load(directory: String, name: String = "cifar10") throws -> (train: Dataset, test: Dataset) {
        var dir = directory
        let nested = (directory as NSString).appendingPathComponent("cifar-10-batches-bin")
        if FileManager.default.fileExists(atPath: nested) { dir = nested }
        let present = trainFiles.map { (dir as NSString).appendingPathComponent($0) }
            .filter { FileManager.default.fileExists(atPath: $0) }
        guard !present.isEmpty else {
            throw DatasetError(file: dir, problem: "no CIFAR-10 train batches (\(trainFiles[0]) ...) here")
        }
        var pixels: [UInt8] = [], labels: [Int32] = []
        for path in present {
            let batch = try readBatch(path)
            pixels += batch.pixels
            labels += batch.labels
        }
        let test = try readBatch((dir as NSString).appendingPathComponent(testFile))
        return (Dataset(name: name, bytes: pixels, labels: labels, shape: [3, 32, 32], classes: 10),
                Dataset(name: name, bytes: test.pixels, labels: test.labels, shape: [3, 32, 32], classes: 10))
    }

    /// Writes a batch file from NCHW pixels in [0, 1] (for tests and converted datasets).
    public static func writeBatch(_ path: String, pixels: [Float], labels: [Int32]) throws {
        var bytes = [UInt8](); bytes.reserveCapacity(labels.count * recordSize)
        for (i, label) in labels.enumerated() {
            bytes.append(UInt8(label))
            for j in 0..<(recordSize - 1) {
                bytes.append(UInt8(max(0, min(255, (pixels[i * (recordSize - 1) + j] * 255).rounded()))))
            }
        }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }
}

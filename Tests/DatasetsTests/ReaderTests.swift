import CZlib
import Datasets
import Foundation
import XCTest

final class ReaderTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("datasets-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(at: dir) }

    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    /// Writes a tiny MNIST-style IDX directory: 6 train and 3 test images of 2x3 pixels.
    func writeIDXDirectory(gzip: Bool) throws -> String {
        let ext = gzip ? ".gz" : ""
        try IDX.write(path("train-images-idx3-ubyte" + ext), dimensions: [6, 2, 3], bytes: (0..<36).map { UInt8($0 * 7) })
        try IDX.write(path("train-labels-idx1-ubyte" + ext), dimensions: [6], bytes: [0, 1, 2, 0, 1, 2])
        try IDX.write(path("t10k-images-idx3-ubyte" + ext), dimensions: [3, 2, 3], bytes: (0..<18).map { UInt8(255 - $0) })
        try IDX.write(path("t10k-labels-idx1-ubyte" + ext), dimensions: [3], bytes: [2, 1, 0])
        return dir.path
    }

    func testIDXRoundTripRawAndGzip() throws {
        for gzip in [false, true] {
            let (train, test) = try DatasetCatalog.loadIDXDirectory(try writeIDXDirectory(gzip: gzip), name: "tiny")
            XCTAssertEqual(train.shape, [1, 2, 3])
            XCTAssertEqual(train.count, 6)
            XCTAssertEqual(train.labels, [0, 1, 2, 0, 1, 2])
            XCTAssertEqual(train.images[1], 7 / 255, accuracy: 1e-7)
            XCTAssertEqual(test.images[0], 1, accuracy: 1e-7)
            XCTAssertEqual(train.classes, 10, "the MNIST family's class count, not the largest label seen")
            for name in try FileManager.default.contentsOfDirectory(atPath: dir.path) { try FileManager.default.removeItem(atPath: path(name)) }
        }
    }

    func testIDXErrorsNameTheFileAndTheProblem() throws {
        try Data([0, 0, 8, 1, 0, 0, 0, 10, 1, 2, 3]).write(to: URL(fileURLWithPath: path("truncated")))
        try Data([0x1f, 0, 8, 1, 0, 0, 0, 1, 1]).write(to: URL(fileURLWithPath: path("magic")))
        try Data([0, 0, 0x0D, 1, 0, 0, 0, 1, 1, 2, 3, 4]).write(to: URL(fileURLWithPath: path("float")))
        try Data([0, 0, 8, 1, 0, 0, 0, 1, 1, 2]).write(to: URL(fileURLWithPath: path("trailing")))
        try Data([0, 0, 8]).write(to: URL(fileURLWithPath: path("short")))
        try IDX.write(path("good.gz"), dimensions: [4000], bytes: (0..<4000).map { UInt8($0 % 251) })
        let gz = try Data(contentsOf: URL(fileURLWithPath: path("good.gz")))
        try gz.prefix(gz.count / 2).write(to: URL(fileURLWithPath: path("cut.gz")))
        var corrupt = gz
        for i in 20..<min(60, corrupt.count - 8) { corrupt[i] ^= 0x5A }
        try corrupt.write(to: URL(fileURLWithPath: path("corrupt.gz")))
        let cases = [("missing", "no such file"), ("truncated", "truncated: header promises 10 = 10 bytes, file holds 3"),
                     ("magic", "bad IDX magic"), ("float", "not unsigned byte"), ("trailing", "trailing bytes"),
                     ("short", "too short"), ("cut.gz", "gzip"), ("corrupt.gz", "gzip")]
        for (name, expected) in cases {
            XCTAssertThrowsError(try IDX.read(path(name)), name) { error in
                XCTAssertEqual((error as? DatasetError)?.file, path(name))
                XCTAssertTrue("\(error)".contains(expected), "\(name): \(error)")
                XCTAssertFalse("\(error)".contains("\n"))
            }
        }
    }

    func testHugeDimensionsAreAnErrorNotATrap() throws {
        try Data([0, 0, 8, 3] + Array(repeating: 0xFF, count: 12) + [1, 2, 3]).write(to: URL(fileURLWithPath: path("huge")))
        XCTAssertThrowsError(try IDX.read(path("huge"))) {
            XCTAssertTrue("\($0)".contains("header promises 4294967295x4294967295x4294967295 values"), "\($0)")
        }
        // No overflow, but 4 GB promised by a 20-byte file (raw or gzip): refused before allocating.
        try IDX.write(path("big.gz"), dimensions: [1], bytes: [7])
        var gz = try Data(contentsOf: URL(fileURLWithPath: path("big.gz")))
        try Data([0, 0, 8, 2, 0, 0, 0xFF, 0xFF, 0, 0, 0xFF, 0xFF, 1, 2, 3, 4]).write(to: URL(fileURLWithPath: path("big")))
        try IDX.write(path("big2.gz"), dimensions: [0xFFFF, 0xFFFF], bytes: [])
        gz = try Data(contentsOf: URL(fileURLWithPath: path("big2.gz")))
        XCTAssertLessThan(gz.count, 100)
        for name in ["big", "big2.gz"] {
            XCTAssertThrowsError(try IDX.read(path(name))) {
                XCTAssertTrue("\($0)".contains("header promises 65535x65535 = 4294836225 values, more than this"), "\($0)")
            }
        }
    }

    /// A label the network has no output for would be read past the logits row.
    func testLabelsOutsideTheClassesAreRefusedAtLoad() throws {
        try IDX.write(path("images"), dimensions: [3, 2, 2], bytes: Array(repeating: 1, count: 12))
        for bad: UInt8 in [10, 200, 255] {
            try IDX.write(path("labels"), dimensions: [3], bytes: [0, bad, 1])
            XCTAssertThrowsError(try IDX.loadPair(images: path("images"), labels: path("labels"), name: "x")) {
                XCTAssertTrue("\($0)".contains("label \(bad) of example 1 is outside 0...9"), "\($0)")
            }
        }
    }

    func testEmptySplitsAreRefused() throws {
        try IDX.write(path("images"), dimensions: [0, 2, 2], bytes: [])
        try IDX.write(path("labels"), dimensions: [0], bytes: [])
        XCTAssertThrowsError(try IDX.loadPair(images: path("images"), labels: path("labels"), name: "x")) {
            XCTAssertTrue("\($0)".contains("holds no images"), "\($0)")
        }
        _ = try writeIDXDirectory(gzip: false)
        XCTAssertThrowsError(try DatasetCatalog.load("tiny", base: "tiny", derivation: Derivation(classes: [7, 8]), dataDirectory: dir.path)) {
            XCTAssertTrue("\($0)".contains("has no training images of the selected classes"), "\($0)")
        }
    }

    func testLabelAndImageCountsMustAgree() throws {
        try IDX.write(path("images"), dimensions: [3, 2, 2], bytes: Array(repeating: 1, count: 12))
        try IDX.write(path("labels"), dimensions: [2], bytes: [0, 1])
        XCTAssertThrowsError(try IDX.loadPair(images: path("images"), labels: path("labels"), name: "x")) {
            XCTAssertTrue("\($0)".contains("2 labels for 3 images"), "\($0)")
        }
    }

    func testIncompleteIDXDirectoryNamesTheMissingFile() throws {
        _ = try writeIDXDirectory(gzip: true)
        try FileManager.default.removeItem(atPath: path("t10k-labels-idx1-ubyte.gz"))
        XCTAssertThrowsError(try DatasetCatalog.loadIDXDirectory(dir.path, name: "tiny")) {
            XCTAssertTrue("\($0)".contains("t10k-labels-idx1-ubyte"), "\($0)")
        }
    }

    func testCIFAR10RoundTripAndErrors() throws {
        let pixels = (0..<(4 * 3072)).map { Float($0 % 256) / 255 }
        try CIFAR10.writeBatch(path("data_batch_1.bin"), pixels: pixels, labels: [3, 1, 4, 1])
        try CIFAR10.writeBatch(path("data_batch_2.bin"), pixels: Array(pixels.prefix(3072)), labels: [9])
        try CIFAR10.writeBatch(path("test_batch.bin"), pixels: Array(pixels.prefix(2 * 3072)), labels: [5, 9])
        let (train, test) = try CIFAR10.load(directory: dir.path)
        XCTAssertEqual(train.count, 5)
        XCTAssertEqual(train.labels, [3, 1, 4, 1, 9])
        XCTAssertEqual(train.shape, [3, 32, 32])
        XCTAssertEqual(Array(train.images.prefix(3072)), Array(pixels.prefix(3072)))
        XCTAssertEqual(test.labels, [5, 9])

        let bytes = try Data(contentsOf: URL(fileURLWithPath: path("data_batch_1.bin")))
        try bytes.dropLast(10).write(to: URL(fileURLWithPath: path("cut.bin")))
        XCTAssertThrowsError(try CIFAR10.readBatch(path("cut.bin"))) { XCTAssertTrue("\($0)".contains("not a whole number of 3073-byte records"), "\($0)") }
        var badLabel = bytes
        badLabel[3073] = 12
        try badLabel.write(to: URL(fileURLWithPath: path("label.bin")))
        XCTAssertThrowsError(try CIFAR10.readBatch(path("label.bin"))) { XCTAssertTrue("\($0)".contains("record 1 has label 12"), "\($0)") }
        try FileManager.default.removeItem(atPath: path("test_batch.bin"))
        XCTAssertThrowsError(try CIFAR10.load(directory: dir.path)) { XCTAssertTrue("\($0)".contains("test_batch.bin: no such file"), "\($0)") }
    }

    func testUnknownDatasetExplains() {
        XCTAssertThrowsError(try DatasetCatalog.load("imagenet", dataDirectory: path("nowhere"))) {
            XCTAssertTrue("\($0)".contains("dataset 'imagenet' not found"), "\($0)")
        }
    }
}

final class DatasetTests: XCTestCase {
    func testSyntheticIsDeterministicAndBalanced() {
        let a = SyntheticSpec().generate(), b = SyntheticSpec().generate()
        XCTAssertEqual(a.train.images, b.train.images)
        XCTAssertEqual(a.test.labels, b.test.labels)
        XCTAssertNotEqual(SyntheticSpec(seed: 8).generate().train.images, a.train.images)
        XCTAssertEqual(a.train.labels.filter { $0 == 2 }.count, a.train.count / 4)
    }

    func testNormalisationUsesTrainStatistics() {
        let raw = SyntheticSpec(shape: [3, 4, 4], classes: 2, trainCount: 64, testCount: 16).generate()
        let splits = DatasetSplits(rawTrain: raw.train, rawTest: raw.test)
        let stats = splits.train.channelStatistics()
        for c in 0..<3 {
            XCTAssertEqual(stats.mean[c], 0, accuracy: 1e-4)
            XCTAssertEqual(stats.std[c], 1, accuracy: 1e-3)
        }
        let expected = (raw.test.images[0] - splits.normalisation.mean[0]) / splits.normalisation.std[0]
        XCTAssertEqual(splits.test.images[0], expected, accuracy: 1e-6)
    }

    func testBatchesAreSeededPermutations() {
        let data = SyntheticSpec(trainCount: 50, testCount: 4).generate().train
        let a = data.batchIndices(batchSize: 16, shuffleSeed: 3, epoch: 0)
        XCTAssertEqual(a.map(\.count), [16, 16, 16, 2])
        XCTAssertEqual(a.flatMap { Array($0) }.sorted(), Array(0..<50))
        XCTAssertEqual(a.map { Array($0) }, data.batchIndices(batchSize: 16, shuffleSeed: 3, epoch: 0).map { Array($0) })
        XCTAssertNotEqual(a.map { Array($0) }, data.batchIndices(batchSize: 16, shuffleSeed: 3, epoch: 1).map { Array($0) })
        let (x, labels) = data.batch(a[0])
        XCTAssertEqual(x.shape, [16, 1, 12, 12])
        XCTAssertEqual(labels[0], data.labels[a[0].first!])
        XCTAssertEqual(x.data[0], data.images[a[0].first! * 144])
    }

    func testLimitsTakeThePrefix() throws {
        let splits = try DatasetCatalog.load("synthetic", trainLimit: 100, testLimit: 10)
        XCTAssertEqual(splits.train.count, 100)
        XCTAssertEqual(splits.test.count, 10)
        XCTAssertEqual(splits.train.classes, 4)
    }

    /// The real Fashion-MNIST from Debian's package, when installed (scripts/test installs it).
    func testFashionMNISTFromDebianPackage() throws {
        guard FileManager.default.fileExists(atPath: "/usr/share/datasets/fashion-mnist") else {
            throw XCTSkip("SKIPPED: dataset-fashion-mnist is not installed")
        }
        let (train, test) = try DatasetCatalog.loadRaw("fashion-mnist")
        XCTAssertEqual(train.count, 60_000)
        XCTAssertEqual(test.count, 10_000)
        XCTAssertEqual(train.shape, [1, 28, 28])
        XCTAssertEqual(train.classes, 10)
    }
}

/// Domains made from one dataset: class subsets and pixel transforms.
final class DerivationTests: XCTestCase {
    let image: [Float] = [0, 0.25, 0.5, 0.75, 1, 0.1]  // 2 x 3, one channel

    func testClassSubsetsRelabelInTheOrderGiven() throws {
        let d = Dataset(name: "d", images: [Float](repeating: 0, count: 5 * 4), labels: [0, 3, 1, 3, 2], shape: [1, 2, 2], classes: 4)
        let s = try Derivation(classes: [3, 1]).apply(to: d, name: "s")
        XCTAssertEqual(s.labels, [0, 1, 0])
        XCTAssertEqual(s.classes, 2)
        XCTAssertEqual(s.name, "s")
        XCTAssertThrowsError(try Derivation(classes: [7]).apply(to: d, name: "bad"))
    }

    func testTransformsMovePixelsWhereTheyShould() {
        let d = Dataset(name: "d", images: image, labels: [1], shape: [1, 2, 3], classes: 2)
        XCTAssertEqual(d.transformed(.invert).images.map { ($0 * 100).rounded() / 100 }, [1, 0.75, 0.5, 0.25, 0, 0.9])
        XCTAssertEqual(d.transformed(.flipHorizontal).images, [0.5, 0.25, 0, 0.1, 1, 0.75])
        XCTAssertEqual(d.transformed(.rotate180).images, [0.1, 1, 0.75, 0.5, 0.25, 0])
        // Counter-clockwise quarter turn of [[a b c] [d e f]] is [[c f] [b e] [a d]].
        let r = d.transformed(.rotate90)
        XCTAssertEqual(r.shape, [1, 3, 2])
        XCTAssertEqual(r.images, [0.5, 0.1, 0.25, 1, 0, 0.75])
        XCTAssertEqual(d.transformed(.rotate90).transformed(.rotate90).images, d.transformed(.rotate180).images)
    }

    /// A dataset kept as bytes gives, through every derivation, normalisation and batch, the
    /// values a float copy of it gives, bit for bit, at a quarter of the memory.
    func testBytesAndTheirValuesDeriveAndNormaliseToTheSameBits() throws {
        let (n, shape) = (7, [3, 4, 5])
        var state: UInt64 = 12345
        let bytes = (0..<(n * 60)).map { _ -> UInt8 in state = state &* 6364136223846793005 &+ 1442695040888963407; return UInt8(state >> 56) }
        let labels: [Int32] = [0, 1, 2, 1, 0, 2, 1]
        let stored = Dataset(name: "d", bytes: bytes, labels: labels, shape: shape, classes: 3)
        let floats = Dataset(name: "d", images: bytes.map { Float($0) / 255 }, labels: labels, shape: shape, classes: 3)
        XCTAssertEqual(stored.bytesPerImage, 60)
        XCTAssertEqual(floats.bytesPerImage, 240)
        XCTAssertEqual(stored.images, floats.images)
        for derivation in [Derivation(), Derivation(classes: [2, 1])] + ImageTransform.allCases.map({ Derivation(classes: [0, 1], transform: $0) }) {
            let (a, b) = (try derivation.apply(to: stored, name: "x"), try derivation.apply(to: floats, name: "x"))
            XCTAssertEqual(a.images, b.images, "\(derivation)")
            XCTAssertEqual(a.labels, b.labels)
            XCTAssertEqual(a.shape, b.shape)
            let (sa, sb) = (DatasetSplits(rawTrain: a, rawTest: a.prefix(2)), DatasetSplits(rawTrain: b, rawTest: b.prefix(2)))
            XCTAssertEqual(sa.normalisation, sb.normalisation, "\(derivation)")
            XCTAssertEqual(sa.train.images, sb.train.images, "\(derivation)")
            XCTAssertEqual(sa.test.images, sb.test.images, "\(derivation)")
            let picked = [a.count - 1, 0][...]
            XCTAssertEqual(sa.train.batch(picked).0.array, sb.train.batch(picked).0.array, "\(derivation)")
        }
    }
}

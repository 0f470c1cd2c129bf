@testable import Datasets
import EngineTestSupport
import Foundation
import XCTest

/// Mutants of every archive, array, image and transfer the own-data readers take: each is read
/// or refused with an error, never a crash (the suite runs again under AddressSanitizer, which
/// also watches libpng and libjpeg-turbo behind our C layer).
final class HostileDataFilesTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("hostile-data-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(at: dir) }

    var images: URL { Bundle.module.resourceURL!.appendingPathComponent("images") }

    /// Writes `mutants` mutants of `fixture` in turn and calls `read` on each; counts the refusals.
    func fuzz(_ fixture: String, mutants: Int, seed: UInt64, headerRange: Range<Int> = 0..<256, read: (String) throws -> Void) throws -> Int {
        let original = try Data(contentsOf: images.appendingPathComponent(fixture))
        var mutator = FuzzMutator(seed: seed)
        var refused = 0
        let path = dir.appendingPathComponent(fixture).path
        for _ in 0..<mutants {
            try mutator.mutate(original, headerRange: headerRange).write(to: URL(fileURLWithPath: path))
            do { try read(path) } catch let error as DatasetError {
                XCTAssertFalse(error.description.contains("\n"), error.description)
                refused += 1
            }
        }
        return refused
    }

    func testMutatedNumPyArchivesAreReadOrRefused() throws {
        var refused = 0
        for (i, name) in ["nhwc.npz", "nchw_compressed.npz", "keras.npz", "fortran_float.npz"].enumerated() {
            refused += try fuzz(name, mutants: 300, seed: UInt64(i + 1)) { path in
                _ = try NumPyDataset.load(.archive(path, images: nil, labels: nil), split: "train", name: "f", layout: nil, classes: nil)
            }
        }
        XCTAssertGreaterThan(refused, 600, "most mutants of a CRC-checked archive are refused")
    }

    func testMutatedNpyHeadersAreReadOrRefused() throws {
        let header = "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3, 2), }"
        var h = Array(header.utf8)
        while (10 + h.count + 1) % 64 != 0 { h.append(0x20) }
        h.append(0x0A)
        let npy = Data([0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(h.count), 0] + h + [UInt8](repeating: 0x3F, count: 48))
        var mutator = FuzzMutator(seed: 77)
        for _ in 0..<2000 {
            _ = try? NumPyArray.parse(mutator.mutate(npy, headerRange: 10..<(10 + h.count)), file: "f.npy")
        }
    }

    func testMutatedPNGsAndJPEGsAreDecodedOrRefused() throws {
        for (i, name) in ["grey8.png", "palette_trns.png", "interlaced.png", "rgb16.png", "rgb_q95.jpg", "progressive.jpg", "grey_q95.jpg"].enumerated() {
            let format: ImageCodec.Format = name.hasSuffix(".png") ? .png : .jpeg
            _ = try fuzz(name, mutants: 150, seed: UInt64(100 + i), headerRange: 0..<64) { path in
                let header = try ImageCodec.header(path, format: format)
                for channels in [1, 3] { _ = try ImageCodec.decode(path, format: format, channels: channels, expected: header) }
            }
        }
    }

    func testMutatedTransfersAreReadOrRefused() throws {
        let train = Dataset(name: "t", bytes: (0..<48).map { UInt8($0) }, labels: [0, 1, 2, 1], shape: [3, 2, 2], classes: 3)
        let test = Dataset(name: "t", images: (0..<24).map { Float($0) }, labels: [2, 0], shape: [3, 2, 2], classes: 3)
        let data = DatasetTransfer.encode(train: train, test: test)
        var mutator = FuzzMutator(seed: 5)
        for _ in 0..<2000 { _ = try? DatasetTransfer.decode(mutator.mutate(data, headerRange: 0..<0), name: "t") }
    }
}

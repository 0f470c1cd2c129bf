import CZlib
@testable import Datasets
import Foundation
import XCTest

/// The user's own data: image files decoded as Pillow decodes them, torchvision's Resize and
/// CenterCrop reproduced, NumPy archives in the forms NumPy writes, and one-line errors for
/// every kind of bad input.
final class OwnDataTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("owndata-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(at: dir) }

    var images: URL { Bundle.module.resourceURL!.appendingPathComponent("images") }

    // MARK: - Preprocessing against torchvision

    struct ResizeFixtures: Decodable {
        struct Source: Decodable { let mode: String; let width: Int; let height: Int; let pixels: String }
        struct Case: Decodable {
            struct Transform: Decodable { let resize: [Int]?; let center_crop: [Int]? }
            let source: Int
            let transform: Transform
            let out_width: Int
            let out_height: Int
            let out_pixels: String
        }
        let torchvision: String
        let sources: [Source]
        let cases: [Case]
    }

    func testResizeAndCenterCropMatchTorchvisionOnPILImages() throws {
        let url = Bundle.module.url(forResource: "resize_fixtures", withExtension: "json")!
        let fixtures = try JSONDecoder().decode(ResizeFixtures.self, from: Data(contentsOf: url))
        var worst = 0, differing = 0, total = 0
        for c in fixtures.cases {
            let s = fixtures.sources[c.source]
            let image = PixelImage(width: s.width, height: s.height, channels: s.mode == "L" ? 1 : 3, bytes: [UInt8](Data(base64Encoded: s.pixels)!))
            let p = Preprocessing(resize: c.transform.resize, centerCrop: c.transform.center_crop)
            let out = p.apply(image)
            let size = p.outputSize(height: s.height, width: s.width)
            XCTAssertEqual([out.width, out.height], [c.out_width, c.out_height], "\(s.mode) \(s.width)x\(s.height) \(c.transform)")
            XCTAssertEqual([size.width, size.height], [c.out_width, c.out_height])
            let expected = [UInt8](Data(base64Encoded: c.out_pixels)!)
            guard out.bytes.count == expected.count else { XCTFail("size"); continue }
            var here = 0
            for (a, b) in zip(out.bytes, expected) {
                let d = abs(Int(a) - Int(b))
                worst = max(worst, d)
                if d > 0 { differing += 1; here += 1 }
            }
            // Pillow 13 runs some two-pass resizes vertical pass first (earlier Pillows always
            // horizontal first, as here); the 8-bit rounding between passes then differs by 1.
            if c.transform.resize?.count != 2 { XCTAssertEqual(here, 0, "\(s.mode) \(s.width)x\(s.height) \(c.transform): Resize(N) / CenterCrop exact") }
            total += expected.count
        }
        print("resize/center_crop vs torchvision \(fixtures.torchvision): \(fixtures.cases.count) cases, \(differing) of \(total) values differ, largest difference \(worst)")
        XCTAssertLessThanOrEqual(worst, 1, "within one grey level of torchvision")
        XCTAssertLessThan(differing, total / 100)
    }

    // MARK: - Decoding against Pillow

    struct ImageFixtures: Decodable {
        struct File: Decodable { let mode: String; let width: Int; let height: Int; let L: String; let RGB: String }
        let pillow: String
        let libjpeg_turbo: String
        let files: [String: File]
    }

    func testEveryPNGAndJPEGVariantDecodesAsPillowDecodesIt() throws {
        let fixtures = try JSONDecoder().decode(ImageFixtures.self, from: Data(contentsOf: images.appendingPathComponent("expected.json")))
        XCTAssertGreaterThanOrEqual(fixtures.files.count, 14)
        for (name, expected) in fixtures.files.sorted(by: { $0.key < $1.key }) {
            let path = images.appendingPathComponent(name).path
            let head = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)).prefix(8))
            let format = try XCTUnwrap(ImageCodec.sniff(head), name)
            let header = try ImageCodec.header(path, format: format)
            XCTAssertEqual([header.width, header.height], [expected.width, expected.height], name)
            XCTAssertEqual(header.channels, ["L", "LA", "1", "I;16", "I;16B", "I"].contains(expected.mode) ? 1 : 3, "\(name) (\(expected.mode))")
            for (channels, pillow) in [(1, expected.L), (3, expected.RGB)] {
                let ours = try ImageCodec.decode(path, format: format, channels: channels, expected: header)
                let theirs = [UInt8](Data(base64Encoded: pillow)!)
                // 16-bit grey: Pillow's I;16 -> L / RGB conversion clips the 16-bit value at 255
                // (nearly every pixel white); layersweep keeps the high byte, as Pillow itself does
                // for 16-bit RGB. So a value Pillow leaves below 255 is below 256 here: byte 0.
                if name == "grey16.png" {
                    XCTAssertTrue(zip(ours, theirs).allSatisfy { $1 == 255 || $0 == 0 }, name)
                    XCTAssertGreaterThan(ours.max()!, 200, "the high bytes span the range")
                    continue
                }
                let differing = zip(ours, theirs).filter { $0 != $1 }.count
                XCTAssertEqual(ours.count, theirs.count, name)
                XCTAssertEqual(differing, 0, "\(name) as \(channels) channel(s): \(differing) values differ from Pillow \(fixtures.pillow) (libjpeg-turbo \(fixtures.libjpeg_turbo))")
            }
        }
    }
}

extension OwnDataTests {
    func copy(_ fixture: String, to relative: String) throws {
        let target = dir.appendingPathComponent(relative)
        try FileManager.default.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: images.appendingPathComponent(fixture), to: target)
    }

    func write(_ bytes: [UInt8], to relative: String) throws {
        let target = dir.appendingPathComponent(relative)
        try FileManager.default.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(bytes).write(to: target)
    }

    /// A grey 8-bit PNG of zeros, chunk by chunk (the tests have no encoder; zlib compresses).
    func blankPNG(width: UInt32, height: UInt32) -> [UInt8] {
        func be(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
        func chunk(_ kind: String, _ data: [UInt8]) -> [UInt8] {
            let body = Array(kind.utf8) + data
            let crc = body.withUnsafeBufferPointer { UInt32(crc32(0, $0.baseAddress, UInt32($0.count))) }
            return be(UInt32(data.count)) + body + be(crc)
        }
        let raw = [UInt8](repeating: 0, count: Int(height) * (Int(width) + 1))
        var size = compressBound(uLong(raw.count))
        var packed = [UInt8](repeating: 0, count: Int(size))
        _ = compress(&packed, &size, raw, uLong(raw.count))
        return [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + chunk("IHDR", be(width) + be(height) + [8, 0, 0, 0, 0])
            + chunk("IDAT", Array(packed.prefix(Int(size)))) + chunk("IEND", [])
    }

    func testAnImageFolderLoadsInTorchvisionsOrderWithClassesFromFolderNames() throws {
        try copy("rgb8.png", to: "train/dog/b.png")
        try copy("rgb_q95.jpg", to: "train/dog/a.jpg")
        try copy("grey8.png", to: "train/cat/nested/z.png")
        try copy("palette.png", to: "train/cat/y.png")
        try write(Array("not an image".utf8), to: "train/cat/notes.txt")
        try copy("grey8.png", to: "test/cat/t.png")
        try copy("rgb8.png", to: "test/dog/u.png")
        var warnings: [String] = []
        let (train, classes) = try ImageFolder.load(dir.appendingPathComponent("train").path, name: "mine", channels: nil,
                                                    preprocessing: Preprocessing(), warn: { warnings.append($0) })
        XCTAssertEqual(classes, ["cat", "dog"])
        XCTAssertEqual(train.labels, [0, 0, 1, 1], "class folders sorted; files before subfolders' files, each sorted")
        XCTAssertEqual(train.shape, [3, 17, 23], "colour in the folder: every image as RGB")
        XCTAssertEqual(warnings.count, 1)
        XCTAssertTrue(warnings[0].contains("skipped 1 file that is not a PNG or JPEG image") && warnings[0].contains("notes.txt"), warnings[0])
        let expected = try JSONDecoder().decode(ImageFixtures.self, from: Data(contentsOf: images.appendingPathComponent("expected.json"))).files
        // Example 0 is cat/y.png (palette), 1 cat/nested/z.png, 2 dog/a.jpg, 3 dog/b.png; planar here, interleaved there.
        let plane = 17 * 23
        for (i, file) in ["palette.png", "grey8.png", "rgb_q95.jpg", "rgb8.png"].enumerated() {
            let rgb = [UInt8](Data(base64Encoded: expected[file]!.RGB)!)
            let (x, _) = train.batch([i][...])
            for ch in 0..<3 {
                for j in [0, 100, plane - 1] { XCTAssertEqual(x.data[ch * plane + j], Float(rgb[j * 3 + ch]) / 255, "\(file) channel \(ch) pixel \(j)") }
            }
        }
        let source = DatasetSource(format: .imagefolder, train: [dir.appendingPathComponent("train").path], test: [dir.appendingPathComponent("test").path],
                                   preprocessing: Preprocessing(resize: [8], centerCrop: [8]))
        let (a, b) = try source.load(name: "mine")
        XCTAssertEqual(a.shape, [3, 8, 8])
        XCTAssertEqual(b.shape, [3, 8, 8])
        XCTAssertEqual(b.labels, [0, 1])
        let grey = DatasetSource(format: .imagefolder, train: [dir.appendingPathComponent("train").path], test: [dir.appendingPathComponent("test").path], channels: 1)
        XCTAssertEqual(try grey.load(name: "g").train.shape, [1, 17, 23], "channels: 1 turns colour into PIL's luma")
    }

    func testBadImageFoldersFailOnOneLineNamingTheFile() throws {
        func expectError(_ relative: String, _ fragment: String, file: StaticString = #filePath, line: UInt = #line) {
            let root = dir.appendingPathComponent(relative).path
            XCTAssertThrowsError(try ImageFolder.load(root, name: "x", channels: nil, preprocessing: Preprocessing(), warn: { _ in }), file: file, line: line) { error in
                let text = "\(error)"
                XCTAssertTrue(text.contains(fragment), text, file: file, line: line)
                XCTAssertFalse(text.contains("\n"), file: file, line: line)
            }
        }
        try copy("grey8.png", to: "empty/a/x.png")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("empty/b"), withIntermediateDirectories: true)
        expectError("empty", "empty/b: class folder holds no PNG or JPEG images")

        let png = [UInt8](try Data(contentsOf: images.appendingPathComponent("grey8.png")))
        var corrupt = png
        for i in 60..<min(90, corrupt.count - 12) { corrupt[i] ^= 0xA5 }
        try write(corrupt, to: "corrupt/a/x.png")
        expectError("corrupt", "corrupt/a/x.png: corrupt or truncated PNG")
        try write(Array(png.prefix(png.count / 2)), to: "truncated/a/x.png")
        expectError("truncated", "truncated/a/x.png: corrupt or truncated PNG")
        let jpeg = [UInt8](try Data(contentsOf: images.appendingPathComponent("rgb_q95.jpg")))
        try write(Array(jpeg.prefix(jpeg.count * 2 / 3)), to: "cutjpeg/a/x.jpg")
        expectError("cutjpeg", "cutjpeg/a/x.jpg: corrupt or truncated JPEG")
        try write([], to: "zero/a/x.png")
        expectError("zero", "zero/a/x.png: is empty (0 bytes)")
        try write(blankPNG(width: 100_000, height: 1), to: "wide/a/x.png")
        expectError("wide", "wide/a/x.png: image is 100000 x 1 pixels; layersweep reads images of up to 16384 pixels a side")
        try copy("grey8.png", to: "sizes/a/x.png")
        try write(blankPNG(width: 10, height: 10), to: "sizes/b/y.png")
        expectError("sizes", "sizes/b/y.png: is 10 x 10 pixels")
        expectError("sizes", "add resize: and center_crop:")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("loop/a"), withIntermediateDirectories: true)
        try copy("grey8.png", to: "loop/a/x.png")
        try FileManager.default.createSymbolicLink(atPath: dir.appendingPathComponent("loop/a/again").path, withDestinationPath: dir.appendingPathComponent("loop/a").path)
        expectError("loop", "is a symbolic link loop")
        expectError("missing", "missing: no such directory")
        try write(Array("x".utf8), to: "flat/readme.txt")
        expectError("flat", "holds no class folders")
    }

    func testNumPyArchivesInEveryFormNumPyWrites() throws {
        let pixels = (0..<120).map { UInt8(truncatingIfNeeded: $0 * 3) }
        func load(_ name: String, split: String = "train") throws -> Dataset {
            try NumPyDataset.load(.archive(images.appendingPathComponent(name).path, images: nil, labels: nil), split: split, name: "n", layout: nil, classes: nil)
        }
        for name in ["nhwc.npz", "nchw_compressed.npz", "keras.npz"] {
            let d = try load(name)
            XCTAssertEqual(d.shape, [3, 5, 2], name)
            XCTAssertEqual(d.labels, [0, 2, 1, 2], name)
            XCTAssertEqual(d.classes, 3, name)
            XCTAssertEqual(d.images, pixels.map { Float($0) / 255 }, name)
            XCTAssertEqual(d.bytesPerImage, 30, "\(name): uint8 kept as bytes")
        }
        XCTAssertEqual(try load("keras.npz", split: "test").count, 2, "Keras' x_test / y_test")
        let floats = try load("fortran_float.npz")
        XCTAssertEqual(floats.images, pixels.map { Float($0) / 255 }, "Fortran order and big-endian labels read as written")
        XCTAssertEqual(floats.labels, [0, 2, 1, 2])

        func expectError(_ files: NumPyDataset.Files, classes: Int? = nil, _ fragment: String, line: UInt = #line) {
            XCTAssertThrowsError(try NumPyDataset.load(files, split: "test", name: "n", layout: nil, classes: classes), line: line) { error in
                XCTAssertTrue("\(error)".contains(fragment), "\(error)", line: line)
                XCTAssertFalse("\(error)".contains("\n"), line: line)
            }
        }
        let bad = images.appendingPathComponent("bad_labels.npz").path
        expectError(.archive(bad, images: nil, labels: nil), classes: 3, "bad_labels.npz[y]: label 300 of example 3 is out of range (the training split's labels are 0...2)")
        expectError(.archive(images.appendingPathComponent("bad_lengths.npz").path, images: nil, labels: nil), "bad_lengths.npz[y]: 3 labels for 4 images")
        expectError(.archive(bad, images: "pixels", labels: nil), "has no array 'pixels' (it holds x, y)")
        try write([], to: "zero.npz")
        expectError(.archive(path("zero.npz"), images: nil, labels: nil), "zero.npz: is empty (0 bytes)")
        try write(Array("PK not really a zip archive at all, just text".utf8), to: "fake.npz")
        expectError(.archive(path("fake.npz"), images: nil, labels: nil), "fake.npz: not a readable .npz (ZIP) archive: no end-of-central-directory record")
        var damaged = [UInt8](try Data(contentsOf: images.appendingPathComponent("nhwc.npz")))
        damaged[200] ^= 0xFF
        try write(damaged, to: "damaged.npz")
        expectError(.archive(path("damaged.npz"), images: nil, labels: nil), "damaged.npz[")
    }

    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    func testNpyHeadersAreParsedStrictly() throws {
        func npy(_ header: String, payload: [UInt8]) -> Data {
            var h = Array(header.utf8)
            while (10 + h.count + 1) % 64 != 0 { h.append(0x20) }
            h.append(0x0A)
            return Data([0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(h.count & 0xFF), UInt8(h.count >> 8)] + h + payload)
        }
        let ok = try NumPyArray.parse(npy("{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }", payload: [5, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]), file: "a.npy")
        guard case let .integers(v) = ok.elements else { return XCTFail("integers") }
        XCTAssertEqual(v, [5, -1])
        for (header, fragment) in [("{'descr': '<U8', 'fortran_order': False, 'shape': (2,), }", "dtype '<U8'"),
                                   ("{'descr': '|O', 'fortran_order': False, 'shape': (2,), }", "dtype '|O'"),
                                   ("{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", "needs 24 bytes of data, the file holds 16"),
                                   ("{'descr': '<i8', 'fortran_order': Maybe, 'shape': (2,), }", "fortran_order is not True or False"),
                                   ("{'descr': '<i8', 'shape': (2,), }", "needs descr, fortran_order and shape"),
                                   ("{'descr': '<i8', 'fortran_order': False, 'shape': (99999999999999999,), }", "dimension too large"),
                                   ("{'descr': '<i8', 'fortran_order': False, 'shape': (2,), 'evil': 1}", "unexpected key 'evil'")] {
            XCTAssertThrowsError(try NumPyArray.parse(npy(header, payload: Array(repeating: 0, count: 16)), file: "a.npy"), header) { error in
                XCTAssertTrue("\(error)".contains(fragment), "\(error)")
            }
        }
    }

    func testNpyPairsFromTheirTwoFiles() throws {
        func npy(_ descr: String, _ shape: String, _ payload: [UInt8]) -> Data {
            var h = Array("{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shape), }".utf8)
            while (10 + h.count + 1) % 64 != 0 { h.append(0x20) }
            h.append(0x0A)
            return Data([0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(h.count), 0] + h + payload)
        }
        try npy("|u1", "(2, 2, 2, 1)", [0, 51, 102, 153, 204, 255, 1, 2]).write(to: URL(fileURLWithPath: path("x.npy")))
        try npy("<i8", "(2,)", [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).write(to: URL(fileURLWithPath: path("y.npy")))
        let source = DatasetSource(format: .npy, train: [path("x.npy"), path("y.npy")], test: [path("x.npy"), path("y.npy")])
        let (train, test) = try source.load(name: "p")
        XCTAssertEqual(train.shape, [1, 2, 2], "N x H x W x 1: channels last, inferred")
        XCTAssertEqual(train.labels, [1, 0])
        XCTAssertEqual(train.classes, 2)
        XCTAssertEqual(test.images, [0, 51, 102, 153, 204, 255, 1, 2].map { Float($0) / 255 })
    }

    func testCIFAR100FineAndCoarseLabels() throws {
        let pixels = (0..<(3 * 3072)).map { UInt8($0 % 251) }
        try CIFAR100.writeFile(path("train.bin"), pixels: pixels, coarse: [0, 19, 4], fine: [99, 0, 30])
        try CIFAR100.writeFile(path("test.bin"), pixels: Array(pixels.prefix(3072)), coarse: [2], fine: [7])
        let fine = try DatasetSource(format: .cifar100, train: [dir.path]).load(name: "c")
        XCTAssertEqual(fine.train.labels, [99, 0, 30])
        XCTAssertEqual(fine.train.classes, 100)
        XCTAssertEqual(fine.train.images.prefix(3), [0, 1, 2].map { Float($0) / 255 }[...])
        let coarse = try DatasetSource(format: .cifar100, train: [dir.path], labels: .coarse).load(name: "c")
        XCTAssertEqual(coarse.train.labels, [0, 19, 4])
        XCTAssertEqual(coarse.test.classes, 20)
        try CIFAR100.writeFile(path("test.bin"), pixels: Array(pixels.prefix(3072)), coarse: [20], fine: [7])
        XCTAssertThrowsError(try DatasetSource(format: .cifar100, train: [dir.path]).load(name: "c")) { error in
            XCTAssertTrue("\(error)".contains("test.bin: record 0 has labels 20/7"), "\(error)")
        }
    }

    func testTransferRoundTripsAndFingerprintsTellVersionsApart() throws {
        let train = Dataset(name: "t", bytes: (0..<24).map { UInt8($0 * 9) }, labels: [0, 1], shape: [3, 2, 2], classes: 2)
            .normalised(Normalisation(mean: [0.1, 0.2, 0.3], std: [0.5, 0.5, 0.5]))
        let test = Dataset(name: "t", images: (0..<12).map { Float($0) / 7 }, labels: [1], shape: [3, 2, 2], classes: 2)
        let data = DatasetTransfer.encode(train: train, test: test)
        let (a, b) = try DatasetTransfer.decode(data, name: "t")
        XCTAssertEqual(a.images, train.images)
        XCTAssertEqual(b.images, test.images)
        XCTAssertEqual(a.fingerprint.hex, train.fingerprint.hex)
        let changed = Dataset(name: "t", bytes: (0..<24).map { UInt8($0 * 9) ^ ($0 == 23 ? 1 : 0) }, labels: [0, 1], shape: [3, 2, 2], classes: 2)
            .normalised(Normalisation(mean: [0.1, 0.2, 0.3], std: [0.5, 0.5, 0.5]))
        XCTAssertNotEqual(changed.fingerprint.hex, train.fingerprint.hex, "one pixel's bit changes the fingerprint")
        for cut in [0, 8, data.count / 2, data.count - 1] {
            XCTAssertThrowsError(try DatasetTransfer.decode(data.prefix(cut), name: "t"), "cut at \(cut)")
        }
        var lying = data
        lying[8 + 8] = 200   // channels
        XCTAssertThrowsError(try DatasetTransfer.decode(lying, name: "t"))
    }
}

extension OwnDataTests {
    func testAugmentationDependsOnSeedEpochAndIndexOnly() throws {
        var data = Dataset(name: "a", bytes: (0..<(8 * 36)).map { UInt8(($0 * 7) % 256) }, labels: Array(repeating: 0, count: 8), shape: [1, 6, 6], classes: 1)
        data.augmentation = Augmentation(randomCrop: .init(size: 6, padding: 2), horizontalFlip: true)
        let (together, _) = data.trainingBatch([3, 5][...], seed: 11, epoch: 2)
        let (alone, _) = data.trainingBatch([5][...], seed: 11, epoch: 2)
        XCTAssertEqual(Array(UnsafeBufferPointer(start: together.data + 36, count: 36)), Array(UnsafeBufferPointer(start: alone.data, count: 36)),
                       "an example's crop and flip do not depend on the batch it is in (so not on ranks or gang members)")
        let (other, _) = data.trainingBatch([5][...], seed: 11, epoch: 3)
        let (plain, _) = data.batch([5][...])
        var moved = 0
        for epoch in 0..<40 {
            let (x, _) = data.trainingBatch([5][...], seed: 11, epoch: epoch)
            if Array(UnsafeBufferPointer(start: x.data, count: 36)) != Array(UnsafeBufferPointer(start: plain.data, count: 36)) { moved += 1 }
            // Every output pixel is an input pixel or the padding's value (byte 0).
            let values = Set(UnsafeBufferPointer(start: plain.data, count: 36)).union([0])
            XCTAssertTrue(UnsafeBufferPointer(start: x.data, count: 36).allSatisfy(values.contains))
        }
        XCTAssertGreaterThan(moved, 30, "most epochs crop or flip the example")
        _ = other
    }
}

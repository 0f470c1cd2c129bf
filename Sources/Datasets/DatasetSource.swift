import Foundation

/// Where a dataset's files are and how to read them: the `format:` entries of a sweep file
/// (image folders, NumPy arrays, CIFAR-100, or the built-in formats at a path of one's own),
/// with torchvision-style preprocessing. Loading gives the raw splits and their fingerprint.
public struct DatasetSource: Equatable, Sendable {
    public enum Format: String, Codable, Sendable, CaseIterable {
        case idx, cifar10, cifar100, imagefolder, npz, npy
    }

    public var format: Format
    /// A directory (idx, cifar10, cifar100), the train folder (imagefolder), an .npz, or for npy
    /// the image and label files.
    public var train: [String]
    /// The test split, as `train`; nil for formats whose directory holds both.
    public var test: [String]?
    public var labels: CIFAR100.Labels?
    public var channels: Int?
    public var layout: NumPyDataset.Layout?
    public var imagesKey: String?
    public var labelsKey: String?
    public var preprocessing: Preprocessing

    public init(format: Format, train: [String], test: [String]? = nil, labels: CIFAR100.Labels? = nil, channels: Int? = nil,
                layout: NumPyDataset.Layout? = nil, imagesKey: String? = nil, labelsKey: String? = nil,
                preprocessing: Preprocessing = Preprocessing()) {
        self.format = format
        self.train = train
        self.test = test
        self.labels = labels
        self.channels = channels
        self.layout = layout
        self.imagesKey = imagesKey
        self.labelsKey = labelsKey
        self.preprocessing = preprocessing
    }

    /// Whether one path holds both splits (a directory of a built-in format, or a Keras-style .npz).
    public var isSingleLocation: Bool { [.idx, .cifar10, .cifar100].contains(format) }

    /// Every path the source reads, for messages and availability checks.
    public var paths: [String] { train + (test ?? []) }

    /// What is wrong with the declaration, as (field, requirement) pairs.
    public var problems: [(field: String, requirement: String)] {
        var out: [(String, String)] = []
        let pathCount = format == .npy ? 2 : 1
        if train.count != pathCount { out.append(("train", format == .npy ? "lists the image and label .npy files: [x.npy, y.npy]" : "is one path")) }
        if isSingleLocation {
            if test != nil { out.append(("test", "is not used by \(format.rawValue): train: is the directory holding both splits")) }
        } else if test == nil {
            out.append(("test", "is required (the split the networks are evaluated on)"))
        } else if test!.count != pathCount {
            out.append(("test", format == .npy ? "lists the image and label .npy files: [x.npy, y.npy]" : "is one path"))
        }
        if labels != nil, format != .cifar100 { out.append(("labels", "applies to cifar100 only")) }
        if let channels, !(channels == 1 || channels == 3) { out.append(("channels", "must be 1 or 3")) }
        if channels != nil, format != .imagefolder { out.append(("channels", "applies to imagefolder only")) }
        if layout != nil, !(format == .npz || format == .npy) { out.append(("layout", "applies to npz and npy only")) }
        if imagesKey != nil || labelsKey != nil, format != .npz { out.append(("x_key", "applies to npz only")) }
        return out + preprocessing.problems
    }

    /// The raw splits, each labelled 0..<classes, preprocessed; `classes` is the larger count.
    public func load(name: String) throws -> (train: Dataset, test: Dataset) {
        let (train, test) = try loadUnprocessed(name: name)
        guard !preprocessing.isIdentity, format != .imagefolder else { return (train, test) }
        return (try train.preprocessed(preprocessing), try test.preprocessed(preprocessing))
    }

    private func loadUnprocessed(name: String) throws -> (train: Dataset, test: Dataset) {
        switch format {
        case .idx: return try DatasetCatalog.loadIDXDirectory(train[0], name: name)
        case .cifar10: return try CIFAR10.load(directory: train[0], name: name)
        case .cifar100: return try CIFAR100.load(directory: train[0], name: name, labels: labels ?? .fine)
        case .imagefolder:
            let (trainSet, classes) = try ImageFolder.load(train[0], name: name, channels: channels, preprocessing: preprocessing)
            // The test split decodes as the train split did (channels, class folders).
            let (testSet, _) = try ImageFolder.load(test![0], name: name, channels: trainSet.shape[0], preprocessing: preprocessing, classes: classes)
            guard testSet.shape == trainSet.shape else {
                throw DatasetError(file: test![0], problem: "images are \(testSet.shape[2]) x \(testSet.shape[1]), the training split's \(trainSet.shape[2]) x \(trainSet.shape[1]): add resize: and center_crop:")
            }
            return (trainSet, testSet)
        case .npz, .npy:
            func files(_ paths: [String]) -> NumPyDataset.Files {
                format == .npz ? .archive(paths[0], images: imagesKey, labels: labelsKey) : .pair(paths[0], paths[1])
            }
            var trainSet = try NumPyDataset.load(files(train), split: "train", name: name, layout: layout, classes: nil)
            var testSet = try NumPyDataset.load(files(test!), split: "test", name: name, layout: layout, classes: trainSet.classes)
            guard trainSet.shape == testSet.shape else {
                throw DatasetError(file: test![0], problem: "images are \(testSet.shape), the training split's \(trainSet.shape)")
            }
            let classes = max(trainSet.classes, testSet.classes)
            (trainSet, testSet) = (trainSet.renamed(name, classes: classes), testSet.renamed(name, classes: classes))
            return (trainSet, testSet)
        }
    }
}

extension Dataset {
    /// Every image resized and cropped as `preprocessing` says (byte images only: PIL resizes
    /// 8-bit images in 8-bit arithmetic).
    public func preprocessed(_ preprocessing: Preprocessing) throws -> Dataset {
        guard !preprocessing.isIdentity else { return self }
        guard case let .bytes(bytes, tables) = pixels else {
            throw DatasetError(file: name, problem: "resize and center_crop apply to 8-bit images; this dataset holds float values")
        }
        let (c, h, w) = (shape[0], shape[1], shape[2])
        let size = preprocessing.outputSize(height: h, width: w)
        let plane = size.height * size.width
        var out = [UInt8](repeating: 0, count: count * c * plane)
        out.withUnsafeMutableBufferPointer { dst in
            let base = dst.baseAddress!
            bytes.withUnsafeBufferPointer { src in
                let source = src.baseAddress!
                Parallel.forEach(count) { i in
                    var interleaved = [UInt8](repeating: 0, count: h * w * c)
                    for ch in 0..<c { for j in 0..<(h * w) { interleaved[j * c + ch] = source[i * c * h * w + ch * h * w + j] } }
                    let image = preprocessing.apply(PixelImage(width: w, height: h, channels: c, bytes: interleaved))
                    for ch in 0..<c { for j in 0..<plane { base[(i * c + ch) * plane + j] = image.bytes[j * c + ch] } }
                }
            }
        }
        return Dataset(name: name, pixels: .bytes(out, tables: tables), labels: labels, shape: [c, size.height, size.width], classes: classes)
    }

    /// A fingerprint of the examples (labels, shape, classes and every pixel): what a task key
    /// names, so a changed file never resumes into results of the old one.
    public var fingerprint: Fingerprint {
        var f = Fingerprint()
        f.add(shape.map(UInt64.init) + [UInt64(classes), UInt64(count)])
        labels.withUnsafeBytes { f.add($0) }
        switch pixels {
        case .values(let v): f.add([1]); v.withUnsafeBytes { f.add($0) }
        case .bytes(let b, let tables):
            f.add([2]); b.withUnsafeBytes { f.add($0) }
            for t in tables { t.withUnsafeBytes { f.add($0) } }
        }
        return f
    }
}

import TensorEngine

/// A 128-bit running hash of bytes, eight at a time (not cryptographic: it tells versions of a
/// user's own files apart).
public struct Fingerprint: Sendable {
    private var a: UInt64 = 0x9E37_79B9_7F4A_7C15
    private var b: UInt64 = 0xC2B2_AE3D_27D4_EB4F
    private var length: UInt64 = 0

    public init() {}

    private mutating func mix(_ word: UInt64) {
        a = (a ^ word) &* 0xFF51_AFD7_ED55_8CCD
        a ^= a >> 32
        b = (b &+ word) &* 0xC4CE_B9FE_1A85_EC53
        b ^= b >> 29
    }

    public mutating func add(_ words: [UInt64]) {
        for w in words { mix(w) }
        length &+= UInt64(words.count * 8)
    }

    public mutating func add(_ raw: UnsafeRawBufferPointer) {
        let words = raw.count / 8
        for i in 0..<words { mix(raw.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)) }
        var tail: UInt64 = 0
        for i in (words * 8)..<raw.count { tail |= UInt64(raw[i]) << (8 * (i - words * 8)) }
        mix(tail ^ UInt64(raw.count))
        length &+= UInt64(raw.count)
    }

    public mutating func add(_ text: String) { Array(text.utf8).withUnsafeBytes { add($0) } }

    /// 32 hex digits.
    public var hex: String {
        var x = a ^ length, y = b ^ (length &* 0x9E37_79B9)
        x = (x ^ (x >> 33)) &* 0xFF51_AFD7_ED55_8CCD; x ^= x >> 33
        y = (y ^ (y >> 31)) &* 0xC4CE_B9FE_1A85_EC53; y ^= y >> 31
        return String(format: "%016llx%016llx", x, y)
    }
}

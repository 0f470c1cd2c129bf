import TensorEngine

/// Labelled images held in memory, NCHW.
///
/// Images read from 8-bit files keep their bytes, with a table per channel that gives each byte
/// its value (raw: byte / 255; after `transformed(.invert)` and `normalised` the same arithmetic
/// applied to the table's 256 entries instead of to every pixel). A value looked up is the value
/// a float array would have held, bit for bit, at a quarter of the memory: Fashion-MNIST's
/// training split is 47 MB instead of 188, CIFAR-10's 154 MB instead of 614, on every rank.
public struct Dataset: Sendable {
    public let name: String
    public let labels: [Int32]
    /// (channels, height, width).
    public let shape: [Int]
    public let classes: Int
    let pixels: Pixels
    /// Applied to training batches (`trainingBatch`), not to evaluation.
    public var augmentation: Augmentation?

    /// N·C·H·W pixel values, or bytes and the value of each byte in each channel.
    enum Pixels: Sendable {
        case values([Float])
        case bytes([UInt8], tables: [[Float]])
    }

    public init(name: String, images: [Float], labels: [Int32], shape: [Int], classes: Int) {
        self.init(name: name, pixels: .values(images), labels: labels, shape: shape, classes: classes)
    }

    /// Images as bytes (N·C·H·W), each worth byte / 255.
    public init(name: String, bytes: [UInt8], labels: [Int32], shape: [Int], classes: Int) {
        let raw = (0..<256).map { Float($0) / 255 }
        self.init(name: name, pixels: .bytes(bytes, tables: Array(repeating: raw, count: shape[0])), labels: labels, shape: shape, classes: classes)
    }

    init(name: String, pixels: Pixels, labels: [Int32], shape: [Int], classes: Int) {
        let stored: Int
        switch pixels {
        case .values(let v): stored = v.count
        case .bytes(let b, _): stored = b.count
        }
        precondition(stored == labels.count * shape.reduce(1, *), "images do not match \(labels.count) labels of shape \(shape)")
        // Readers check labels against the class count; a label out of range would index past a logit row.
        precondition(labels.allSatisfy { $0 >= 0 && Int($0) < classes }, "a label outside 0..<\(classes)")
        self.name = name
        self.pixels = pixels
        self.labels = labels
        self.shape = shape
        self.classes = classes
    }

    public var count: Int { labels.count }

    /// Whether the images are held as 8-bit values (read from image files, IDX, CIFAR or uint8 arrays).
    public var holdsBytes: Bool { if case .bytes = pixels { return true } else { return false } }
    public var imageSize: Int { shape.reduce(1, *) }

    /// N·C·H·W pixel values, materialised (for tests and small datasets; batches read the store).
    public var images: [Float] {
        if case .values(let v) = pixels { return v }
        var out: [Float] = []
        out.reserveCapacity(count * imageSize)
        forEachPlane { _, p in out += p }
        return out
    }

    /// Bytes held per image (what the dataset costs in memory).
    public var bytesPerImage: Int {
        if case .values = pixels { return imageSize * MemoryLayout<Float>.size }
        return imageSize
    }

    /// The same examples under another name and class count.
    public func renamed(_ name: String, classes: Int? = nil) -> Dataset {
        Dataset(name: name, pixels: pixels, labels: labels, shape: shape, classes: classes ?? self.classes)
    }

    /// The first `limit` examples (all if nil or larger).
    public func prefix(_ limit: Int?) -> Dataset {
        guard let limit, limit < count else { return self }
        return subset(Array(0..<limit))
    }

    /// The examples at `indices`, in that order.
    public func subset(_ indices: [Int]) -> Dataset {
        let size = imageSize
        func gather<T>(_ all: [T]) -> [T] {
            var out = [T](); out.reserveCapacity(indices.count * size)
            for i in indices { out += all[(i * size)..<((i + 1) * size)] }
            return out
        }
        let picked: Pixels
        switch pixels {
        case .values(let v): picked = .values(gather(v))
        case .bytes(let b, let tables): picked = .bytes(gather(b), tables: tables)
        }
        return Dataset(name: name, pixels: picked, labels: indices.map { labels[$0] }, shape: shape, classes: classes)
    }

    /// Every image's pixels moved within their plane (`destination`: index in the plane -> its
    /// new index); values changed by `value` (applied to the tables of a byte store).
    func remapped(shape newShape: [Int], destination: (Int) -> Int, value: ((Float) -> Float)?) -> Dataset {
        let target = (0..<(shape[1] * shape[2])).map(destination)
        func move<T>(_ src: [T], _ zero: T) -> [T] {
            var out = [T](repeating: zero, count: src.count)
            src.withUnsafeBufferPointer { s in
                out.withUnsafeMutableBufferPointer { d in
                    for base in stride(from: 0, to: s.count, by: target.count) {
                        for (j, to) in target.enumerated() { d[base + to] = s[base + j] }
                    }
                }
            }
            return out
        }
        let moved: Pixels
        switch pixels {
        case .values(let v): moved = .values(value.map { f in move(v, 0).map(f) } ?? move(v, 0))
        case .bytes(let b, let tables): moved = .bytes(move(b, 0), tables: value.map { f in tables.map { $0.map(f) } } ?? tables)
        }
        return Dataset(name: name, pixels: moved, labels: labels, shape: newShape, classes: classes)
    }

    /// Calls `body` with each (image, channel) plane's values in order, through a buffer that
    /// holds one plane.
    private func forEachPlane(_ body: (_ channel: Int, UnsafeBufferPointer<Float>) -> Void) {
        let (c, plane) = (shape[0], shape[1] * shape[2])
        switch pixels {
        case .values(let v):
            v.withUnsafeBufferPointer { p in
                for i in 0..<count { for ch in 0..<c { body(ch, UnsafeBufferPointer(rebasing: p[((i * c + ch) * plane)..<((i * c + ch + 1) * plane)])) } }
            }
        case .bytes(let b, let tables):
            var buffer = [Float](repeating: 0, count: plane)
            b.withUnsafeBufferPointer { p in
                buffer.withUnsafeMutableBufferPointer { out in
                    for i in 0..<count {
                        for ch in 0..<c {
                            Dataset.lookUp(p.baseAddress! + (i * c + ch) * plane, count: plane, in: tables[ch], into: out.baseAddress!)
                            body(ch, UnsafeBufferPointer(out))
                        }
                    }
                }
            }
        }
    }

    /// The values of `count` bytes from `table` (256 entries).
    private static func lookUp(_ bytes: UnsafePointer<UInt8>, count: Int, in table: [Float], into out: UnsafeMutablePointer<Float>) {
        table.withUnsafeBufferPointer { t in for j in 0..<count { out[j] = t[Int(bytes[j])] } }
    }

    /// Per-channel mean and standard deviation over all examples.
    public func channelStatistics() -> Normalisation {
        let c = shape[0]
        var mean = [Double](repeating: 0, count: c), square = [Double](repeating: 0, count: c)
        forEachPlane { ch, p in
            var s: Float = 0, q: Float = 0
            for v in p { s += v; q += v * v }
            mean[ch] += Double(s); square[ch] += Double(q)
        }
        let n = Double(max(count * shape[1] * shape[2], 1))
        let m = mean.map { $0 / n }
        let std = zip(square, m).map { max(($0 / n - $1 * $1), 1e-12).squareRoot() }
        return Normalisation(mean: m.map(Float.init), std: std.map(Float.init))
    }

    /// The same data with each channel shifted and scaled.
    public func normalised(_ norm: Normalisation) -> Dataset {
        let (c, plane) = (shape[0], shape[1] * shape[2])
        let scaled = (0..<c).map { ch in (norm.mean[ch], 1 / norm.std[ch]) }
        switch pixels {
        case .values(var v):
            v.withUnsafeMutableBufferPointer { p in
                for i in 0..<count {
                    for ch in 0..<c {
                        let base = (i * c + ch) * plane
                        let (m, inv) = scaled[ch]
                        for j in 0..<plane { p[base + j] = (p[base + j] - m) * inv }
                    }
                }
            }
            return Dataset(name: name, pixels: .values(v), labels: labels, shape: shape, classes: classes)
        case .bytes(let b, let tables):
            let normalisedTables = tables.enumerated().map { ch, t in t.map { ($0 - scaled[ch].0) * scaled[ch].1 } }
            return Dataset(name: name, pixels: .bytes(b, tables: normalisedTables), labels: labels, shape: shape, classes: classes)
        }
    }

    /// Copies examples `indices` into a batch tensor (B, C, H, W) and their labels.
    public func batch(_ indices: ArraySlice<Int>) -> (Tensor, [Int32]) {
        let x = Tensor(shape: [indices.count] + shape)
        let size = imageSize
        switch pixels {
        case .values(let v):
            v.withUnsafeBufferPointer { p in
                for (row, i) in indices.enumerated() {
                    (x.data + row * size).update(from: p.baseAddress! + i * size, count: size)
                }
            }
        case .bytes(let b, let tables):
            let plane = shape[1] * shape[2]
            b.withUnsafeBufferPointer { p in
                for (row, i) in indices.enumerated() {
                    for ch in 0..<shape[0] {
                        Dataset.lookUp(p.baseAddress! + i * size + ch * plane, count: plane, in: tables[ch], into: x.data + row * size + ch * plane)
                    }
                }
            }
        }
        return (x, indices.map { labels[$0] })
    }

    /// Index batches for one epoch: shuffled by `seed` and `epoch` when a seed is given.
    public func batchIndices(batchSize: Int, shuffleSeed: UInt64?, epoch: Int) -> [ArraySlice<Int>] {
        let order: [Int]
        if let shuffleSeed {
            var rng = RandomSource(seed: shuffleSeed, stream: "shuffle/epoch\(epoch)")
            order = rng.permutation(count)
        } else {
            order = Array(0..<count)
        }
        return stride(from: 0, to: count, by: max(batchSize, 1)).map { order[$0..<min($0 + batchSize, count)] }
    }
}

/// Per-channel shift and scale, computed on the training split and applied to both splits.
public struct Normalisation: Equatable, Sendable, Codable {
    public let mean: [Float]
    public let std: [Float]

    public init(mean: [Float], std: [Float]) {
        self.mean = mean
        self.std = std
    }
}

/// A train and test split of one dataset, normalised by the train split's statistics.
public struct DatasetSplits: Sendable {
    public var train: Dataset
    public let test: Dataset
    public let normalisation: Normalisation

    /// Normalises raw splits by the train split's per-channel statistics, or by `normalisation`
    /// (a network trained elsewhere expects the inputs it was trained on).
    public init(rawTrain: Dataset, rawTest: Dataset, normalisation given: Normalisation? = nil) {
        let norm = given ?? rawTrain.channelStatistics()
        train = rawTrain.normalised(norm)
        test = rawTest.normalised(norm)
        normalisation = norm
    }
}

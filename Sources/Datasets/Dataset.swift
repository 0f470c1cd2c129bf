import TensorEngine

/// Labelled images held in memory as Float32, NCHW.
public struct Dataset: Sendable {
    public let name: String
    /// N·C·H·W pixel values.
    public private(set) var images: [Float]
    public let labels: [Int32]
    /// (channels, height, width).
    public let shape: [Int]
    public let classes: Int

    public init(name: String, images: [Float], labels: [Int32], shape: [Int], classes: Int) {
        precondition(images.count == labels.count * shape.reduce(1, *), "images do not match \(labels.count) labels of shape \(shape)")
        self.name = name
        self.images = images
        self.labels = labels
        self.shape = shape
        self.classes = classes
    }

    public var count: Int { labels.count }
    public var imageSize: Int { shape.reduce(1, *) }

    /// The first `limit` examples (all if nil or larger).
    public func prefix(_ limit: Int?) -> Dataset {
        guard let limit, limit < count else { return self }
        return Dataset(name: name, images: Array(images.prefix(limit * imageSize)),
                       labels: Array(labels.prefix(limit)), shape: shape, classes: classes)
    }

    /// The examples at `indices`, in that order.
    public func subset(_ indices: [Int]) -> Dataset {
        var out = [Float](); out.reserveCapacity(indices.count * imageSize)
        for i in indices { out += images[(i * imageSize)..<((i + 1) * imageSize)] }
        return Dataset(name: name, images: out, labels: indices.map { labels[$0] }, shape: shape, classes: classes)
    }

    /// Per-channel mean and standard deviation over all examples.
    public func channelStatistics() -> Normalisation {
        let (c, plane) = (shape[0], shape[1] * shape[2])
        var mean = [Double](repeating: 0, count: c), square = [Double](repeating: 0, count: c)
        images.withUnsafeBufferPointer { p in
            for i in 0..<count {
                for ch in 0..<c {
                    let base = (i * c + ch) * plane
                    var s: Float = 0, q: Float = 0
                    for j in 0..<plane { let v = p[base + j]; s += v; q += v * v }
                    mean[ch] += Double(s); square[ch] += Double(q)
                }
            }
        }
        let n = Double(max(count * plane, 1))
        let m = mean.map { $0 / n }
        let std = zip(square, m).map { max(($0 / n - $1 * $1), 1e-12).squareRoot() }
        return Normalisation(mean: m.map(Float.init), std: std.map(Float.init))
    }

    /// The same data with each channel shifted and scaled.
    public func normalised(_ norm: Normalisation) -> Dataset {
        var copy = self
        let (c, plane) = (shape[0], shape[1] * shape[2])
        copy.images.withUnsafeMutableBufferPointer { p in
            for i in 0..<count {
                for ch in 0..<c {
                    let base = (i * c + ch) * plane
                    let (m, inv) = (norm.mean[ch], 1 / norm.std[ch])
                    for j in 0..<plane { p[base + j] = (p[base + j] - m) * inv }
                }
            }
        }
        return copy
    }

    /// Copies examples `indices` into a batch tensor (B, C, H, W) and their labels.
    public func batch(_ indices: ArraySlice<Int>) -> (Tensor, [Int32]) {
        let x = Tensor(shape: [indices.count] + shape)
        let size = imageSize
        images.withUnsafeBufferPointer { p in
            for (row, i) in indices.enumerated() {
                (x.data + row * size).update(from: p.baseAddress! + i * size, count: size)
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
    public let train: Dataset
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

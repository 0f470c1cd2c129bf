import TensorEngine

/// torchvision's training augmentation, `RandomCrop(size, padding)` then
/// `RandomHorizontalFlip()`, drawn from the task's seed, the epoch and the example's index only.
public struct Augmentation: Codable, Equatable, Sendable {
    public struct RandomCrop: Codable, Equatable, Sendable {
        public var size: Int
        public var padding: Int

        public init(size: Int, padding: Int = 0) {
            self.size = size
            self.padding = padding
        }

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            size = try c.decode(Int.self, forKey: .size)
            padding = try c.decodeIfPresent(Int.self, forKey: .padding) ?? 0
        }
    }

    public var randomCrop: RandomCrop?
    public var horizontalFlip: Bool

    enum CodingKeys: String, CodingKey, CaseIterable {
        case randomCrop = "random_crop"
        case horizontalFlip = "horizontal_flip"
    }

    public init(randomCrop: RandomCrop? = nil, horizontalFlip: Bool = false) {
        self.randomCrop = randomCrop
        self.horizontalFlip = horizontalFlip
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        randomCrop = try c.decodeIfPresent(RandomCrop.self, forKey: .randomCrop)
        horizontalFlip = try c.decodeIfPresent(Bool.self, forKey: .horizontalFlip) ?? false
    }
}

extension Augmentation {
    /// Where example `index` is cropped from (top, left in the padded image) and whether it is
    /// flipped in `epoch`: drawn from the training's seed, the epoch and the index alone, so a
    /// gang's members, or any number of ranks, see the same images.
    func draw(seed: UInt64, epoch: Int, index: Int, height: Int, width: Int) -> (top: Int, left: Int, flip: Bool) {
        var rng = RandomSource(seed: seed, stream: "augment/epoch\(epoch)/\(index)")
        var (top, left) = (0, 0)
        if let crop = randomCrop {
            top = Int(rng.next() % UInt64(max(1, height + 2 * crop.padding - crop.size + 1)))
            left = Int(rng.next() % UInt64(max(1, width + 2 * crop.padding - crop.size + 1)))
        }
        return (top, left, horizontalFlip && rng.next() & 1 == 1)
    }
}

extension Dataset {
    /// A training batch: `batch(indices)` with the dataset's augmentation applied (a byte store
    /// pads with the value of byte 0, as torchvision pads the PIL image with black).
    public func trainingBatch(_ indices: ArraySlice<Int>, seed: UInt64, epoch: Int) -> (Tensor, [Int32]) {
        let (x, labels) = batch(indices)
        guard let augmentation, case let .bytes(_, tables) = pixels else { return (x, labels) }
        let (c, h, w) = (shape[0], shape[1], shape[2])
        let padding = augmentation.randomCrop?.padding ?? 0
        var plane = [Float](repeating: 0, count: h * w)
        for (row, i) in indices.enumerated() {
            let (top, left, flip) = augmentation.draw(seed: seed, epoch: epoch, index: i, height: h, width: w)
            for ch in 0..<c {
                let p = x.data + (row * c + ch) * h * w
                for j in 0..<(h * w) { plane[j] = p[j] }
                let fill = tables[ch][0]
                for y in 0..<h {
                    let sy = y + top - padding
                    for xx in 0..<w {
                        let sx = (flip ? w - 1 - xx : xx) + left - padding
                        p[y * w + xx] = sy >= 0 && sy < h && sx >= 0 && sx < w ? plane[sy * w + sx] : fill
                    }
                }
            }
        }
        return (x, labels)
    }
}

import Foundation
import TensorEngine

/// A deterministic synthetic image classification task for tests and benchmarks: each class
/// has a smooth random prototype; an example is its class's prototype, randomly shifted by up to
/// one pixel, scaled, plus Gaussian noise. Learnable by small CNNs and FCNs, not linearly trivial.
public struct SyntheticSpec: Equatable, Sendable {
    public var shape: [Int]
    public var classes: Int
    public var trainCount: Int
    public var testCount: Int
    public var noise: Float
    public var seed: UInt64

    public init(shape: [Int] = [1, 12, 12], classes: Int = 4, trainCount: Int = 512, testCount: Int = 256,
                noise: Float = 0.35, seed: UInt64 = 7) {
        self.shape = shape
        self.classes = classes
        self.trainCount = trainCount
        self.testCount = testCount
        self.noise = noise
        self.seed = seed
    }

    /// Generates raw (unnormalised) train and test splits.
    public func generate(name: String = "synthetic") -> (train: Dataset, test: Dataset) {
        var rng = RandomSource(seed: seed, stream: "synthetic/prototypes")
        let (c, h, w) = (shape[0], shape[1], shape[2])
        let size = c * h * w
        // Prototypes: a few random Gaussian blobs per channel, so neighbouring pixels correlate.
        var prototypes = [[Float]]()
        for _ in 0..<classes {
            var p = [Float](repeating: 0, count: size)
            for ch in 0..<c {
                for _ in 0..<3 {
                    let cy = rng.nextUniform() * Float(h), cx = rng.nextUniform() * Float(w)
                    let sigma = 1 + rng.nextUniform() * Float(max(h, w)) / 5
                    let amp = rng.nextUniform() * 2 - 1
                    for y in 0..<h {
                        for x in 0..<w {
                            let d = (Float(y) - cy) * (Float(y) - cy) + (Float(x) - cx) * (Float(x) - cx)
                            p[(ch * h + y) * w + x] += amp * exp(-d / (2 * sigma * sigma))
                        }
                    }
                }
            }
            prototypes.append(p)
        }
        func split(_ count: Int, stream: String) -> Dataset {
            var r = RandomSource(seed: seed, stream: stream)
            var images = [Float](repeating: 0, count: count * size)
            var labels = [Int32](repeating: 0, count: count)
            for i in 0..<count {
                let label = i % classes
                labels[i] = Int32(label)
                let dy = Int(r.next() % 3) - 1, dx = Int(r.next() % 3) - 1
                let scale = 0.8 + 0.4 * r.nextUniform()
                for ch in 0..<c {
                    for y in 0..<h {
                        for x in 0..<w {
                            let sy = min(max(y + dy, 0), h - 1), sx = min(max(x + dx, 0), w - 1)
                            images[i * size + (ch * h + y) * w + x] =
                                0.5 + 0.4 * scale * prototypes[label][(ch * h + sy) * w + sx] + noise * r.nextNormal()
                        }
                    }
                }
            }
            return Dataset(name: name, images: images, labels: labels, shape: shape, classes: classes)
        }
        return (split(trainCount, stream: "synthetic/train"), split(testCount, stream: "synthetic/test"))
    }
}


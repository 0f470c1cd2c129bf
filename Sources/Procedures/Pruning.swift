import Foundation
import Models
import TensorEngine

/// Magnitude pruning of a network's weights, layer by layer (Pellegrini & Biroli 2021; the
/// OpenLTH conventions): masks are 0/1 tensors shaped like the weights they cover.
public enum Pruning {
    /// The weights IMP prunes: every conv and linear unit's weight except the readout's (the
    /// last linear unit), in network order.
    public static func prunableWeights(of network: Network) -> [String] {
        let lastLinear = network.units.last { $0.kind == .linear }?.name
        return network.units.filter { ($0.kind == .conv || $0.kind == .linear) && $0.name != lastLinear }
            .map { $0.name + ".weight" }
            .filter { network.parameter($0) != nil }
    }

    /// All-ones masks for every prunable weight: the dense network.
    public static func denseMasks(of network: Network) -> [(String, Tensor)] {
        prunableWeights(of: network).map { name in
            let m = Tensor(shape: network.parameter(name)!.value.shape)
            m.fill(1)
            return (name, m)
        }
    }

    /// How many of `remaining` weights survive pruning `rate` of them (the count pruned is rounded).
    public static func survivors(pruning rate: Double, of remaining: Int) -> Int {
        remaining - Int((rate * Double(remaining)).rounded())
    }

    /// Survivor counts after rounds 1...rounds of IMP starting from `total` weights.
    public static func survivorSchedule(total: Int, rate: Double, rounds: Int) -> [Int] {
        var counts: [Int] = []
        var n = total
        for _ in 0..<rounds { n = survivors(pruning: rate, of: n); counts.append(n) }
        return counts
    }

    /// The mask keeping the `keep` largest-magnitude weights among those `mask` keeps (ties go
    /// to the lower index, so the result is deterministic). Never grows the mask.
    public static func magnitudeMask(weights: Tensor, mask: Tensor, keep: Int) -> Tensor {
        let w = weights.buffer, m = mask.buffer
        var alive = (0..<w.count).filter { m[$0] != 0 }
        precondition(keep <= alive.count, "cannot keep \(keep) of \(alive.count) surviving weights")
        alive.sort { abs(w[$0]) != abs(w[$1]) ? abs(w[$0]) > abs(w[$1]) : $0 < $1 }
        let out = Tensor(shape: mask.shape)
        for i in alive.prefix(keep) { out.data[i] = 1 }
        return out
    }

    /// Zeroes every pruned weight of `network` (called after each optimiser step while retraining).
    public static func apply(_ masks: [(String, Tensor)], to network: Network) {
        for (name, mask) in masks {
            guard let p = network.parameter(name) else { continue }
            let (w, m) = (p.value.data, mask.data)
            for i in 0..<mask.count { w[i] *= m[i] }
        }
    }

    /// Number of ones in a mask.
    public static func survivingCount(_ mask: Tensor) -> Int {
        mask.buffer.reduce(0) { $0 + ($1 != 0 ? 1 : 0) }
    }

    /// Units of each pruned fully connected layer that still carry signal: at least one surviving
    /// input and (unless the next layer is the unpruned readout) at least one surviving output.
    public static func connectedUnits(_ masks: [(String, Tensor)]) -> [(String, Int)] {
        masks.enumerated().map { i, entry in
            let (name, mask) = entry
            let (rows, cols) = (mask.shape[0], mask.count / mask.shape[0])
            var connected = 0
            for r in 0..<rows {
                var hasInput = false
                for c in 0..<cols where mask.data[r * cols + c] != 0 { hasInput = true; break }
                var hasOutput = true
                if i + 1 < masks.count, masks[i + 1].1.rank == 2, masks[i + 1].1.shape[1] == rows {
                    let next = masks[i + 1].1
                    hasOutput = (0..<next.shape[0]).contains { next.data[$0 * rows + r] != 0 }
                }
                if hasInput && hasOutput { connected += 1 }
            }
            return (name, connected)
        }
    }
}

/// How local the surviving first-layer connections are, and what they look like.
public enum Locality {
    /// 1 − the mean, over first-layer units, of the spatial spread of the unit's surviving input
    /// pixels divided by the spread expected of the same number of pixels drawn at random from
    /// the pixels any unit still uses. Spread is the mean squared distance from the centroid.
    /// 0: as spread out as random; towards 1: compact, filter-like receptive fields. Measuring
    /// against the pixels still in use (not the whole image) keeps the border pixels that every
    /// unit drops from counting as locality. Nil when no unit has two or more inputs.
    public static func score(mask: Tensor, inputShape: [Int]) -> Double? {
        let (c, h, w) = (inputShape[0], inputShape[1], inputShape[2])
        let units = mask.shape[0], plane = h * w
        precondition(mask.count == units * c * plane, "mask \(mask.shape) does not cover inputs \(inputShape)")
        let pixels = pixelSets(mask: mask, channels: c, plane: plane)
        var alive = [Bool](repeating: false, count: plane)
        for set in pixels { for p in set { alive[p] = true } }
        let population = (0..<plane).filter { alive[$0] }
        let bigN = Double(population.count)
        guard bigN >= 2 else { return nil }
        let populationSpread = spread(population, width: w)
        var ratios: [Double] = []
        for set in pixels where set.count >= 2 {
            let n = Double(set.count)
            // E[mean squared distance to the sample centroid] for n of N drawn without replacement.
            let expected = (n - 1) / n * bigN / (bigN - 1) * populationSpread
            if expected > 0 { ratios.append(spread(set, width: w) / expected) }
        }
        guard !ratios.isEmpty else { return nil }
        return 1 - ratios.reduce(0, +) / Double(ratios.count)
    }

    /// The surviving input pixels (any channel) of each unit.
    static func pixelSets(mask: Tensor, channels: Int, plane: Int) -> [[Int]] {
        (0..<mask.shape[0]).map { u in
            let row = mask.data + u * channels * plane
            return (0..<plane).filter { p in (0..<channels).contains { row[$0 * plane + p] != 0 } }
        }
    }

    /// Mean squared distance of pixel positions from their centroid.
    static func spread(_ pixels: [Int], width: Int) -> Double {
        let n = Double(pixels.count)
        var sy = 0.0, sx = 0.0, syy = 0.0, sxx = 0.0
        for p in pixels {
            let (y, x) = (Double(p / width), Double(p % width))
            sy += y; sx += x; syy += y * y; sxx += x * x
        }
        return (syy / n - (sy / n) * (sy / n)) + (sxx / n - (sx / n) * (sx / n))
    }

    /// The `count` first-layer units with the most surviving inputs, each as a bitmap of the
    /// input pixels it still sees.
    public static func mostConnected(mask: Tensor, inputShape: [Int], count: Int) -> [MaskImage] {
        let (c, h, w) = (inputShape[0], inputShape[1], inputShape[2])
        let sets = pixelSets(mask: mask, channels: c, plane: h * w)
        let order = sets.indices.sorted { sets[$0].count != sets[$1].count ? sets[$0].count > sets[$1].count : $0 < $1 }
        return order.prefix(count).map { MaskImage(unit: $0, height: h, width: w, pixels: sets[$0]) }
    }
}

/// One unit's surviving input pixels as a packed bitmap (row-major, most significant bit first,
/// base64), small enough to travel in results.json and be drawn by the report.
public struct MaskImage: Codable, Equatable, Sendable {
    public var unit: Int
    public var height: Int
    public var width: Int
    public var surviving: Int
    public var bits: String

    public init(unit: Int, height: Int, width: Int, pixels: [Int]) {
        var bytes = [UInt8](repeating: 0, count: (height * width + 7) / 8)
        for p in pixels { bytes[p / 8] |= 0x80 >> UInt8(p % 8) }
        self.unit = unit
        self.height = height
        self.width = width
        self.surviving = pixels.count
        self.bits = Data(bytes).base64EncodedString()
    }

    /// Why a mask image read back from a file cannot be drawn (its size drives loops and
    /// allocations), or nil.
    public var problem: String? {
        guard unit >= 0, (1...4096).contains(height), (1...4096).contains(width), (0...(height * width)).contains(surviving),
              bits.utf8.count <= 4 * (height * width / 24 + 2) else {
            return "mask image of unit \(unit), \(height)x\(width) with \(surviving) pixels, is not a first-layer mask"
        }
        return nil
    }

    /// Whether each pixel (row-major) survives; all false if `bits` is not valid base64.
    public var bitmap: [Bool] {
        let bytes = [UInt8](Data(base64Encoded: bits) ?? Data())
        return (0..<(height * width)).map { p in p / 8 < bytes.count && bytes[p / 8] & (0x80 >> UInt8(p % 8)) != 0 }
    }
}

/// An 8-bit image, channels last (as decoders and PIL hold it).
public struct PixelImage: Equatable, Sendable {
    public var width: Int
    public var height: Int
    public var channels: Int
    public var bytes: [UInt8]

    public init(width: Int, height: Int, channels: Int, bytes: [UInt8]) {
        precondition(bytes.count == width * height * channels)
        (self.width, self.height, self.channels, self.bytes) = (width, height, channels, bytes)
    }
}

/// torchvision's eval transform on a PIL image, `Resize` then `CenterCrop`, reproduced in PIL's
/// arithmetic: a network trained on a torchvision pipeline sees the same pixels here.
public struct Preprocessing: Codable, Equatable, Hashable, Sendable {
    /// `[n]`: the shorter side becomes n, the other keeps the aspect ratio (truncated, as
    /// torchvision); `[h, w]`: exactly that size.
    public var resize: [Int]?
    /// `[n]` or `[h, w]`: the centre of the image, padded with zeros when it is smaller.
    public var centerCrop: [Int]?

    public init(resize: [Int]? = nil, centerCrop: [Int]? = nil) {
        self.resize = resize
        self.centerCrop = centerCrop
    }

    public var isIdentity: Bool { resize == nil && centerCrop == nil }

    /// What is wrong with the sizes, as (field, requirement) pairs: the one definition of a
    /// valid size, for sweep files and command-line flags alike.
    public var problems: [(field: String, requirement: String)] {
        [("resize", resize), ("center_crop", centerCrop)].compactMap { field, size in
            guard let size, !(1...2).contains(size.count) || !size.allSatisfy({ (1...ImageCodec.maxSide).contains($0) }) else { return nil }
            return (field, "is a size N or [height, width], each 1...\(ImageCodec.maxSide)")
        }
    }

    /// The (height, width) an image of `height` x `width` has after this preprocessing.
    public func outputSize(height: Int, width: Int) -> (height: Int, width: Int) {
        var (h, w) = resize.map { Preprocessing.resizedSize(height: height, width: width, to: $0) } ?? (height, width)
        if let crop = centerCrop { (h, w) = (crop[0], crop.count > 1 ? crop[1] : crop[0]) }
        return (h, w)
    }

    /// torchvision's `_compute_resized_output_size` for a size without `max_size`.
    static func resizedSize(height: Int, width: Int, to size: [Int]) -> (height: Int, width: Int) {
        if size.count == 2 { return (size[0], size[1]) }
        let n = size[0]
        if width <= height { return (Int(Double(n) * Double(height) / Double(width)), n) }
        return (n, Int(Double(n) * Double(width) / Double(height)))
    }

    public func apply(_ image: PixelImage) -> PixelImage {
        var out = image
        if let resize {
            let (h, w) = Preprocessing.resizedSize(height: image.height, width: image.width, to: resize)
            out = Resampling.bilinear(out, width: w, height: h)
        }
        if let crop = centerCrop { out = Resampling.centerCrop(out, height: crop[0], width: crop.count > 1 ? crop[1] : crop[0]) }
        return out
    }
}

/// PIL's `Image.resize(size, BILINEAR)` (a triangle filter widened by the scale factor when
/// shrinking, which is its antialiasing) and torchvision's `center_crop`.
public enum Resampling {
    /// PIL's fixed-point precision for 8-bit images (`PRECISION_BITS` in Resample.c).
    private static let precisionBits = 32 - 8 - 2

    /// Filter taps for each output position: the first input index and the weights, as PIL's
    /// `precompute_coeffs` then `normalize_coeffs_8bpc` compute them.
    static func taps(inSize: Int, outSize: Int) -> [(start: Int, weights: [Int32])] {
        let scale = Double(inSize) / Double(outSize)
        let filterScale = max(scale, 1)
        let support = 1.0 * filterScale
        return (0..<outSize).map { xx in
            let center = (Double(xx) + 0.5) * scale
            let ss = 1 / filterScale
            let xmin = max(Int(center - support + 0.5), 0)
            let xmax = min(Int(center + support + 0.5), inSize) - xmin
            var weights = (0..<max(xmax, 0)).map { x -> Double in
                let t = abs((Double(x + xmin) - center + 0.5) * ss)
                return t < 1 ? 1 - t : 0
            }
            let total = weights.reduce(0, +)
            if total != 0 { weights = weights.map { $0 / total } }
            let one = Double(1 << precisionBits)
            return (xmin, weights.map { Int32($0 < 0 ? -0.5 + $0 * one : 0.5 + $0 * one) })
        }
    }

    @inline(__always) private static func clip8(_ v: Int32) -> UInt8 {
        if v >= Int32(1) << (precisionBits + 8) { return 255 }
        if v <= 0 { return 0 }
        return UInt8(truncatingIfNeeded: v >> precisionBits)
    }

    /// PIL's two-pass resize: horizontal over the rows the vertical pass will read, rounded to
    /// 8 bits, then vertical. A pass whose size does not change is skipped, as in PIL.
    public static func bilinear(_ image: PixelImage, width: Int, height: Int) -> PixelImage {
        if width == image.width && height == image.height { return image }
        let c = image.channels
        var current = image
        let vertical = taps(inSize: image.height, outSize: height)
        var rowOffset = 0
        if width != image.width {
            let first = vertical.first!.start
            let last = vertical.last!.start + vertical.last!.weights.count
            let horizontal = taps(inSize: image.width, outSize: width)
            var out = [UInt8](repeating: 0, count: (last - first) * width * c)
            image.bytes.withUnsafeBufferPointer { src in
                for y in first..<last {
                    for (xx, tap) in horizontal.enumerated() {
                        for ch in 0..<c {
                            var sum = Int32(1) << (precisionBits - 1)
                            for (k, w) in tap.weights.enumerated() { sum &+= Int32(src[(y * image.width + tap.start + k) * c + ch]) &* w }
                            out[((y - first) * width + xx) * c + ch] = clip8(sum)
                        }
                    }
                }
            }
            current = PixelImage(width: width, height: last - first, channels: c, bytes: out)
            rowOffset = first
        }
        guard height != image.height else { return current }
        var out = [UInt8](repeating: 0, count: height * width * c)
        current.bytes.withUnsafeBufferPointer { src in
            for (yy, tap) in vertical.enumerated() {
                for x in 0..<width {
                    for ch in 0..<c {
                        var sum = Int32(1) << (precisionBits - 1)
                        for (k, w) in tap.weights.enumerated() { sum &+= Int32(src[((tap.start - rowOffset + k) * width + x) * c + ch]) &* w }
                        out[(yy * width + x) * c + ch] = clip8(sum)
                    }
                }
            }
        }
        return PixelImage(width: width, height: height, channels: c, bytes: out)
    }

    /// torchvision's `center_crop`: zero padding split as it splits it when the image is
    /// smaller, then the top-left corner at round((size - crop) / 2), Python's rounding.
    public static func centerCrop(_ image: PixelImage, height: Int, width: Int) -> PixelImage {
        func pad(_ crop: Int, _ size: Int) -> Int { crop > size ? (crop - size) / 2 : 0 }
        func offset(_ size: Int, _ crop: Int) -> Int {
            let d = size - crop
            let half = d / 2
            return d % 2 == 0 || half % 2 == 0 ? half : half + 1   // round half to even
        }
        let (left, top) = (pad(width, image.width), pad(height, image.height))
        let paddedWidth = image.width + left + (width > image.width ? (width - image.width + 1) / 2 : 0)
        let paddedHeight = image.height + top + (height > image.height ? (height - image.height + 1) / 2 : 0)
        let (y0, x0) = (offset(paddedHeight, height) - top, offset(paddedWidth, width) - left)
        let c = image.channels
        var out = [UInt8](repeating: 0, count: height * width * c)
        for y in 0..<height where (0..<image.height).contains(y + y0) {
            for x in 0..<width where (0..<image.width).contains(x + x0) {
                for ch in 0..<c { out[(y * width + x) * c + ch] = image.bytes[((y + y0) * image.width + x + x0) * c + ch] }
            }
        }
        return PixelImage(width: width, height: height, channels: c, bytes: out)
    }
}

/// A pixel-level change applied to every image of a dataset, to make a second domain from one
/// dataset (the reuse study's "transformed copies").
public enum ImageTransform: String, Codable, CaseIterable, Sendable {
    /// A quarter turn counter-clockwise (square images only).
    case rotate90
    /// A half turn.
    case rotate180
    /// Mirrored left to right.
    case flipHorizontal = "flip"
    /// Each pixel value v becomes 1 − v (raw pixels are in [0, 1]).
    case invert
}

/// How a named dataset is made from another: a subset of its classes (relabelled 0..k−1 in the
/// order given) and/or a transform. Fashion-MNIST classes 0-4 and 5-9 become two domains.
public struct Derivation: Equatable, Sendable {
    public var classes: [Int]?
    public var transform: ImageTransform?

    public init(classes: [Int]? = nil, transform: ImageTransform? = nil) {
        self.classes = classes
        self.transform = transform
    }

    public var isIdentity: Bool { classes == nil && transform == nil }

    /// The derived dataset (raw pixels in, raw pixels out; normalisation comes after).
    public func apply(to data: Dataset, name: String) throws -> Dataset {
        var out = data
        if let classes {
            if let bad = classes.first(where: { $0 < 0 || $0 >= data.classes }) {
                throw DatasetError(file: data.name, problem: "class \(bad) does not exist (the dataset has classes 0...\(data.classes - 1))")
            }
            out = out.selectingClasses(classes)
        }
        if let transform { out = out.transformed(transform) }
        return out.renamed(name)
    }
}

extension Dataset {
    /// The examples of `classes` only, their labels renumbered 0..<classes.count in that order.
    public func selectingClasses(_ classes: [Int]) -> Dataset {
        let newLabel = Dictionary(classes.enumerated().map { (Int32($0.element), Int32($0.offset)) }, uniquingKeysWith: { a, _ in a })
        let kept = (0..<count).filter { newLabel[labels[$0]] != nil }
        let picked = subset(kept)
        return Dataset(name: name, pixels: picked.pixels, labels: picked.labels.map { newLabel[$0]! }, shape: shape,
                       classes: classes.count)
    }

    /// Every image transformed; labels unchanged.
    public func transformed(_ transform: ImageTransform) -> Dataset {
        let (h, w) = (shape[1], shape[2])
        let newShape = transform == .rotate90 ? [shape[0], w, h] : shape
        return remapped(shape: newShape, destination: { j in
            let (y, x) = j.quotientAndRemainder(dividingBy: w)
            switch transform {
            // Counter-clockwise: the pixel at (y, x) moves to (w-1-x, y).
            case .rotate90: return (w - 1 - x) * h + y
            case .rotate180: return (h - 1 - y) * w + (w - 1 - x)
            case .flipHorizontal: return y * w + (w - 1 - x)
            case .invert: return j
            }
        }, value: transform == .invert ? { 1 - $0 } : nil)
    }
}

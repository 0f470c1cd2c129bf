import Foundation

/// Images and labels from NumPy arrays: an `.npz` archive per split (or one holding both, as
/// Keras' `x_train`/`y_train`/`x_test`/`y_test`), or a pair of `.npy` files per split.
public enum NumPyDataset {
    /// The most classes a label array may name.
    public static let maxClasses = 100_000

    /// Axis order of a rank-4 image array.
    public enum Layout: String, Codable, Sendable, CaseIterable {
        case nchw, nhwc
    }

    /// The arrays of one split: images and labels.
    public enum Files: Equatable, Sendable {
        /// An `.npz` and, if declared, the names of its image and label arrays.
        case archive(String, images: String?, labels: String?)
        /// An image `.npy` and a label `.npy`.
        case pair(String, String)
    }

    /// Reads one split: `split` ("train" or "test") chooses among Keras-style member names.
    public static func load(_ files: Files, split: String, name: String, layout: Layout?, classes: Int?) throws -> Dataset {
        let (x, y, where_): (NumPyArray, NumPyArray, String)
        switch files {
        case let .archive(path, imagesKey, labelsKey):
            let archive = try NumPyArchive(path)
            func pick(_ declared: String?, _ candidates: [String], what: String) throws -> String {
                if let declared { return declared }
                guard let found = candidates.first(where: archive.names.contains) else {
                    throw DatasetError(file: path, problem: "no \(what) array (looked for \(candidates.joined(separator: ", ")); it holds \(archive.listedNames)): name it with \(what == "image" ? "x_key" : "y_key"):")
                }
                return found
            }
            let xName = try pick(imagesKey, ["x_\(split)", "x", "images", "data", "X"], what: "image")
            let yName = try pick(labelsKey, ["y_\(split)", "y", "labels", "targets", "Y"], what: "label")
            (x, y, where_) = (try archive.array(xName), try archive.array(yName), "\(path)[\(yName)]")
        case let .pair(images, labels):
            (x, y, where_) = (try NumPyArray.read(images), try NumPyArray.read(labels), labels)
        }
        let imageFile: String
        switch files {
        case let .archive(path, _, _): imageFile = path
        case let .pair(images, _): imageFile = images
        }
        let labelValues: [Int64]?
        switch y.elements {
        case .integers(let v): labelValues = v
        case .bytes(let b): labelValues = b.map(Int64.init)
        case .floats: labelValues = nil
        }
        guard let labels = labelValues, y.shape.count == 1 || (y.shape.count == 2 && y.shape[1] == 1) else {
            throw DatasetError(file: where_, problem: "labels must be a 1-D integer array (shape \(y.shape))")
        }
        let shape = try imageShape(x.shape, layout: layout, file: imageFile)
        guard labels.count == x.shape[0] else {
            throw DatasetError(file: where_, problem: "\(labels.count) labels for \(x.shape[0]) images")
        }
        guard !labels.isEmpty else { throw DatasetError(file: imageFile, problem: "holds no images") }
        // The training split's labels define the classes (0...largest); the test split's must be among them.
        let classCount = classes ?? Int(max(labels.max()!, 0) + 1)
        if let bad = labels.firstIndex(where: { $0 < 0 || $0 >= classCount || $0 >= maxClasses }) {
            let limit = classes == nil ? "labels are 0...\(maxClasses - 1)" : "the training split's labels are 0...\(classCount - 1)"
            throw DatasetError(file: where_, problem: "label \(labels[bad]) of example \(bad) is out of range (\(limit))")
        }
        let n = x.shape[0], (c, h, w) = (shape[0], shape[1], shape[2])
        let channelsLast = x.shape.count == 4 && shape[0] != x.shape[1]
        let int32Labels = labels.map { Int32($0) }
        switch x.elements {
        case .bytes(let b):
            return Dataset(name: name, bytes: channelsLast ? IDX.planar(b, count: n, height: h, width: w, channels: c) : b,
                           labels: int32Labels, shape: shape, classes: classCount)
        case .floats(let f):
            if let bad = f.firstIndex(where: { !$0.isFinite }) {
                throw DatasetError(file: imageFile, problem: "element \(bad) is \(f[bad]); image values must be finite")
            }
            return Dataset(name: name, images: channelsLast ? IDX.planar(f, count: n, height: h, width: w, channels: c) : f,
                           labels: int32Labels, shape: shape, classes: classCount)
        case .integers:
            throw DatasetError(file: imageFile, problem: "images must be uint8 (0...255) or float32; this array holds other integers")
        }
    }

    /// (channels, height, width) of an image array: rank 3 is N x H x W; rank 4 is NCHW or NHWC,
    /// declared or told by which axis holds 1 or 3 channels.
    static func imageShape(_ shape: [Int], layout: Layout?, file: String) throws -> [Int] {
        func fail(_ problem: String) -> DatasetError { DatasetError(file: file, problem: problem) }
        switch shape.count {
        case 3:
            guard layout == nil || layout == .nchw else { throw fail("image array of shape \(shape) has no channel axis; drop layout: nhwc") }
            return [1, shape[1], shape[2]]
        case 4:
            let resolved: Layout
            if let layout { resolved = layout }
            else {
                let first = [1, 3].contains(shape[1]), last = [1, 3].contains(shape[3])
                guard first != last else {
                    throw fail("cannot tell the channel axis of an image array of shape \(shape): add layout: nchw or layout: nhwc")
                }
                resolved = first ? .nchw : .nhwc
            }
            let shapeCHW = resolved == .nchw ? [shape[1], shape[2], shape[3]] : [shape[3], shape[1], shape[2]]
            guard (1...64).contains(shapeCHW[0]) else { throw fail("image array of shape \(shape) has \(shapeCHW[0]) channels (\(resolved.rawValue))") }
            return shapeCHW
        default:
            throw fail("image array has shape \(shape); expected N x H x W or N x C x H x W / N x H x W x C")
        }
    }
}

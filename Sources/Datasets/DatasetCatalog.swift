import Foundation

/// Finds datasets by name: the MNIST family as IDX files (Fashion-MNIST from its Debian package
/// by default), CIFAR-10 binary batches, or the built-in synthetic task.
public enum DatasetCatalog {
    /// Where `apt-get install dataset-fashion-mnist` puts the files.
    public static let debianDatasets = "/usr/share/datasets"

    public static let names = ["fashion-mnist", "mnist", "kmnist", "cifar10", "synthetic", "synthetic-28", "synthetic-32"]

    /// Loads `name` (from `dataDirectory` when given), or the dataset `derivation` makes from
    /// `base`, limits the splits, and normalises both by the train split's per-channel statistics
    /// (or by `normalisation`, in the units of pixels / 255).
    public static func load(_ name: String, base: String? = nil, derivation: Derivation = Derivation(),
                            dataDirectory: String? = nil, trainLimit: Int? = nil, testLimit: Int? = nil,
                            normalisation: Normalisation? = nil, preprocessing: Preprocessing = Preprocessing(),
                            raw: (train: Dataset, test: Dataset)? = nil) throws -> DatasetSplits {
        var (train, test) = try raw ?? loadRaw(base ?? name, dataDirectory: dataDirectory)
        if raw == nil, !preprocessing.isIdentity {
            (train, test) = (try train.preprocessed(preprocessing), try test.preprocessed(preprocessing))
        }
        let classes = max(train.classes, test.classes)
        func prepared(_ d: Dataset) throws -> Dataset {
            let harmonised = d.renamed(name, classes: classes)
            return try derivation.apply(to: harmonised, name: name)
        }
        let (rawTrain, rawTest) = (try prepared(train).prefix(trainLimit), try prepared(test).prefix(testLimit))
        for (split, data) in [("training", rawTrain), ("test", rawTest)] where data.count == 0 {
            throw DatasetError(file: dataDirectory ?? name, problem: "dataset '\(name)' has no \(split) images\(derivation.classes == nil ? "" : " of the selected classes")")
        }
        if let normalisation, normalisation.mean.count != rawTrain.shape[0] || normalisation.std.count != rawTrain.shape[0] {
            throw DatasetError(file: dataDirectory ?? name, problem: "normalization has \(normalisation.mean.count) means and \(normalisation.std.count) stds; '\(name)' has \(rawTrain.shape[0]) channels")
        }
        return DatasetSplits(rawTrain: rawTrain, rawTest: rawTest, normalisation: normalisation)
    }

    /// The raw (unnormalised) train and test splits.
    public static func loadRaw(_ name: String, dataDirectory: String? = nil) throws -> (train: Dataset, test: Dataset) {
        switch name {
        case "synthetic":
            return SyntheticSpec().generate(name: name)
        case "synthetic-28":
            return SyntheticSpec(shape: [1, 28, 28], classes: 10, trainCount: 2048, testCount: 1024).generate(name: name)
        case "synthetic-32":
            return SyntheticSpec(shape: [3, 32, 32], classes: 10, trainCount: 2048, testCount: 1024).generate(name: name)
        case "cifar10":
            guard let dir = dataDirectory ?? existing(["\(debianDatasets)/cifar10", "\(debianDatasets)/cifar-10"]) else {
                throw DatasetError(file: "cifar10", problem: "no data directory: pass --data-dir pointing at the CIFAR-10 binary batches")
            }
            return try CIFAR10.load(directory: dir, name: name)
        default:
            let dir = dataDirectory ?? "\(debianDatasets)/\(name)"
            guard FileManager.default.fileExists(atPath: dir) else {
                let hint = name == "fashion-mnist" ? "install it with: apt-get install dataset-fashion-mnist"
                    : "pass --data-dir with its IDX files (or use one of: \(names.joined(separator: ", ")))"
                throw DatasetError(file: dir, problem: "dataset '\(name)' not found; \(hint)")
            }
            return try loadIDXDirectory(dir, name: name)
        }
    }

    /// The four IDX files of the MNIST family in `dir`, gzip-compressed or not.
    public static func loadIDXDirectory(_ dir: String, name: String) throws -> (train: Dataset, test: Dataset) {
        func find(_ stem: String) throws -> String {
            for candidate in [stem, stem + ".gz", stem.replacingOccurrences(of: "-idx", with: ".idx"),
                              stem.replacingOccurrences(of: "-idx", with: ".idx") + ".gz"] {
                let path = (dir as NSString).appendingPathComponent(candidate)
                if FileManager.default.fileExists(atPath: path) { return path }
            }
            throw DatasetError(file: (dir as NSString).appendingPathComponent(stem + "[.gz]"), problem: "no such file (IDX dataset directory is incomplete)")
        }
        let train = try IDX.loadPair(images: try find("train-images-idx3-ubyte"), labels: try find("train-labels-idx1-ubyte"), name: name)
        let test = try IDX.loadPair(images: try find("t10k-images-idx3-ubyte"), labels: try find("t10k-labels-idx1-ubyte"), name: name)
        guard train.shape == test.shape else {
            throw DatasetError(file: dir, problem: "train images are \(train.shape), test images \(test.shape)")
        }
        return (train, test)
    }

    private static func existing(_ paths: [String]) -> String? {
        paths.first { FileManager.default.fileExists(atPath: $0) }
    }
}

extension DatasetCatalog {
    /// Image shape, class count and split sizes of a dataset, known without reading it (used to
    /// estimate task costs). IDX datasets from elsewhere are assumed MNIST-sized.
    public static func describe(_ name: String) -> (shape: [Int], classes: Int, train: Int, test: Int) {
        switch name {
        case "synthetic": let s = SyntheticSpec(); return (s.shape, s.classes, s.trainCount, s.testCount)
        case "synthetic-28": return ([1, 28, 28], 10, 2048, 1024)
        case "synthetic-32": return ([3, 32, 32], 10, 2048, 1024)
        case "cifar10": return ([3, 32, 32], 10, 50_000, 10_000)
        default: return ([1, 28, 28], 10, 60_000, 10_000)
        }
    }

    /// Throws the error `load` would give for a missing dataset, without reading any data.
    public static func checkAvailable(_ name: String, dataDirectory: String?) throws {
        if name.hasPrefix("synthetic") {
            guard ["synthetic", "synthetic-28", "synthetic-32"].contains(name) else {
                throw DatasetError(file: name, problem: "unknown synthetic dataset; valid: synthetic, synthetic-28, synthetic-32")
            }
            return
        }
        let dir = dataDirectory ?? (name == "cifar10" ? "\(debianDatasets)/cifar10" : "\(debianDatasets)/\(name)")
        guard FileManager.default.fileExists(atPath: dir) else {
            let hint = name == "fashion-mnist" ? "install it with: apt-get install dataset-fashion-mnist"
                : "set data_dir to its files (known names: \(names.joined(separator: ", ")))"
            throw DatasetError(file: dir, problem: "dataset '\(name)' not found; \(hint)")
        }
    }
}

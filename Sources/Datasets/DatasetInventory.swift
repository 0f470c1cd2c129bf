import Foundation

/// What a dataset file or directory holds, for `sweep datasets`: the format it is in, its
/// splits decoded, the class names an image folder gives, and a sweep-file entry reading it.
public struct DatasetInventory {
    public let path: String
    public let format: DatasetSource.Format
    /// (split name, where it was read, its images).
    public let splits: [(name: String, path: String, data: Dataset)]
    public let classNames: [String]?
    /// The entry's fields other than `name` and `format` (paths as given).
    public let entryFields: [(String, String)]

    /// Looks at `path` and decides what it is: an image folder (or a folder holding `train/` and
    /// `val/` or `test/` image folders), an IDX / CIFAR-10 / CIFAR-100 directory, an .npz, or an .npy.
    public static func inspect(_ path: String, channels: Int? = nil, preprocessing: Preprocessing = Preprocessing()) throws -> DatasetInventory {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw DatasetError(file: path, problem: "no such file or directory")
        }
        func join(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }
        func exists(_ name: String) -> Bool { FileManager.default.fileExists(atPath: join(name)) }
        if !isDirectory.boolValue {
            let lower = path.lowercased()
            if lower.hasSuffix(".npz") {
                let archive = try NumPyArchive(path)
                let splitNames = archive.names.contains("x_test") ? ["train", "test"] : ["train"]
                let splits = try splitNames.map { split -> (String, String, Dataset) in
                    (split, path, try NumPyDataset.load(.archive(path, images: nil, labels: nil), split: split, name: "data", layout: nil, classes: nil).preprocessed(preprocessing))
                }
                return DatasetInventory(path: path, format: .npz, splits: splits, classNames: nil,
                                        entryFields: [("train", path), ("test", splitNames.count == 2 ? path : "TEST.npz")])
            }
            if lower.hasSuffix(".npy") {
                let array = try NumPyArray.read(path)
                throw DatasetError(file: path, problem: "holds one array of shape \(array.shape); a dataset is a pair: train: [images.npy, labels.npy]")
            }
            throw DatasetError(file: path, problem: "is not a directory, .npz or .npy (image folders, IDX, CIFAR binary and NumPy arrays are read)")
        }
        // A directory of a built-in format: both splits in one place.
        let builtIn: DatasetSource.Format? = exists("train-images-idx3-ubyte") || exists("train-images-idx3-ubyte.gz") ? .idx
            : exists("data_batch_1.bin") || exists("cifar-10-batches-bin") ? .cifar10
            : exists("train.bin") || exists("cifar-100-binary") ? .cifar100 : nil
        if let builtIn {
            let (train, test) = try DatasetSource(format: builtIn, train: [path], preprocessing: preprocessing).load(name: "data")
            return DatasetInventory(path: path, format: builtIn, splits: [("train", path, train), ("test", path, test)],
                                    classNames: nil, entryFields: [("data_dir", path)])
        }
        // An image folder, or a folder of split folders (torchvision's train/ and val/).
        let testName = ["val", "test", "valid", "validation"].first { exists($0) && DirectoryWalk.isDirectory(join($0)) }
        if exists("train"), DirectoryWalk.isDirectory(join("train")), let testName {
            let (train, classes) = try ImageFolder.load(join("train"), name: "data", channels: channels, preprocessing: preprocessing)
            let (test, _) = try ImageFolder.load(join(testName), name: "data", channels: train.shape[0], preprocessing: preprocessing, classes: classes)
            return DatasetInventory(path: path, format: .imagefolder, splits: [("train", join("train"), train), ("test", join(testName), test)],
                                    classNames: classes, entryFields: [("train", join("train")), ("test", join(testName))])
        }
        let (data, classes) = try ImageFolder.load(path, name: "data", channels: channels, preprocessing: preprocessing)
        return DatasetInventory(path: path, format: .imagefolder, splits: [("all", path, data)], classNames: classes,
                                entryFields: [("train", path), ("test", "TEST_FOLDER")])
    }
}

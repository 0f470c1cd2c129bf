import ArgumentParser
import Datasets
import Foundation
import Rendering
import SweepCore
import SweepFile
import TensorEngine
import Yams

struct DatasetsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "datasets", abstract: "Show what a dataset file or directory holds, and the sweep-file entry that reads it.",
        discussion: """
        PATH is an image folder (one subfolder per class), a folder holding train/ and val/ (or \
        test/) image folders, an IDX, CIFAR-10 or CIFAR-100 binary directory, or an .npz file. \
        Prints the classes, the images per split and per class, the image size and channels, and \
        the per-channel mean and standard deviation of the training split (pixels / 255: what a \
        dataset's normalization: takes).
        """)

    @Argument(help: "A dataset directory or .npz file.") var path: String
    @OptionGroup var decoding: DecodingOptions
    @OptionGroup var engine: EngineOptions

    func validate() throws { try decoding.check() }

    func run() throws {
        engine.apply()
        let preprocessing = decoding.preprocessing
        let inventory = try DatasetInventory.inspect(path, channels: decoding.channels, preprocessing: preprocessing)
        let first = inventory.splits[0].data
        let (c, h, w) = (first.shape[0], first.shape[1], first.shape[2])
        print("\(SafeText.terminal(path)): \(inventory.format.rawValue)")
        let classes = inventory.splits.map(\.data.classes).max() ?? 0
        if let names = inventory.classNames {
            let shown = names.prefix(12).map(SafeText.terminal).joined(separator: ", ")
            print("  classes: \(names.count) (\(shown)\(names.count > 12 ? ", …" : ""))")
        } else {
            print("  classes: \(classes)")
        }
        for split in inventory.splits {
            var counts = [Int](repeating: 0, count: split.data.classes)
            for label in split.data.labels { counts[Int(label)] += 1 }
            let spread = counts.min() == counts.max() ? "\(counts.first ?? 0) per class" : "\(counts.min() ?? 0) to \(counts.max() ?? 0) per class"
            print("  \(split.name): \(split.data.count) images, \(spread)  (\(SafeText.terminal(split.path)))")
        }
        let kind = first.bytesPerImage == first.imageSize ? "8-bit" : "float32"
        print("  images: \(c) x \(h) x \(w) (\(c == 1 ? "grey" : c == 3 ? "RGB" : "\(c) channels"), \(kind))\(preprocessing.isIdentity ? "" : " after resize/center_crop")")
        let stats = first.channelStatistics()
        func list(_ v: [Float]) -> String { "[" + v.map { String(format: "%.4f", $0) }.joined(separator: ", ") + "]" }
        print("  mean \(list(stats.mean)), std \(list(stats.std)) (\(inventory.splits[0].name) split, pixels / 255)")
        var fields: [(String, String)] = [("name", Self.entryName(path)), ("format", inventory.format.rawValue)] + inventory.entryFields
        if let resize = decoding.resize { fields.append(("resize", String(resize))) }
        if let centerCrop = decoding.centerCrop { fields.append(("center_crop", String(centerCrop))) }
        if let channels = decoding.channels { fields.append(("channels", String(channels))) }
        fields.append(("normalization", "{mean: \(list(stats.mean)), std: \(list(stats.std))}"))
        // Paths are quoted by Yams where YAML needs it; the numbers and the flow mapping are ours.
        let entry = try fields.map { key, value -> String in
            let scalar = ["resize", "center_crop", "channels", "normalization"].contains(key) ? value
                : try Yams.serialize(node: Node(value)).trimmingCharacters(in: .whitespacesAndNewlines)
            return "\(key): \(scalar)"
        }
        let yaml = "- {" + entry.joined(separator: ", ") + "}"
        print("  sweep file entry (datasets:):")
        for line in yaml.split(separator: "\n") { print("    " + SafeText.terminal(String(line))) }
    }

    /// A dataset name from a path: its last component, in the letters a name allows.
    static func entryName(_ path: String) -> String {
        let stem = ((path as NSString).lastPathComponent as NSString).deletingPathExtension
        let cleaned = String(stem.lowercased().map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "-" })
        return cleaned.isEmpty ? "mydata" : cleaned
    }
}

import Foundation
import Synchronization
import TensorEngine

/// torchvision's `ImageFolder` layout: one subfolder per class (class index = the folder names
/// in sorted order), images anywhere below it. PNG and JPEG files are decoded (in parallel, with
/// a progress line), preprocessed and kept as bytes; files that are neither are skipped and
/// counted in one warning line.
public enum ImageFolder {
    /// One image found under a class folder.
    /// Its directory (an index into `Listing.directories`) and file name apart: names of up to
    /// 15 bytes are stored inline, so 60,000 entries cost about 2 MB, not the 7 MB of full paths.
    struct Entry {
        let directory: Int32
        let name: String
        let label: Int32
        let format: ImageCodec.Format
    }

    /// What a folder holds: class names, the images in torchvision's order, what was skipped.
    struct Listing {
        let classes: [String]
        let directories: [String]
        let images: [Entry]
        let skipped: [String]

        func path(_ i: Int) -> String { ImageFolder.join(directories[Int(images[i].directory)], images[i].name) }
    }

    /// Loads the images under `root` as `channels` channels (nil: 3 if any image is colour,
    /// else 1), preprocessed by `preprocessing`. `classes` names the class folders expected
    /// (the train split's, for the test split). `warn` receives the skipped-files line.
    public static func load(_ root: String, name: String, channels declared: Int?, preprocessing: Preprocessing,
                            classes expected: [String]? = nil, warn: (String) -> Void = DatasetLog.warn) throws -> (Dataset, classes: [String]) {
        let listing = try list(root)
        if let expected, expected != listing.classes {
            let missing = expected.filter { !listing.classes.contains($0) }, extra = listing.classes.filter { !expected.contains($0) }
            throw DatasetError(file: root, problem: "class folders differ from the training split's (" +
                               (missing.isEmpty ? "" : "missing \(listed(missing))") + (missing.isEmpty || extra.isEmpty ? "" : "; ") +
                               (extra.isEmpty ? "" : "extra \(listed(extra))") + ")")
        }
        if !listing.skipped.isEmpty {
            let one = listing.skipped.count == 1
            warn("\(root): skipped \(listing.skipped.count) \(one ? "file that is" : "files that are") not a PNG or JPEG image (e.g. \(SafeLine.clean(listing.skipped[0])))")
        }
        let progress = LoadProgress(what: "reading \(root)", total: 2 * listing.images.count)
        // Pass 1: headers (size, colour), so the store is allocated once at its final size.
        let headers = try parallelMap(Array(listing.images.indices)) { i -> ImageCodec.Header in
            defer { progress.tick() }
            return try ImageCodec.header(listing.path(i), format: listing.images[i].format)
        }
        let channels = declared ?? (headers.contains { $0.channels == 3 } ? 3 : 1)
        let size = preprocessing.outputSize(height: headers[0].height, width: headers[0].width)
        for (i, h) in headers.enumerated() where preprocessing.outputSize(height: h.height, width: h.width) != size {
            let first = listing.path(0), other = listing.path(i)
            let hint = preprocessing.isIdentity ? "add resize: and center_crop: to the dataset" : "add center_crop: to the dataset"
            throw DatasetError(file: other, problem: "is \(h.width) x \(h.height) pixels\(preprocessing.isIdentity ? "" : " (\(size.width) x \(size.height) after preprocessing)"), \(first) is \(headers[0].width) x \(headers[0].height): images must share one size; \(hint)")
        }
        let plane = size.height * size.width
        let imageSize = channels * plane
        guard listing.images.count.multipliedReportingOverflow(by: imageSize).overflow == false,
              listing.images.count * imageSize < 1 << 40 else {
            throw DatasetError(file: root, problem: "\(listing.images.count) images of \(imageSize) bytes do not fit in memory")
        }
        // Pass 2: each image decoded, preprocessed and written planar into its own slot.
        var store = [UInt8](repeating: 0, count: listing.images.count * imageSize)
        try store.withUnsafeMutableBufferPointer { out in
            let base = out.baseAddress!
            try parallelFor(listing.images.count) { i in
                defer { progress.tick() }
                let decoded = try ImageCodec.decode(listing.path(i), format: listing.images[i].format, channels: channels, expected: headers[i])
                let image = preprocessing.apply(PixelImage(width: headers[i].width, height: headers[i].height, channels: channels, bytes: decoded))
                let slot = base + i * imageSize
                image.bytes.withUnsafeBufferPointer { p in
                    for ch in 0..<channels { for j in 0..<plane { slot[ch * plane + j] = p[j * channels + ch] } }
                }
            }
        }
        progress.finish()
        let dataset = Dataset(name: name, bytes: store, labels: listing.images.map(\.label),
                              shape: [channels, size.height, size.width], classes: listing.classes.count)
        return (dataset, listing.classes)
    }

    /// The class folders and images under `root`, in torchvision's order: classes sorted, then
    /// each class's directories walked in sorted order (symbolic links followed, a loop is an
    /// error), files sorted within a directory.
    static func list(_ root: String) throws -> Listing {
        guard let top = DirectoryWalk.entries(root) else {
            throw DatasetError(file: root, problem: DirectoryWalk.exists(root) ? "is not a readable directory" : "no such directory")
        }
        let classes = top.filter { DirectoryWalk.isDirectory(join(root, $0)) && !$0.hasPrefix(".") }.sorted(by: DirectoryWalk.codePointOrder)
        guard !classes.isEmpty else {
            throw DatasetError(file: root, problem: "holds no class folders (an image folder has one subfolder per class, images inside)")
        }
        var images: [Entry] = [], skipped: [String] = [], directories: [String] = []
        for (label, name) in classes.enumerated() {
            let before = images.count
            try DirectoryWalk.walk(join(root, name)) { directory, file in
                if directories.last != directory { directories.append(directory) }
                let path = join(directory, file)
                var head = [UInt8](repeating: 0, count: 8)
                guard let handle = fopen(path, "rb") else { throw DatasetError(file: path, problem: "cannot open") }
                let n = fread(&head, 1, 8, handle)
                fclose(handle)
                if n == 0 { throw DatasetError(file: path, problem: "is empty (0 bytes)") }
                if let format = ImageCodec.sniff(Array(head.prefix(n))) {
                    images.append(Entry(directory: Int32(directories.count - 1), name: file, label: Int32(label), format: format))
                } else {
                    skipped.append(path)
                }
            }
            guard images.count > before else {
                throw DatasetError(file: join(root, name), problem: "class folder holds no PNG or JPEG images (every class needs at least one)")
            }
        }
        return Listing(classes: classes, directories: directories, images: images, skipped: skipped)
    }

    static func join(_ a: String, _ b: String) -> String { (a as NSString).appendingPathComponent(b) }

    static func listed(_ names: [String]) -> String {
        let shown = names.prefix(4).map { SafeLine.clean($0, limit: 40) }.joined(separator: ", ")
        return names.count > 4 ? shown + ", … (\(names.count))" : shown
    }

    /// `body` over 0..<count on the engine's threads; the first error thrown, by index.
    static func parallelFor(_ count: Int, _ body: (Int) throws -> Void) throws {
        let failures = Mutex<[Int: Error]>([:])
        let chunks = Parallel.ranges(count, grain: 64)
        Parallel.forEach(chunks.count) { c in
            for i in chunks[c] {
                do { try body(i) } catch {
                    failures.withLock { $0[i] = error }
                    return
                }
            }
        }
        if let first = failures.withLock({ $0.min { $0.key < $1.key } }) { throw first.value }
    }

    static func parallelMap<T, R>(_ items: [T], _ transform: (T) throws -> R) throws -> [R] {
        var out = [R?](repeating: nil, count: items.count)
        try out.withUnsafeMutableBufferPointer { slots in
            let base = slots.baseAddress!
            try parallelFor(items.count) { i in base[i] = try transform(items[i]) }
        }
        return out.map { $0! }
    }
}

/// Directory listing with `stat`, for walks that follow links and must notice loops.
enum DirectoryWalk {
    static func entries(_ path: String) -> [String]? {
        guard let dir = opendir(path) else { return nil }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    static func exists(_ path: String) -> Bool { var s = stat(); return lstat(path, &s) == 0 }

    static func isDirectory(_ path: String) -> Bool {
        var s = stat()
        return stat(path, &s) == 0 && s.st_mode & S_IFMT == S_IFDIR
    }

    /// Python's `sorted` on strings: by Unicode code point.
    static func codePointOrder(_ a: String, _ b: String) -> Bool {
        a.unicodeScalars.lexicographicallyPrecedes(b.unicodeScalars)
    }

    /// Calls `file` for each regular file below `root` (hidden names skipped), directories in
    /// sorted order and each directory's files before its subdirectories' (as
    /// `sorted(os.walk(root, followlinks=True))`).
    static func walk(_ root: String, file: (_ directory: String, _ name: String) throws -> Void) throws {
        var directories: [String] = []
        var onPath: [(dev_t, ino_t)] = []
        func visit(_ dir: String) throws {
            var s = stat()
            guard stat(dir, &s) == 0 else { throw DatasetError(file: dir, problem: "cannot be read (a broken link?)") }
            if onPath.contains(where: { $0 == (s.st_dev, s.st_ino) }) {
                throw DatasetError(file: dir, problem: "is a symbolic link loop (it leads back to a folder that contains it)")
            }
            guard onPath.count < 64 else { throw DatasetError(file: dir, problem: "is nested more than 64 folders deep") }
            onPath.append((s.st_dev, s.st_ino))
            defer { onPath.removeLast() }
            directories.append(dir)
            guard let names = entries(dir) else { throw DatasetError(file: dir, problem: "is not a readable directory") }
            for name in names where !name.hasPrefix(".") {
                let path = (dir as NSString).appendingPathComponent(name)
                if isDirectory(path) { try visit(path) }
            }
        }
        try visit(root)
        // sorted(os.walk(...)): directories by path, each one's files sorted by name.
        for dir in directories.sorted(by: codePointOrder) {
            for name in (entries(dir) ?? []).sorted(by: codePointOrder) where !name.hasPrefix(".") {
                let path = (dir as NSString).appendingPathComponent(name)
                var s = stat()
                guard stat(path, &s) == 0 else { throw DatasetError(file: path, problem: "cannot be read (a broken link?)") }
                if s.st_mode & S_IFMT == S_IFREG { try file(dir, name) }
            }
        }
    }
}

/// A progress line on standard error for a load that takes more than a few seconds.
final class LoadProgress: Sendable {
    private let what: String
    private let total: Int
    private let state = Mutex<(done: Int, lastPrint: Double, printed: Bool)>((0, 0, false))
    private let start = ProcessInfo.processInfo.systemUptime

    init(what: String, total: Int) {
        self.what = what
        self.total = total
    }

    func tick() {
        let now = ProcessInfo.processInfo.systemUptime
        let line: String? = state.withLock { s in
            s.done += 1
            guard now - start > 2, now - s.lastPrint > 2 else { return nil }
            s.lastPrint = now
            s.printed = true
            return "\(what): \(100 * s.done / max(total, 1))% (\(Int(now - start)) s)"
        }
        if let line { DatasetLog.info(line) }
    }

    func finish() {
        let printed = state.withLock { $0.printed }
        if printed { DatasetLog.info("\(what): done in \(String(format: "%.1f", ProcessInfo.processInfo.systemUptime - start)) s") }
    }
}

/// Where dataset readers say things: standard error, one line each.
public enum DatasetLog {
    public static func warn(_ line: String) { FileHandle.standardError.write(Data(("warning: " + line + "\n").utf8)) }
    public static func info(_ line: String) { FileHandle.standardError.write(Data((line + "\n").utf8)) }
}

import Foundation
import Rendering
import SweepCore
import SweepFile
import SweepRecords

/// A store of trained networks shared by every sweep of a user (default `~/.cache/layersweep`):
/// one entry per training identity (`TrainingIdentity.key`), holding the checkpoint and the
/// outcome its training reported. A sweep that needs a training the store holds takes it from
/// there instead of training again.
///
/// Each entry is a directory `trainings/<key>/` with `checkpoint.safetensors` and `entry.json`,
/// written under `tmp/` (fsynced) and renamed into place in one step: a reader sees a whole
/// entry or none. Two sweeps that store the same key race harmlessly: the first rename wins and
/// the other's identical copy is dropped. Everything read back is checked (the entry names its
/// key, the checkpoint's bytes have their recorded hash); a damaged entry is removed and its
/// network trained again.
public final class TrainingStore: @unchecked Sendable {
    public let root: URL

    public init(root: URL) { self.root = root.standardizedFileURL }

    var entriesURL: URL { root.appendingPathComponent("trainings") }
    var temporaryURL: URL { root.appendingPathComponent("tmp") }
    func entryURL(_ key: String) -> URL { entriesURL.appendingPathComponent(key) }

    /// The record of `key`'s entry, unchecked against its checkpoint (for plans and listings).
    public func record(_ key: String) -> StoredTraining? {
        guard TrainingStore.isKey(key) else { return nil }
        let url = entryURL(key).appendingPathComponent(TrainingStore.recordName)
        guard let size = (try? FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int) ?? nil, size <= TrainingStore.maxRecordBytes,
              let record = (try? Data(contentsOf: url)).flatMap({ try? JSONDecoder.store.decode(StoredTraining.self, from: $0) }),
              record.key == key, record.problem == nil else { return nil }
        return record
    }

    /// Whether an entry of `key` is there (unchecked: `lookup` checks it).
    public func holds(_ key: String) -> Bool { TrainingStore.isKey(key) && FileManager.default.fileExists(atPath: entryURL(key).path) }

    static let checkpointName = "checkpoint.safetensors"
    static let recordName = "entry.json"
    /// An entry.json larger than this is not one of ours.
    static let maxRecordBytes = 4 << 20

    /// What the store holds for a key.
    public enum Lookup {
        case hit(StoredTraining, checkpoint: Data)
        case miss
        /// An entry was there but failed its checks; it has been removed (the reason says why).
        case damaged(String)
    }

    /// The entry of `key`, checked: its record names `key` and this engine's bits, and the
    /// checkpoint has the recorded length and content hash. A hit marks the entry as used now
    /// (what `prune --older-than` goes by); on a read-only store that mark is skipped.
    public func lookup(_ key: String) -> Lookup {
        guard TrainingStore.isKey(key) else { return .miss }
        let dir = entryURL(key)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir.path, isDirectory: &isDirectory) else { return .miss }
        let problem: String
        do {
            let (record, bytes) = try read(dir)
            if record.key != key {
                problem = "its record names key \(record.key.prefix(12))"
            } else if record.bitsVersion != TrainingIdentity.bitsVersion || record.engine != TrainingIdentity.engine {
                problem = "it was made by another engine (bits \(record.bitsVersion), \(record.engine))"
            } else {
                try? FileManager.default.setAttributes([.modificationDate: Date()], ofItemAtPath: dir.path)
                return .hit(record, checkpoint: bytes)
            }
        } catch {
            problem = "\(error)"
        }
        remove(dir)
        return .damaged("training store entry \(dir.path) is damaged (\(SafeText.terminal(problem))); removed, the network is trained again")
    }

    /// The entry's record and checkpoint bytes, with the checkpoint's length and hash checked
    /// against the record.
    func read(_ dir: URL) throws -> (StoredTraining, Data) {
        let recordURL = dir.appendingPathComponent(TrainingStore.recordName)
        let size = (try? FileManager.default.attributesOfItem(atPath: recordURL.path)[.size] as? Int) ?? nil
        guard let size else { throw RunError(path: recordURL.path, message: "missing") }
        guard size <= TrainingStore.maxRecordBytes else { throw RunError(path: recordURL.path, message: "\(size) bytes, more than a record holds") }
        let record: StoredTraining
        do { record = try JSONDecoder.store.decode(StoredTraining.self, from: Data(contentsOf: recordURL)) } catch {
            throw RunError(path: recordURL.path, message: "not a training record")
        }
        if let problem = record.problem { throw RunError(path: recordURL.path, message: problem) }
        let checkpointURL = dir.appendingPathComponent(TrainingStore.checkpointName)
        let stored = (try? FileManager.default.attributesOfItem(atPath: checkpointURL.path)[.size] as? Int) ?? nil
        guard stored == record.bytes else {
            throw RunError(path: checkpointURL.path, message: stored.map { "\($0) bytes where \(record.bytes) were stored" } ?? "missing")
        }
        let bytes = try Data(contentsOf: checkpointURL)
        guard bytes.count == record.bytes, contentHash(bytes) == record.checksum else {
            throw RunError(path: checkpointURL.path, message: "its bytes do not have their recorded hash")
        }
        return (record, bytes)
    }

    /// Adds an entry: both files written and fsynced under tmp/, then the directory renamed into
    /// place. An entry already there (another sweep stored the same training meanwhile) is kept.
    public func store(_ record: StoredTraining, checkpoint: Data) throws {
        guard TrainingStore.isKey(record.key), record.bytes == checkpoint.count, record.checksum == contentHash(checkpoint) else {
            throw RunError(path: root.path, message: "refusing to store an entry whose record does not describe its checkpoint")
        }
        let fm = FileManager.default
        try fm.createDirectory(at: entriesURL, withIntermediateDirectories: true)
        try fm.createDirectory(at: temporaryURL, withIntermediateDirectories: true)
        let staging = temporaryURL.appendingPathComponent("\(record.key).\(getpid()).\(UInt32.random(in: 0...UInt32.max))")
        defer { remove(staging) }
        try fm.createDirectory(at: staging, withIntermediateDirectories: false)
        try TrainingStore.writeDurably(checkpoint, to: staging.appendingPathComponent(TrainingStore.checkpointName))
        try TrainingStore.writeDurably(try JSONEncoder.store.encode(record), to: staging.appendingPathComponent(TrainingStore.recordName))
        let destination = entryURL(record.key)
        if rename(staging.path, destination.path) != 0 {
            let code = errno
            // ENOTEMPTY / EEXIST: the same training is stored already (identical bits).
            guard code == ENOTEMPTY || code == EEXIST else {
                throw RunError(path: destination.path, message: String(cString: strerror(code)))
            }
        }
        TrainingStore.syncDirectory(entriesURL)
    }

    /// Writes `data` to a new file and fsyncs it; a short write (a full disk) throws.
    static func writeDurably(_ data: Data, to url: URL) throws {
        let fd = open(url.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw RunError(path: url.path, message: String(cString: strerror(errno))) }
        defer { close(fd) }
        var offset = 0
        try data.withUnsafeBytes { raw in
            while offset < raw.count {
                let n = write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw RunError(path: url.path, message: String(cString: strerror(errno)))
                }
                offset += n
            }
        }
        guard fsync(fd) == 0 else { throw RunError(path: url.path, message: String(cString: strerror(errno))) }
    }

    static func syncDirectory(_ url: URL) {
        let fd = open(url.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        fsync(fd)
        close(fd)
    }

    /// Removes a directory whatever it holds (an entry, a staging copy); a failure (a read-only
    /// store) leaves it.
    func remove(_ dir: URL) { try? FileManager.default.removeItem(at: dir) }

    static func isKey(_ text: String) -> Bool { ContentHash.isValid(text) }

    // MARK: - Listing and pruning

    /// One entry as `sweep cache list` shows it.
    public struct Listed {
        public let key: String
        public let record: StoredTraining?
        /// Bytes on disk (both files).
        public let bytes: Int
        /// When a sweep last took it (or stored it).
        public let lastUsed: Date
    }

    /// Every entry, most recently used first; an entry whose record cannot be read is listed
    /// without one (`prune` and `remove` still see it).
    public func list() -> [Listed] {
        let fm = FileManager.default
        guard let names = try? fm.contentsOfDirectory(atPath: entriesURL.path) else { return [] }
        return names.compactMap { name -> Listed? in
            let dir = entriesURL.appendingPathComponent(name)
            guard let attributes = try? fm.attributesOfItem(atPath: dir.path), attributes[.type] as? FileAttributeType == .typeDirectory else { return nil }
            let files = (try? fm.contentsOfDirectory(atPath: dir.path)) ?? []
            let bytes = files.reduce(0) { $0 + ((try? fm.attributesOfItem(atPath: dir.appendingPathComponent($1).path)[.size] as? Int) ?? nil ?? 0) }
            let recordURL = dir.appendingPathComponent(TrainingStore.recordName)
            let small = ((try? fm.attributesOfItem(atPath: recordURL.path)[.size] as? Int) ?? nil).map { $0 <= TrainingStore.maxRecordBytes } ?? false
            let record = small ? (try? Data(contentsOf: recordURL)).flatMap { try? JSONDecoder.store.decode(StoredTraining.self, from: $0) } : nil
            return Listed(key: name, record: record, bytes: bytes, lastUsed: attributes[.modificationDate] as? Date ?? .distantPast)
        }.sorted { ($0.lastUsed, $0.key) > ($1.lastUsed, $1.key) }
    }

    /// Removes the entries whose keys start with one of `prefixes` (at least 4 hex digits each);
    /// returns the keys removed.
    @discardableResult
    public func remove(prefixes: [String]) throws -> [String] {
        let listed = list()
        var removed: [String] = []
        for prefix in prefixes {
            let matches = listed.filter { $0.key.hasPrefix(prefix) }
            guard !matches.isEmpty else { throw RunError(path: root.path, message: "no entry's key starts with \(SafeText.terminal(prefix))") }
            for entry in matches where !removed.contains(entry.key) {
                try FileManager.default.removeItem(at: entryURL(entry.key))
                removed.append(entry.key)
            }
        }
        return removed
    }

    /// Removes entries unused for longer than `olderThan`, then the least recently used until
    /// the store holds at most `maxBytes`; also leftovers of interrupted writes under tmp/.
    /// Returns the entries removed and the bytes freed.
    public func prune(olderThan: TimeInterval?, maxBytes: Int?, now: Date = Date()) throws -> (removed: [Listed], freed: Int) {
        var kept = list()
        var removed: [Listed] = []
        if let olderThan {
            for entry in kept where now.timeIntervalSince(entry.lastUsed) > olderThan { removed.append(entry) }
            kept.removeAll { e in removed.contains { $0.key == e.key } }
        }
        if let maxBytes {
            var total = kept.reduce(0) { $0 + $1.bytes }
            while total > maxBytes, let oldest = kept.popLast() {
                removed.append(oldest)
                total -= oldest.bytes
            }
        }
        for entry in removed { try FileManager.default.removeItem(at: entryURL(entry.key)) }
        // A staging directory older than a day belongs to a write that died.
        for name in (try? FileManager.default.contentsOfDirectory(atPath: temporaryURL.path)) ?? [] {
            let url = temporaryURL.appendingPathComponent(name)
            if let date = try? FileManager.default.attributesOfItem(atPath: url.path)[.modificationDate] as? Date, now.timeIntervalSince(date) > 86_400 {
                remove(url)
            }
        }
        return (removed, removed.reduce(0) { $0 + $1.bytes })
    }
}

extension TrainingStore {
    /// The store a run uses: none with `--no-cache`; else the sweep file's `cache:`, else
    /// `LAYERSWEEP_CACHE`, else `$XDG_CACHE_HOME/layersweep` or `~/.cache/layersweep`. "off" in
    /// the file or the variable turns it off.
    public static func resolve(disabled: Bool, setting: String?,
                               environment: [String: String] = ProcessInfo.processInfo.environment) -> TrainingStore? {
        if disabled { return nil }
        func given(_ name: String) -> String? { environment[name].flatMap { $0.isEmpty ? nil : $0 } }
        if let chosen = setting ?? given("LAYERSWEEP_CACHE") {
            if ["off", "false", "no"].contains(chosen.lowercased()) { return nil }
            return TrainingStore(root: URL(fileURLWithPath: (chosen as NSString).expandingTildeInPath))
        }
        let base = given("XDG_CACHE_HOME") ?? (given("HOME") ?? NSHomeDirectory()) + "/.cache"
        return TrainingStore(root: URL(fileURLWithPath: base).appendingPathComponent("layersweep"))
    }
}

/// An entry's record (entry.json): what was trained, by which engine, where, and what its
/// training task reported.
public struct StoredTraining: Codable, Sendable {
    /// `TrainingIdentity.key`.
    public var key: String
    /// `contentHash` of the checkpoint, and its length.
    public var checksum: String
    public var bytes: Int
    public var bitsVersion: Int
    public var engine: String
    /// The task that trained it: its key, dataset, model and seed index.
    public var task: String
    public var dataset: String
    public var model: String
    public var seedIndex: Int
    /// The training settings, as a sweep file writes them (for `sweep cache show`).
    public var training: String
    /// Where it was trained: the sweep's name, its run directory and the host.
    public var sweep: String
    public var run: String
    public var host: String
    public var created: Date
    /// What the training task reported (its accuracy, losses, measures; the checkpoint hash).
    public var outcome: TaskOutcome

    public init(key: String, checksum: String, bytes: Int, bitsVersion: Int, engine: String, task: String, dataset: String, model: String,
                seedIndex: Int, training: String, sweep: String, run: String, host: String, created: Date, outcome: TaskOutcome) {
        (self.key, self.checksum, self.bytes, self.bitsVersion, self.engine) = (key, checksum, bytes, bitsVersion, engine)
        (self.task, self.dataset, self.model, self.seedIndex, self.training) = (task, dataset, model, seedIndex, training)
        (self.sweep, self.run, self.host, self.created, self.outcome) = (sweep, run, host, created, outcome)
    }

    /// What no stored record could hold.
    var problem: String? {
        guard TrainingStore.isKey(key) else { return "key '\(SafeText.terminal(key))' is not a store key" }
        guard ContentHash.isValid(checksum), outcome.checkpoint == checksum else { return "its checksum and outcome disagree" }
        guard bytes > 0, bytes < 1 << 40 else { return "its size \(bytes) is not a checkpoint's" }
        guard outcome.status == .ok else { return "it records a training that did not finish" }
        return outcome.problem
    }

    /// How a row names where its network came from: the entry and the run that trained it.
    public var origin: String {
        "store \(key.prefix(12)), \(StoredTraining.trainedBy) sweep \(sweep) in \(run) on \(host), \(ISO8601DateFormatter().string(from: created))"
    }

    private static let trainedBy = "trained by"

    /// "sweep NAME in RUN" of an `origin` text (the whole text if it is not one).
    public static func runOf(_ origin: String) -> String {
        guard let start = origin.range(of: trainedBy + " ")?.upperBound, let end = origin.range(of: " on ", options: .backwards)?.lowerBound,
              start < end else { return origin }
        return String(origin[start..<end])
    }
}

extension JSONEncoder {
    /// Stable, readable store records.
    static var store: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .prettyPrinted]
        e.dateEncodingStrategy = .iso8601
        e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return e
    }
}

extension JSONDecoder {
    static var store: JSONDecoder {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .iso8601
        d.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return d
    }
}

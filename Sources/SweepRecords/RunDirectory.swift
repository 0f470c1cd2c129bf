import Foundation
import Models
import SweepFile
import TensorEngine

/// The program version written into journals and results.
public let layersweepVersion = "0.1.0"

/// A run's directory: spec.yaml (a copy of the sweep file), journal.jsonl, checkpoints/,
/// results.csv, results.json. Every write but the journal's goes to a temp file and is renamed.
public struct RunDirectory: Sendable {
    public let url: URL

    public init(_ path: String) { url = URL(fileURLWithPath: path).standardizedFileURL }

    public var journalURL: URL { url.appendingPathComponent("journal.jsonl") }
    public var specURL: URL { url.appendingPathComponent("spec.yaml") }
    public var checkpointsURL: URL { url.appendingPathComponent("checkpoints") }
    /// The report's figures (SVG) and tables (CSV, LaTeX), one file each.
    public var figuresURL: URL { url.appendingPathComponent("figures") }
    public var resultsCSV: URL { url.appendingPathComponent("results.csv") }
    public var resultsJSON: URL { url.appendingPathComponent("results.json") }
    public var reportURL: URL { url.appendingPathComponent("report.html") }

    public func checkpointURL(_ hash: String) -> URL { checkpointsURL.appendingPathComponent("\(hash).safetensors") }
    public var snapshotsURL: URL { url.appendingPathComponent("snapshots") }
    /// Where the latest epoch snapshot of an unfinished training lives (named by its key's hash).
    public func snapshotURL(_ key: String) -> URL { snapshotsURL.appendingPathComponent("\(contentHash(Data(key.utf8))).safetensors") }

    /// The epoch snapshot of task `key`, if one is stored and readable; an unreadable one (a
    /// damaged disk) is removed, so the training starts afresh rather than failing.
    public func loadSnapshot(_ key: String, log: (String) -> Void) -> Data? {
        let url = snapshotURL(key)
        guard let data = FileManager.default.contents(atPath: url.path) else { return nil }
        if let file = try? SafeTensorsFile.decode(data, file: url.path), file.metadata["layersweep.snapshot.key"] == key { return data }
        try? FileManager.default.removeItem(at: url)
        log("\(url.path): unreadable epoch snapshot of \(key) removed; that training starts from the beginning")
        return nil
    }

    public static func specHash(_ text: String) -> String { String(StableHash.of(text), radix: 16) }

    /// Claims a fresh run directory for `specText`: creates it, locks it, writes spec.yaml and
    /// the journal's header. Refuses a directory that holds a journal (nothing of an earlier run is
    /// ever overwritten) or anything that is not ours (an `output:` pointing at someone's files).
    /// With `continueExisting`, a journal of this very sweep is continued instead (job scripts
    /// that may restart); the caller then resumes it.
    @discardableResult
    public func create(specText: String, sweep: String, continueExisting: Bool = false) throws -> (lock: RunLock, existing: Bool) {
        let fm = FileManager.default
        try OutputPath.ensureDirectory(url)
        let lock = try RunLock(directory: url)
        if fm.fileExists(atPath: journalURL.path) {
            let other = (try? Journal.read(journalURL).header)
            if let other, other.specHash == RunDirectory.specHash(specText) {
                if continueExisting, fm.fileExists(atPath: specURL.path) { return (lock, true) }
                throw RunError(path: url.path, message: "already holds this sweep's journal; continue it with: sweep run --resume \(url.path)")
            }
            throw RunError(path: url.path, message: "holds the journal of another sweep ('\(other?.sweep ?? "unknown")'); choose another output directory (--output) or resume that one with --resume")
        }
        let foreign = try unexpectedEntries(specText: specText)
        guard foreign.isEmpty else {
            let listed = foreign.prefix(4).joined(separator: ", ") + (foreign.count > 4 ? ", ..." : "")
            throw RunError(path: url.path, message: "is not empty and holds no layersweep run (\(listed)); choose a new or empty output directory")
        }
        try fm.createDirectory(at: checkpointsURL, withIntermediateDirectories: true)
        try Data(specText.utf8).write(to: specURL, options: .atomic)
        try Journal.create(at: journalURL, header: JournalHeader(sweep: sweep, specHash: RunDirectory.specHash(specText), version: layersweepVersion))
        return (lock, false)
    }

    /// Claims an existing run for `--resume`: locks it and checks it is a layersweep run.
    public func claimForResume() throws -> RunLock {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            throw RunError(path: url.path, message: "no such run directory")
        }
        guard isDirectory.boolValue else { throw RunError(path: url.path, message: "is a file, not a run directory") }
        guard FileManager.default.fileExists(atPath: journalURL.path) else {
            throw RunError(path: url.path, message: "not a layersweep run directory (no journal.jsonl)")
        }
        return try RunLock(directory: url)
    }

    /// Entries that a fresh run must not overwrite: anything but the lock, and the spec and empty
    /// checkpoints folder of an earlier attempt at this same sweep that stopped before its journal.
    private func unexpectedEntries(specText: String) throws -> [String] {
        let fm = FileManager.default
        return try fm.contentsOfDirectory(atPath: url.path).sorted().filter { name in
            switch name {
            case RunLock.fileName: return false
            case "spec.yaml": return fm.contents(atPath: specURL.path) != Data(specText.utf8)
            case "checkpoints": return !((try? fm.contentsOfDirectory(atPath: checkpointsURL.path))?.isEmpty ?? false)
            default: return true
            }
        }
    }

    /// Removes the temporary files of atomic writes that a crash interrupted (Foundation names
    /// them `.dat.nosync…` next to their target) from checkpoints/ and snapshots/.
    public func removeTornWrites() {
        let fm = FileManager.default
        for folder in [checkpointsURL, snapshotsURL] {
            for name in (try? fm.contentsOfDirectory(atPath: folder.path)) ?? [] where name.hasPrefix(".dat.nosync") {
                try? fm.removeItem(at: folder.appendingPathComponent(name))
            }
        }
    }

    /// The sweep file text of an existing run, for `--resume`.
    public func storedSpecText() throws -> String {
        guard let data = FileManager.default.contents(atPath: specURL.path) else {
            throw RunError(path: url.path, message: FileManager.default.fileExists(atPath: url.path)
                ? "not a run directory (no spec.yaml)" : "no such run directory")
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// Writes results.csv, results.json, results.jsonl and the study's own files atomically.
    public func writeResults(_ document: ResultTable.Document) throws {
        let study = document.spec.recordedStudy
        try Data(ResultTable.csv(document.rows, study: study).utf8).write(to: resultsCSV, options: .atomic)
        try ResultTable.json(document).write(to: resultsJSON, options: .atomic)
        try ResultTable.jsonLines(document.rows).write(to: resultsJSONL, options: .atomic)
        for file in study.extraFiles(document.rows, statistics: document.spec.statistics) { try file.data.write(to: url.appendingPathComponent(file.name), options: .atomic) }
    }

    /// `error`, from a write into this run, told as a full disk when it is one: the file, that
    /// nothing journaled is lost, and how to go on (Foundation's own text is a bare
    /// `NSCocoaErrorDomain Code=640`). Other errors are returned as they are.
    public func explainingWriteFailure(_ error: Error, path: URL? = nil) -> Error {
        guard RunDirectory.isOutOfSpace(error) else { return error }
        let written = path?.path ?? ((error as NSError).userInfo[NSFilePathErrorKey] as? String) ?? url.path
        return RunError(path: written, message: "no space left on its device; every result journaled so far is kept: free space, then continue with: sweep run --resume \(url.path)")
    }

    /// ENOSPC or EDQUOT, as Foundation or POSIX reports it, or beneath another error.
    static func isOutOfSpace(_ error: Error) -> Bool {
        let e = error as NSError
        if e.domain == NSCocoaErrorDomain, e.code == CocoaError.fileWriteOutOfSpace.rawValue { return true }
        if e.domain == NSPOSIXErrorDomain, e.code == Int(ENOSPC) || e.code == Int(EDQUOT) { return true }
        if let posix = error as? POSIXError, posix.code == .ENOSPC || posix.code == .EDQUOT { return true }
        return (e.userInfo[NSUnderlyingErrorKey] as? Error).map(isOutOfSpace) ?? false
    }

    /// What the running coordinator is doing (`RunStatus`).
    public var statusURL: URL { url.appendingPathComponent("status.json") }

    /// One result row per line (`pandas.read_json(path, lines=True)`).
    public var resultsJSONL: URL { url.appendingPathComponent("results.jsonl") }

    /// Every results file a run writes for `study`, in the order `sweep report` lists them.
    public func resultFiles(study: any StudyRecords.Type) -> [URL] {
        [reportURL, resultsCSV, resultsJSON, resultsJSONL] + study.extraFiles([], statistics: StatisticsSection()).map { url.appendingPathComponent($0.name) }
    }

    /// Content hashes of the networks the sweep imports, by path (`ImportedNetworks`).
    public var importsURL: URL { url.appendingPathComponent("imports.json") }

    /// What the coordinator found in the sweep's own-data files (`ImportedDatasets`).
    public var datasetsURL: URL { url.appendingPathComponent("datasets.json") }

    /// The per-unit statistics over seeds (units.csv), for a study that summarises its units.
    public var unitsCSV: URL { url.appendingPathComponent("units.csv") }
}

/// Content hash of checkpoint bytes (two independent 64-bit FNV-1a streams): names cached and
/// stored checkpoints, so identical bytes are shipped and stored once.
public func contentHash(_ data: Data) -> String {
    var a: UInt64 = 0xCBF2_9CE4_8422_2325, b: UInt64 = 0x84222325CBF29CE4
    data.withUnsafeBytes { raw in
        for byte in raw.bindMemory(to: UInt8.self) {
            a = (a ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
            b = (b ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 ^ (b >> 29)
        }
    }
    return String(format: "%016llx%016llx", StableHash.combine(a, UInt64(data.count)), StableHash.combine(b, 0x9E37))
}

import Foundation

/// The first line of a journal: which sweep it belongs to.
public struct JournalHeader: Codable, Equatable, Sendable {
    public var journal = "layersweep"
    public var format = 1
    public var sweep: String
    /// Hash of the sweep file's text: a resume must run the same sweep.
    public var specHash: String
    public var version: String

    public init(sweep: String, specHash: String, version: String) {
        self.sweep = sweep
        self.specHash = specHash
        self.version = version
    }
}

/// An append-only log of finished tasks, one JSON line each, fsynced before the coordinator
/// acts on them: whatever happens to the ranks afterwards, a journaled result is kept.
public final class Journal {
    public let url: URL
    private let handle: FileHandle
    private let encoder = Journal.makeEncoder()

    /// Opens (creating with `header` if new) the journal at `url` for appending. A torn last line
    /// (a crash or a full disk mid-write) is cut off first, so the next record starts on a line of
    /// its own instead of fusing with the fragment.
    public init(url: URL, header: JournalHeader) throws {
        self.url = url
        if !FileManager.default.fileExists(atPath: url.path) { try Journal.create(at: url, header: header) }
        handle = try FileHandle(forUpdating: url)
        try Journal.repairTail(handle, url: url)
        try handle.seekToEnd()
    }

    /// Writes a journal holding only `header`, atomically.
    public static func create(at url: URL, header: JournalHeader) throws {
        var line = try makeEncoder().encode(header)
        line.append(0x0A)
        try line.write(to: url, options: .atomic)
    }

    /// Makes the file end with a newline: a final fragment that is a whole record gets its
    /// newline, anything else after the last newline is truncated away.
    private static func repairTail(_ handle: FileHandle, url: URL) throws {
        let size = try handle.seekToEnd()
        guard size > 0 else { throw RunError(path: url.path, message: "is empty: not a layersweep journal") }
        // Records are short; read back far enough to find the last newline.
        var window: UInt64 = 1 << 16
        while true {
            let start = size > window ? size - window : 0
            try handle.seek(toOffset: start)
            let tail = try handle.readToEnd() ?? Data()
            if tail.last == 0x0A { return }
            if let newline = tail.lastIndex(of: 0x0A) {
                let fragment = tail[(newline + 1)...]
                if (try? makeDecoder().decode(TaskRecord.self, from: Data(fragment))) != nil {
                    try handle.seekToEnd()
                    try handle.write(contentsOf: Data([0x0A]))
                } else {
                    try handle.truncate(atOffset: start + UInt64(newline - tail.startIndex) + 1)
                }
                try handle.synchronize()
                return
            }
            guard start > 0 else { throw RunError(path: url.path, message: "its header line is incomplete: not a layersweep journal") }
            window *= 4
        }
    }

    deinit { try? handle.close() }

    /// Appends records and fsyncs once (a group commit when several results arrive together).
    public func append(_ records: [TaskRecord]) throws {
        guard !records.isEmpty else { return }
        var data = Data()
        for r in records {
            data.append(try encoder.encode(r))
            data.append(0x0A)
        }
        try handle.write(contentsOf: data)
        try handle.synchronize()
        commits += 1
    }

    /// How many fsyncs `append` has made (a measure of the group commit).
    public private(set) var commits = 0

    /// Reads a journal: its header and every complete record. A torn last line (a crash in the
    /// middle of a write) is ignored; any other unreadable line is an error naming its number.
    /// `study` reads its outcome measures from lines that do not name their type (0.1.0's).
    public static func read(_ url: URL, study: (any SweepStudy.Type)? = nil) throws -> (header: JournalHeader, records: [TaskRecord]) {
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw RunError(path: url.path, message: "no journal here")
        }
        let lines = data.split(separator: 0x0A, omittingEmptySubsequences: false)
        let decoder = makeDecoder()
        if let measures = study?.measures { decoder.userInfo[TaskOutcome.measuresKey] = measures }
        guard let first = lines.first, let header = try? decoder.decode(JournalHeader.self, from: Data(first)) else {
            throw RunError(path: url.path, message: "line 1 is not a layersweep journal header")
        }
        var records: [TaskRecord] = []
        for (i, line) in lines.enumerated().dropFirst() where !line.isEmpty {
            do {
                records.append(try decoder.decode(TaskRecord.self, from: Data(line)))
            } catch {
                let isLast = i == lines.count - 1
                if isLast { break }  // torn final write: no newline after it
                throw RunError(path: url.path, message: "line \(i + 1) is not a task record (remove that line to keep the rest of the run)")
            }
        }
        return (header, records)
    }

    /// Shared coders (JSON with ISO-8601 dates and non-finite numbers as strings).
    public static let encoder = makeEncoder()
    public static let decoder = makeDecoder()

    static func makeEncoder() -> JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        e.dateEncodingStrategy = .iso8601
        e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return e
    }

    static func makeDecoder() -> JSONDecoder {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .iso8601
        d.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return d
    }
}

/// A run directory or journal problem, naming the path.
public struct RunError: Error, CustomStringConvertible, Equatable {
    public let path: String
    public let message: String

    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }

    public var description: String { "\(path): \(message)" }
}

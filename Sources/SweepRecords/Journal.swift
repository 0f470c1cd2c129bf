import Foundation
import Rendering
import SweepFile

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
    private let encoder = SweepJSON.makeEncoder()

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
        var line = try SweepJSON.makeEncoder().encode(header)
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
                if (try? SweepJSON.makeDecoder().decode(TaskRecord.self, from: Data(fragment))) != nil {
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
        do {
            try handle.write(contentsOf: data)
            try handle.synchronize()
        } catch {
            throw RunDirectory(url.deletingLastPathComponent().path).explainingWriteFailure(error, path: url)
        }
        commits += 1
    }

    /// How many fsyncs `append` has made (a measure of the group commit).
    public private(set) var commits = 0

    /// A journal line that is no task record (edited, or written by a broken build): its
    /// number, its bytes and why.
    public struct RejectedLine: Equatable, Sendable {
        public let number: Int
        public let text: Data
        public let reason: String
    }

    /// Reads a journal: its header, every complete record, and the lines that are not records.
    /// A torn last line (a crash in the middle of a write) is ignored; any other line that does
    /// not decode, or whose numbers no task could have reported, is rejected: its task has no
    /// result and runs again (`setAside` moves such lines out of the journal).
    /// `study` reads its outcome measures from lines that do not name their type (0.1.0's).
    public static func read(_ url: URL, study: (any StudyRecords.Type)? = nil) throws
        -> (header: JournalHeader, records: [TaskRecord], rejected: [RejectedLine]) {
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw RunError(path: url.path, message: "no journal here")
        }
        let lines = data.split(separator: 0x0A, omittingEmptySubsequences: false)
        let decoder = SweepJSON.makeDecoder()
        if let measures = study?.measures { decoder.userInfo[TaskOutcome.measuresKey] = measures }
        guard let first = lines.first, let header = try? decoder.decode(JournalHeader.self, from: Data(first)) else {
            throw RunError(path: url.path, message: "line 1 is not a layersweep journal header")
        }
        var records: [TaskRecord] = []
        var rejected: [RejectedLine] = []
        for (i, line) in lines.enumerated().dropFirst() where !line.isEmpty {
            do {
                records.append(try decoder.decode(TaskRecord.self, from: Data(line)))
            } catch {
                let isLast = i == lines.count - 1
                if isLast { break }  // torn final write: no newline after it
                rejected.append(RejectedLine(number: i + 1, text: Data(line), reason: reason(error)))
            }
        }
        return (header, records, rejected)
    }

    /// One line on why a record did not decode.
    private static func reason(_ error: Error) -> String {
        switch error {
        case DecodingError.dataCorrupted(let context) where context.codingPath.isEmpty: return context.debugDescription
        case DecodingError.dataCorrupted(let context), DecodingError.keyNotFound(_, let context),
             DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            return path.isEmpty ? "not a task record" : "field \(path): \(context.debugDescription)"
        default: return "not a task record"
        }
    }

    /// Moves `rejected` lines out of the journal at `url` into `journal.rejected.jsonl` beside it
    /// (appended, each with its reason), rewriting the journal atomically without them.
    public static func setAside(_ rejected: [RejectedLine], of url: URL) throws {
        guard !rejected.isEmpty else { return }
        guard let data = FileManager.default.contents(atPath: url.path) else { throw RunError(path: url.path, message: "no journal here") }
        let numbers = Set(rejected.map(\.number))
        // Every other byte stays as it was (a torn last line stays torn, for `repairTail`).
        let pieces = data.split(separator: 0x0A, omittingEmptySubsequences: false).enumerated().filter { !numbers.contains($0.offset + 1) }
        let kept = Data(pieces.map(\.element).joined(separator: [0x0A]))
        let aside = url.deletingLastPathComponent().appendingPathComponent("journal.rejected.jsonl")
        var note = Data()
        for r in rejected {
            note.append(Data("# line \(r.number): \(SafeText.terminal(r.reason))\n".utf8))
            note.append(r.text)
            note.append(0x0A)
        }
        if !FileManager.default.fileExists(atPath: aside.path) { try Data().write(to: aside) }
        let handle = try FileHandle(forWritingTo: aside)
        defer { try? handle.close() }
        try handle.seekToEnd()
        try handle.write(contentsOf: note)
        try handle.synchronize()
        try kept.write(to: url, options: .atomic)
    }
}

import Foundation
#if canImport(Glibc)
import Glibc
import Procedures
import SweepFile
#endif

/// What a running sweep is doing, as its coordinator last wrote it (`status.json`, every few
/// seconds): `sweep status RUN_DIR` shows it from any shell that sees the run directory, e.g.
/// the login node of a cluster whose job runs elsewhere.
public struct RunStatus: Codable, Equatable, Sendable {
    public struct Running: Codable, Equatable, Sendable {
        public var rank: Int
        public var key: String
        public var started: Date
        /// The task's latest progress line (a training's epoch), if it sent one.
        public var progress: String?

        public init(rank: Int, key: String, started: Date, progress: String?) {
            self.rank = rank
            self.key = key
            self.started = started
            self.progress = progress
        }
    }

    public var updated: Date
    public var journaled: Int
    public var total: Int
    public var running: [Running]
    public var etaSeconds: Double?

    public init(updated: Date, journaled: Int, total: Int, running: [Running], etaSeconds: Double?) {
        self.updated = updated
        self.journaled = journaled
        self.total = total
        self.running = running
        self.etaSeconds = etaSeconds
    }

    public func write(to run: RunDirectory) throws {
        try SweepJSON.makeEncoder().encode(self).write(to: run.statusURL, options: .atomic)
    }

    public static func read(_ run: RunDirectory) -> RunStatus? {
        guard let data = FileManager.default.contents(atPath: run.statusURL.path) else { return nil }
        return try? SweepJSON.decoder.decode(RunStatus.self, from: data)
    }

    /// The lines `sweep status` prints: what is done, what runs (with its latest progress), and
    /// whether a process still holds the run.
    public static func describe(_ run: RunDirectory, now: Date = Date()) throws -> [String] {
        guard FileManager.default.fileExists(atPath: run.journalURL.path) else {
            throw RunError(path: run.url.path, message: "holds no layersweep run (no journal.jsonl)")
        }
        let (_, records, rejected) = try Journal.read(run.journalURL)
        let holder = RunLock.holder(of: run.url)
        let status = read(run)
        var lines: [String] = []
        let latest = Dictionary(records.map { ($0.key, $0.outcome.status) }, uniquingKeysWith: { _, b in b })
        let failed = latest.values.filter { $0 == .failed }.count
        let state: String
        if let holder {
            state = "running (\(holder))"
        } else if let total = status?.total, latest.count >= total, rejected.isEmpty {
            state = failed > 0 ? "finished with \(failed) failed (after fixing the cause: sweep run --resume \(run.url.path) --retry-failed)"
                               : "finished (report: \(run.reportURL.path))"
        } else {
            state = "not running (continue with: sweep run --resume \(run.url.path))"
        }
        lines.append("\(run.url.path): \(latest.count)\(status.map { " of \($0.total)" } ?? "") tasks journaled, \(state)")
        if !rejected.isEmpty {
            lines.append("\(rejected.count) journal line\(rejected.count == 1 ? " is" : "s are") not task records (line \(rejected.map { String($0.number) }.joined(separator: ", "))); "
                         + "a resume moves them to journal.rejected.jsonl and runs their tasks again")
        }
        if let status, holder != nil {
            let age = now.timeIntervalSince(status.updated)
            lines.append("as of \(DurationText.of(age)) ago\(status.etaSeconds.map { "; ETA \(DurationText.of($0))" } ?? ""); \(status.running.count) running:")
            for r in status.running.sorted(by: { $0.rank < $1.rank }) {
                lines.append("  rank \(r.rank)  \(r.key)  for \(DurationText.of(now.timeIntervalSince(r.started)))" + (r.progress.map { "  \($0)" } ?? ""))
            }
        }
        return lines
    }
}

extension RunLock {
    /// Who holds `directory`'s run lock (its recorded pid, host and time), or nil when nobody does.
    public static func holder(of directory: URL) -> String? {
        let path = directory.appendingPathComponent(fileName).path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        if flock(fd, LOCK_SH | LOCK_NB) == 0 {
            flock(fd, LOCK_UN)
            return nil
        }
        return (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "a sweep process"
    }
}

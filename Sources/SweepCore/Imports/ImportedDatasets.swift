import Datasets
import Foundation
import SweepFile
import SweepRecords
import Synchronization

/// Datasets read from the user's own files (`format:` entries). The coordinator reads each once
/// when a run starts, fingerprints what it decoded (after preprocessing) and records the
/// fingerprint in the entry's `summary`: task keys carry it, so a resumed run whose files have
/// changed runs the tasks again instead of mixing results. Workers read the same files and
/// check the fingerprint, or receive the decoded bytes from rank 0 when they cannot.
public enum ImportedDatasets {
    /// Decoded raw splits by fingerprint, shared by every worker thread of this process.
    private static let cache = Mutex<[String: (train: Dataset, test: Dataset)]>([:])

    /// Reads every `format:` entry of `spec` and fills the summaries of it and of the entries
    /// derived from it. With `recorded`, a run directory's summaries are taken as they are
    /// (`sweep report` shows what the run measured, whatever the files hold now).
    public static func read(_ spec: inout SweepSpec, recorded run: RunDirectory? = nil) throws {
        let previous = run.map(recordedSummaries) ?? [:]
        var summaries: [String: DatasetSummary] = [:]
        for entry in spec.datasets where entry.format != nil {
            if let known = previous[entry.name] {
                summaries[entry.name] = known
                continue
            }
            let (train, test) = try load(entry)
            let summary = summarise(entry, train: train, test: test)
            cache.withLock { $0[summary.fingerprint] = (train, test) }
            summaries[entry.name] = summary
        }
        for i in spec.datasets.indices {
            guard let source = spec.sourceEntry(of: spec.datasets[i]) else { continue }
            spec.datasets[i].summary = summaries[source.name]
            // Classes of own data are known only now: a derived entry's are checked here, not mid-run.
            if let classes = spec.datasets[i].classes, let available = summaries[source.name]?.classes,
               classes.count < 2 || Set(classes).count != classes.count || !classes.allSatisfy({ (0..<available).contains($0) }) {
                throw RunError(path: "datasets[\(i)].classes", message: "must list at least two distinct classes of \(source.name), each in 0...\(available - 1)")
            }
        }
    }

    /// Reads the files again where `run` recorded summaries, and says which changed since.
    public static func reread(_ spec: inout SweepSpec, run: RunDirectory, log: (String) -> Void) throws {
        let previous = recordedSummaries(run)
        try read(&spec)
        for entry in spec.datasets where entry.format != nil {
            if let old = previous[entry.name], let new = entry.summary, old.fingerprint != new.fingerprint {
                log("warning: dataset \(entry.name): its files changed since this run started (fingerprint \(old.fingerprint.prefix(12)) -> \(new.fingerprint.prefix(12))); its tasks run again on the new data")
            }
        }
    }

    static func summarise(_ entry: DatasetEntry, train: Dataset, test: Dataset) -> DatasetSummary {
        var f = Fingerprint()
        f.add("\(entry.preprocessing)")
        f.add(train.fingerprint.hex)
        f.add(test.fingerprint.hex)
        return DatasetSummary(fingerprint: f.hex, shape: train.shape, classes: train.classes, train: train.count, test: test.count)
    }

    /// The entry's files decoded (paths relative to the working directory).
    static func load(_ entry: DatasetEntry) throws -> (train: Dataset, test: Dataset) {
        guard let source = entry.declaredSource else { throw RunError(path: entry.name, message: "has no format") }
        return try source.load(name: entry.name)
    }

    /// The raw splits of the source of `entry`, checked against the fingerprint the coordinator
    /// found: from this process's cache, this node's copy of the files, or `fetch` (the bytes
    /// rank 0 decoded).
    public static func rawSplits(_ entry: DatasetEntry, spec: SweepSpec, fetch: ((String) throws -> Data)?) throws -> (train: Dataset, test: Dataset)? {
        guard let source = spec.sourceEntry(of: entry), let summary = source.summary ?? entry.summary else { return nil }
        if let cached = cache.withLock({ $0[summary.fingerprint] }) { return cached }
        var problem: String
        do {
            let (train, test) = try load(source)
            if summarise(source, train: train, test: test).fingerprint == summary.fingerprint {
                cache.withLock { $0[summary.fingerprint] = (train, test) }
                return (train, test)
            }
            problem = "its files on this node differ from the coordinator's"
        } catch {
            problem = "\(error)"
        }
        guard let fetch else { throw RunError(path: source.name, message: problem) }
        let (train, test) = try DatasetTransfer.decode(try fetch(summary.fingerprint), name: source.name)
        guard summarise(source, train: train, test: test).fingerprint == summary.fingerprint else {
            throw RunError(path: source.name, message: "the data received from rank 0 does not have the fingerprint rank 0 announced")
        }
        cache.withLock { $0[summary.fingerprint] = (train, test) }
        return (train, test)
    }

    /// The decoded bytes of the dataset with `fingerprint`, for a worker that asked (rank 0).
    public static func transfer(_ fingerprint: String, spec: SweepSpec) throws -> Data {
        let data = try encoded(fingerprint, spec: spec)
        // One MPI message carries it, and MPI counts bytes in a signed 32-bit int.
        guard data.count < Int(Int32.max) - (1 << 20) else {
            throw RunError(path: fingerprint, message: "the decoded dataset is \(data.count >> 20) MB, more than one message can carry (2 GiB): put its files on every node")
        }
        return data
    }

    private static func encoded(_ fingerprint: String, spec: SweepSpec) throws -> Data {
        if let cached = cache.withLock({ $0[fingerprint] }) { return DatasetTransfer.encode(train: cached.train, test: cached.test) }
        guard let entry = spec.datasets.first(where: { $0.format != nil && $0.summary?.fingerprint == fingerprint }) else {
            throw RunError(path: fingerprint, message: "no dataset of this sweep has this fingerprint")
        }
        guard let splits = try rawSplits(entry, spec: spec, fetch: nil) else { throw RunError(path: entry.name, message: "cannot be read on rank 0") }
        return DatasetTransfer.encode(train: splits.train, test: splits.test)
    }

    // MARK: - The run directory's record

    static func recordedSummaries(_ run: RunDirectory) -> [String: DatasetSummary] {
        guard let data = FileManager.default.contents(atPath: run.datasetsURL.path),
              let summaries = try? JSONDecoder().decode([String: DatasetSummary].self, from: data) else { return [:] }
        // A fingerprint names tasks: one that is not 32 hex digits is dropped (the files are read again).
        return summaries.filter { $0.value.fingerprint.count == 32 && $0.value.fingerprint.allSatisfy(\.isHexDigit) }
    }

    /// Records the summaries of `spec`'s own-data entries in `run` (nothing when it has none).
    public static func record(_ spec: SweepSpec, in run: RunDirectory) throws {
        let summaries = Dictionary(spec.datasets.compactMap { e in e.format == nil ? nil : e.summary.map { (e.name, $0) } }, uniquingKeysWith: { a, _ in a })
        guard !summaries.isEmpty else { return }
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .prettyPrinted]
        try e.encode(summaries).write(to: run.datasetsURL, options: .atomic)
    }
}

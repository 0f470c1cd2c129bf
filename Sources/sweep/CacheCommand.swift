import ArgumentParser
import Foundation
import Rendering
import SweepCore
import SweepFile
import SweepStore
import TensorEngine

/// `sweep cache`: what the training store holds, and keeping it from growing without bound.
struct CacheCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cache", abstract: "List, inspect and prune the store of trained networks that sweeps share.",
        discussion: """
        Every training a sweep runs is kept in the training store (default ~/.cache/layersweep; \
        LAYERSWEEP_CACHE or a sweep file's cache: choose another, cache: false or --no-cache \
        turn it off). A later sweep that needs the same training (the same model, dataset \
        contents, training settings, seed and engine) takes it from there.
        """,
        subcommands: [List.self, Show.self, Remove.self, Prune.self], defaultSubcommand: List.self)

    /// Which store a subcommand looks at.
    struct Location: ParsableArguments {
        @Option(help: "The store's directory (default: LAYERSWEEP_CACHE, else ~/.cache/layersweep).") var cache: String?

        func store() throws -> TrainingStore {
            guard let store = TrainingStore.resolve(disabled: false, setting: cache) else {
                throw FlagError("the training store is off (LAYERSWEEP_CACHE=off); give --cache DIR")
            }
            return store
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One line per stored training, most recently used first.")
        @OptionGroup var location: Location
        @Flag(help: "Print the entries as JSON.") var json = false

        func run() throws {
            let store = try location.store()
            let entries = store.list()
            if json {
                let e = JSONEncoder()
                e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                e.dateEncodingStrategy = .iso8601
                print(String(decoding: try e.encode(entries.map(ListedJSON.init)), as: UTF8.self))
                return
            }
            let total = entries.reduce(0) { $0 + $1.bytes }
            emit("\(store.root.path): \(entries.count) training\(entries.count == 1 ? "" : "s"), \(ByteCount.text(total))")
            emit("this machine's engine: \(TrainingIdentity.engine), bits version \(TrainingIdentity.bitsVersion) (entries of another are not served here)")
            for entry in entries {
                let what = entry.record.map { "\($0.dataset)/\($0.model)/seed\($0.seedIndex) acc \(($0.outcome.testAccuracy ?? 0).formatted4) (sweep \($0.sweep))" }
                    ?? "(unreadable record)"
                emit("  \(entry.key.prefix(12))  \(ByteCount.text(entry.bytes).padding(toLength: 8, withPad: " ", startingAt: 0))  used \(CacheCommand.age(entry.lastUsed)) ago  \(what)")
            }
        }
    }

    struct ListedJSON: Encodable {
        let key: String
        let bytes: Int
        let lastUsed: Date
        let record: StoredTraining?
        init(_ l: TrainingStore.Listed) { (key, bytes, lastUsed, record) = (l.key, l.bytes, l.lastUsed, l.record) }
        enum CodingKeys: String, CodingKey { case key, bytes, lastUsed = "last_used", record }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Everything one stored training records (a key or its first digits).")
        @OptionGroup var location: Location
        @Argument(help: "The entry's key, or at least its first 4 hex digits.") var key: String

        func validate() throws { try CacheCommand.checkPrefix(key) }

        func run() throws {
            let store = try location.store()
            let matches = store.list().filter { $0.key.hasPrefix(key) }
            guard matches.count == 1, let entry = matches.first else {
                throw FlagError(matches.isEmpty ? "no stored training's key starts with \(key)" : "\(matches.count) keys start with \(key); give more digits")
            }
            guard let r = entry.record else { throw FlagError("\(entry.key): its record cannot be read; remove it with: sweep cache remove \(entry.key)") }
            emit("key:        \(r.key)")
            emit("network:    \(r.dataset)/\(r.model)/seed\(r.seedIndex) (task \(r.task))")
            emit("training:   \(r.training)")
            emit("accuracy:   test \(r.outcome.testAccuracy.map(\.formatted4) ?? "-"), train \(r.outcome.trainAccuracy.map(\.formatted4) ?? "-")")
            emit("trained:    by sweep \(r.sweep) in \(r.run) on \(r.host), \(ISO8601DateFormatter().string(from: r.created)), in \(formatDuration(r.outcome.seconds))")
            emit("engine:     \(r.engine), bits version \(r.bitsVersion)")
            emit("checkpoint: \(r.checksum), \(ByteCount.text(r.bytes)); last used \(CacheCommand.age(entry.lastUsed)) ago")
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove stored trainings by key (or their first digits), or all of them.")
        @OptionGroup var location: Location
        @Argument(help: "Keys, or at least their first 4 hex digits each.") var keys: [String] = []
        @Flag(help: "Remove every stored training.") var all = false

        func validate() throws {
            guard all != !keys.isEmpty else { throw ValidationError("give keys to remove, or --all") }
            for key in keys { try CacheCommand.checkPrefix(key) }
        }

        func run() throws {
            let store = try location.store()
            let removed = try store.remove(prefixes: all ? store.list().map(\.key) : keys)
            emit("removed \(removed.count) training\(removed.count == 1 ? "" : "s") from \(store.root.path)")
        }
    }

    struct Prune: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove trainings unused for a while, then the least recently used until the store fits a size.")
        @OptionGroup var location: Location
        @Option(help: "Remove trainings no sweep used for this long: 30d, 12h, 90m, 45s.") var olderThan: AgeLimit?
        @Option(help: "Then remove the least recently used until the store holds at most this: 10G, 500M, 64K or bytes.") var maxSize: ByteCount?

        func validate() throws {
            guard olderThan != nil || maxSize != nil else { throw ValidationError("give --older-than, --max-size or both") }
        }

        func run() throws {
            let store = try location.store()
            let (removed, freed) = try store.prune(olderThan: olderThan?.seconds, maxBytes: maxSize?.bytes)
            let left = store.list()
            emit("removed \(removed.count) training\(removed.count == 1 ? "" : "s") (\(ByteCount.text(freed))); \(left.count) left, \(ByteCount.text(left.reduce(0) { $0 + $1.bytes }))")
        }
    }

    static func checkPrefix(_ key: String) throws {
        guard (4...32).contains(key.count), key.allSatisfy({ $0.isHexDigit && !$0.isUppercase }) else {
            throw ValidationError("'\(SafeText.terminal(key))' is not a store key (4 to 32 lowercase hex digits)")
        }
    }

    static func age(_ date: Date) -> String { formatDuration(max(0, Date().timeIntervalSince(date))) }
}

/// A span of time as `--older-than` takes it: a number and s, m, h or d.
struct AgeLimit: ExpressibleByArgument {
    let seconds: Double

    init?(argument: String) {
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86_400]
        guard let unit = argument.last.flatMap({ units[$0] }), let n = Double(argument.dropLast()), n.isFinite, n >= 0 else { return nil }
        seconds = n * unit
    }
}

/// A size as `--max-size` takes it: bytes, or a number and K, M, G or T (powers of 1024).
struct ByteCount: ExpressibleByArgument {
    let bytes: Int

    init?(argument: String) {
        let units: [Character: Double] = ["K": 0x1p10, "M": 0x1p20, "G": 0x1p30, "T": 0x1p40]
        let text = argument.uppercased().hasSuffix("B") && argument.count > 1 ? String(argument.dropLast()) : argument
        let (number, unit) = text.last.flatMap({ units[Character($0.uppercased())] }).map { (text.dropLast(), $0) } ?? (Substring(text), 1)
        guard let n = Double(number), n.isFinite, n >= 0, n * unit < 9e18 else { return nil }
        bytes = Int(n * unit)
    }

    /// "1.5 GB", "300 KB", "12 B".
    static func text(_ bytes: Int) -> String {
        let units = [("TB", 1 << 40), ("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)]
        for (name, size) in units where bytes >= size { return String(format: "%.1f %@", Double(bytes) / Double(size), name) }
        return "\(bytes) B"
    }
}

private extension Double {
    var formatted4: String { String(format: "%.4f", self) }
}

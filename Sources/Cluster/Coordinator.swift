import Foundation
import SweepCore

/// Rank 0's loop: hands ready tasks to idle workers (longest first), ships checkpoints to the
/// workers that lack them, journals every result (fsync) before acting on it, and reports progress.
public final class Coordinator {
    let plan: Plan
    let directory: RunDirectory
    let journal: Journal
    let link: CoordinatorLink
    let specText: String
    let log: (String) -> Void

    private var scheduler: Scheduler
    private var records: [String: TaskRecord]
    private var checkpointHashes: [String: String] = [:]   // train key -> hash
    private var checkpointBytes: [String: Data] = [:]      // hash -> bytes (loaded lazily)
    private var workerCache: [Int: Set<String>] = [:]
    private var hosts: [Int: String] = [:]
    private var running: [Int: (task: PlannedTask, started: Date)] = [:]
    private var baselines: [String: Double] = [:]
    private var costDone = 0.0
    private let sessionStart = Date()
    /// Called with every record so far, at most every `refreshInterval` seconds, so a long
    /// sweep's report can be opened while it runs.
    public var refresh: (([TaskRecord]) throws -> Void)?
    public var refreshInterval: TimeInterval = 30
    private var lastRefresh = Date()

    /// `previous` are the records of an earlier session of the same run (resume).
    public init(plan: Plan, run: RunDirectory, journal: Journal, link: CoordinatorLink, specText: String,
                previous: [TaskRecord], log: @escaping (String) -> Void) {
        self.plan = plan
        self.directory = run
        self.journal = journal
        self.link = link
        self.specText = specText
        self.log = log
        var kept: [String: TaskRecord] = [:]
        for r in previous where plan[r.key] != nil {
            // A training result counts only if its checkpoint is still on disk.
            if r.kind == .train, r.outcome.status == .ok {
                guard let hash = r.outcome.checkpoint, FileManager.default.fileExists(atPath: directory.checkpointURL(hash).path) else { continue }
                checkpointHashes[r.key] = hash
            }
            kept[r.key] = r
        }
        records = kept
        let failed = Set(kept.values.filter { $0.outcome.status != .ok }.map(\.key))
        scheduler = Scheduler(plan.tasks, done: Set(kept.keys), failed: failed)
        for r in kept.values where r.kind == .baseline {
            if let t = plan[r.key], let acc = r.outcome.testAccuracy { baselines[t.trainKey] = acc }
        }
    }

    /// Every record of the run so far (earlier sessions included).
    public var allRecords: [TaskRecord] { Array(records.values) }

    /// Runs until every task has a record, then stops the workers.
    public func run() throws {
        for w in link.workers { try link.send(.configure(specText: specText), to: w) }
        var idle: [Int] = []
        try recordSkipped(scheduler.failedAtStart.compactMap { plan[$0] })
        while !scheduler.isDone {
            while !idle.isEmpty, let task = scheduler.next() {
                try dispatch(task, to: idle.removeFirst())
            }
            if scheduler.isDone { break }
            if running.isEmpty && idle.count == link.workers.count && scheduler.readyCount == 0 {
                throw RunError(path: directory.url.path, message: "no task can run, yet the plan is not finished (dependency cycle?)")
            }
            var batch = [try link.receive()]
            while let more = try link.poll() { batch.append(more) }
            var finished: [(TaskRecord, PlannedTask)] = []
            for (worker, message) in batch {
                switch message {
                case let .hello(host, _):
                    hosts[worker] = host
                    idle.append(worker)
                case let .result(key, outcome, checkpoint):
                    guard let (task, started) = running.removeValue(forKey: worker), task.key == key else {
                        throw RunError(path: directory.url.path, message: "worker \(worker) returned \(key), which it was not running")
                    }
                    var outcome = outcome
                    if let checkpoint, outcome.status == .ok {
                        let hash = contentHash(checkpoint)
                        try checkpoint.write(to: directory.checkpointURL(hash), options: .atomic)
                        outcome.checkpoint = hash
                        checkpointBytes[hash] = checkpoint
                        workerCache[worker, default: []].insert(hash)
                    }
                    finished.append((TaskRecord(key: key, kind: task.kind, outcome: outcome, rank: worker,
                                                host: hosts[worker] ?? "?", started: started, finished: Date()), task))
                    idle.append(worker)
                default:
                    break
                }
            }
            try journal.append(finished.map(\.0))
            for (record, task) in finished { try complete(record, task) }
            idle.sort()
            if let refresh, !finished.isEmpty, Date().timeIntervalSince(lastRefresh) >= refreshInterval {
                try refresh(allRecords)
                lastRefresh = Date()
            }
        }
        for w in link.workers { try link.send(.stop, to: w) }
    }

    private func dispatch(_ task: PlannedTask, to worker: Int) throws {
        let inputs = task.dependencies.compactMap { checkpointHashes[$0] }
        var attachments: [String: Data] = [:]
        for hash in inputs where !(workerCache[worker]?.contains(hash) ?? false) {
            attachments[hash] = try bytes(of: hash)
            workerCache[worker, default: []].insert(hash)
        }
        running[worker] = (task, Date())
        try link.send(.task(task, inputs: inputs, attachments: attachments), to: worker)
    }

    private func bytes(of hash: String) throws -> Data {
        if let b = checkpointBytes[hash] { return b }
        let data = try Data(contentsOf: directory.checkpointURL(hash))
        checkpointBytes[hash] = data
        return data
    }

    private func complete(_ record: TaskRecord, _ task: PlannedTask) throws {
        records[record.key] = record
        if task.kind == .train, let hash = record.outcome.checkpoint { checkpointHashes[task.key] = hash }
        if task.kind == .baseline, let acc = record.outcome.testAccuracy { baselines[task.trainKey] = acc }
        costDone += task.cost
        let skipped = scheduler.finished(task.key, succeeded: record.outcome.status == .ok)
        let elapsed = Date().timeIntervalSince(sessionStart)
        let eta = costDone > 0 && !scheduler.isDone ? elapsed / costDone * scheduler.remainingCost : nil
        log(ProgressText.line(done: records.count, total: plan.tasks.count, task: task, record: record,
                              baseline: baselines[task.trainKey], eta: eta))
        try recordSkipped(skipped, because: record)
    }

    /// Journals tasks that will not run because a dependency failed.
    private func recordSkipped(_ tasks: [PlannedTask], because cause: TaskRecord? = nil) throws {
        guard !tasks.isEmpty else { return }
        let now = Date()
        let skipped = tasks.map { t -> TaskRecord in
            var o = TaskOutcome(status: .skipped)
            o.error = "dependency \(cause?.key ?? t.trainKey) \(cause?.outcome.status.rawValue ?? "failed")"
            return TaskRecord(key: t.key, kind: t.kind, outcome: o, rank: -1, host: "", started: now, finished: now)
        }
        try journal.append(skipped)
        for r in skipped { records[r.key] = r }
        if let first = skipped.first { log("skipped \(skipped.count) tasks: \(first.outcome.error ?? "")") }
    }
}

/// A worker's loop: hello, configuration, then tasks until stop. The same code runs in a thread
/// (`-j N`, rank 0's worker) and as an MPI rank.
public enum WorkerLoop {
    public static func run(link: WorkerLink, host: String, threads: Int) throws {
        try link.send(.hello(host: host, threads: threads))
        var executor: TaskExecutor?
        while true {
            switch try link.receive() {
            case .stop:
                return
            case let .configure(text):
                executor = TaskExecutor(spec: try SpecLoader.parse(text, file: "spec.yaml"))
            case let .task(task, inputs, attachments):
                guard let executor else { throw RunError(path: task.key, message: "task before configuration") }
                for (hash, data) in attachments { try executor.store(checkpoint: data, hash: hash) }
                let (outcome, checkpoint) = executor.run(task, inputs: inputs)
                try link.send(.result(key: task.key, outcome: outcome, checkpoint: checkpoint))
            case .hello, .result:
                continue
            }
        }
    }
}

import Foundation
import Rendering
import SweepCore
import SweepFile
import SweepPlan
import SweepRecords
import SweepStore
import TensorEngine

/// Rank 0's loop: hands ready tasks to idle workers (longest first), ships artifacts
/// (checkpoints, IMP rounds, teacher logits) to the workers that lack them and tells workers to
/// drop those no remaining task needs, journals every result (fsync) before acting on it, and
/// reports progress.
public final class Coordinator {
    let plan: Plan
    let directory: RunDirectory
    let journal: Journal
    let link: CoordinatorLink
    let specText: String
    let log: (String) -> Void

    private var scheduler: Scheduler
    private var records: [String: TaskRecord]
    private var artifactHashes: [String: String] = [:]   // producing task's key -> hash
    private var artifactBytes: [String: Data] = [:]      // hash -> bytes (loaded lazily)
    private var datasetBytes: [String: Data] = [:]       // fingerprint -> decoded dataset, for ranks without its files
    private var workerCache: [Int: Set<String>] = [:]
    /// Unfinished tasks that still need each artifact; at zero it is released everywhere.
    private var pendingUses: [String: Int] = [:]
    private var released: Set<String> = []
    private var hosts: [Int: String] = [:]
    /// Each worker's arithmetic kind (`ArithmeticKind`), from its hello.
    private var engines: [Int: String] = [:]
    /// What each busy worker runs; the members of a gang all map to its task.
    private var running: [Int: (task: PlannedTask, started: Date)] = [:]
    private var gangsFormed = 0
    /// Each busy worker's latest progress line, and when status.json was last written.
    private var latestProgress: [Int: String] = [:]
    private var lastStatus = Date.distantPast
    private var freshProgress = false
    private var lastETA: Double?
    /// How long the first dispatch waits for workers that have not said hello yet.
    private let helloWait: TimeInterval = 5
    private var costDone = 0.0
    private var finishedThisSession = 0
    private let sessionStart = Date()
    /// Called with every record so far, at most every `refreshInterval` seconds, so a long
    /// sweep's report can be opened while it runs.
    public var refresh: (([TaskRecord]) throws -> Void)?
    public var refreshInterval: TimeInterval = 30
    private var lastRefresh = Date()

    /// Where the busy ranks' activity is shown (one live line each on a terminal); nil: progress
    /// lines go to `log`.
    public var status: LiveStatus?

    /// The training store and the identities of this run's trainings, by task key (nil: none).
    /// Only the coordinator touches the store; workers get stored networks as they get trained
    /// ones.
    public var store: (store: TrainingStore, identities: [String: TrainingIdentity])?
    /// Cleared by the first failed write (a full or read-only store): the run goes on, storing
    /// nothing more; stored trainings are still served.
    private var storeWritable = true
    /// Trainings served from the store, and stored into it, this session.
    public private(set) var storeServed = 0
    public private(set) var storeAdded = 0

    /// How long a drain (SIGUSR1) waits for running tasks before abandoning them.
    public var drainGrace: TimeInterval = 60
    /// Where stop requests come from (the process's signals; tests inject their own).
    public var stopRequest: () -> StopRequest? = { StopSignals.request }
    /// Failed tasks of earlier sessions that stay failed (run them again with `retryFailed`).
    public private(set) var keptFailures = 0

    /// `previous` are the records of an earlier session of the same run (resume). With
    /// `retryFailed`, failed tasks (and what was skipped because of them) run again.
    public init(plan: Plan, run: RunDirectory, journal: Journal, link: CoordinatorLink, specText: String,
                previous: [TaskRecord], retryFailed: Bool = false, log: @escaping (String) -> Void) {
        self.plan = plan
        self.directory = run
        self.journal = journal
        self.link = link
        self.specText = specText
        self.log = log
        var kept: [String: TaskRecord] = [:]
        var verified: [String: Bool] = [:]
        for r in previous where plan[r.key] != nil {
            // A result whose artifact is gone from disk or damaged does not count: its task runs again.
            if let hash = r.outcome.checkpoint, r.outcome.status == .ok {
                let intact = verified[hash] ?? Coordinator.verifyArtifact(hash, in: run, log: log)
                verified[hash] = intact
                guard intact else { kept[r.key] = nil; continue }
                artifactHashes[r.key] = hash
            }
            kept[r.key] = r
        }
        if retryFailed { Coordinator.dropFailures(from: &kept, plan: plan) }
        keptFailures = kept.values.filter { $0.outcome.status == .failed }.count
        records = kept
        let failed = Set(kept.values.filter { $0.outcome.status != .ok }.map(\.key))
        scheduler = Scheduler(plan.tasks, done: Set(kept.keys), failed: failed, workers: link.workers.count)
        for t in plan.tasks where kept[t.key] == nil {
            for d in t.dependencies { pendingUses[d, default: 0] += 1 }
        }
    }

    /// True when the stored artifact's bytes still have their content hash. A damaged file is
    /// set aside (renamed `.corrupt`, never deleted) so the task that made it runs again.
    static func verifyArtifact(_ hash: String, in run: RunDirectory, log: (String) -> Void) -> Bool {
        let url = run.checkpointURL(hash)
        guard let data = FileManager.default.contents(atPath: url.path) else { return false }
        if contentHash(data) == hash { return true }
        let aside = url.appendingPathExtension("corrupt")
        try? FileManager.default.removeItem(at: aside)
        try? FileManager.default.moveItem(at: url, to: aside)
        log("\(url.path): damaged (its bytes no longer match their hash); moved to \(aside.lastPathComponent), its task runs again")
        return false
    }

    /// Forgets failed records and, transitively, the records skipped because a dependency of
    /// theirs will now run again.
    static func dropFailures(from kept: inout [String: TaskRecord], plan: Plan) {
        for (key, record) in kept where record.outcome.status == .failed { kept[key] = nil }
        var changed = true
        while changed {
            changed = false
            for (key, record) in kept where record.outcome.status == .skipped {
                if let task = plan[key], task.dependencies.contains(where: { kept[$0] == nil }) {
                    kept[key] = nil
                    changed = true
                }
            }
        }
    }

    /// Every record of the run so far (earlier sessions included).
    public var allRecords: [TaskRecord] { Array(records.values) }

    /// How a coordinator's run ended.
    public enum Ending: Equatable {
        /// Every task has a record; the workers were told to stop.
        case complete
        /// A stop request ended the run early. `abandoned` tasks were running and have no record
        /// (their workers are still busy: the process must exit, not wait for them).
        case stopped(StopRequest, abandoned: Int)
    }

    /// Wall and CPU seconds of the dispatch loop from its first dispatch (this thread only: not
    /// the workers' start-up, not the worker thread rank 0 may run, not the final results
    /// files), for the runner's own cost per task.
    public private(set) var loopSeconds = 0.0
    public private(set) var loopCPUSeconds = 0.0
    private var firstDispatch: (wall: Date, cpu: Double)?

    /// Runs until every task has a record, then stops the workers; or until a stop request.
    @discardableResult
    public func run() throws -> Ending {
        defer {
            // A run that ends in an error still keeps the results it received.
            try? commit()
            if let firstDispatch {
                loopSeconds = Date().timeIntervalSince(firstDispatch.wall)
                loopCPUSeconds = Coordinator.threadCPUSeconds() - firstDispatch.cpu
            }
        }
        for w in link.workers {
            try link.send(.configure(specText: specText, checkpointHashes: plan.spec.checkpointHashes, graphs: plan.spec.graphs,
                                         datasets: plan.spec.datasetSummaries), to: w)
        }
        var idle: [Int] = []
        var drainUntil: Date?
        try recordSkipped(scheduler.failedAtStart.compactMap { plan[$0] })
        while !scheduler.isDone {
            if let request = stopRequest() {
                if let ending = try stopping(request, drainUntil: &drainUntil) { return ending }
            } else {
                try dispatchReady(to: &idle)
                if scheduler.isDone { break }
                if running.isEmpty && uncommitted.isEmpty && idle.count == link.workers.count && scheduler.readyCount == 0 {
                    throw RunError(path: directory.url.path, message: "no task can run, yet the plan is not finished (dependency cycle?)")
                }
            }
            // Wake up now and then without a message, to notice a signal while every worker is
            // busy, and in time to journal the results held for a group commit.
            let wait = uncommitted.isEmpty ? 0.1 : max(0, commitDelay - Date().timeIntervalSince(oldestUncommitted))
            guard let first = try link.receive(timeout: wait) else { try commit(); continue }
            var batch = [first]
            while let more = try link.poll() { batch.append(more) }
            var finished: [(TaskRecord, PlannedTask)] = []
            for (worker, message) in batch {
                try handle(message, from: worker, idle: &idle, finished: &finished)
            }
            try settle(finished, idle: &idle)
        }
        for w in link.workers { try link.send(.stop, to: w) }
        return .complete
    }

    /// A stop request: an interrupt ends the loop now; a drain hands out nothing more and ends
    /// it when the running tasks are done or its grace is over (nil: keep waiting).
    private func stopping(_ request: StopRequest, drainUntil: inout Date?) throws -> Ending? {
        try commit()
        if case .interrupt = request { return .stopped(request, abandoned: runningTasks) }
        if drainUntil == nil {
            drainUntil = Date(timeIntervalSinceNow: drainGrace)
            log("\(request.name): no new tasks; waiting up to \(ProgressText.duration(drainGrace)) for \(runningTasks) running")
        }
        guard running.isEmpty || Date() >= drainUntil! else { return nil }
        if running.isEmpty { for w in link.workers { try link.send(.stop, to: w) } }
        return .stopped(request, abandoned: runningTasks)
    }

    /// One message from a worker: a greeting or a finished task makes it idle, a result joins
    /// `finished`, progress and snapshots are kept, a request for a dataset is answered.
    private func handle(_ message: Message, from worker: Int, idle: inout [Int],
                        finished: inout [(TaskRecord, PlannedTask)]) throws {
        switch message {
        case let .hello(host, _, engine):
            hosts[worker] = host
            engines[worker] = engine
            idle.append(worker)
        case let .result(key, outcome, checkpoint):
            finished.append(try received(key, outcome: outcome, checkpoint: checkpoint, from: worker))
            idle.append(worker)
        case let .progress(key, text):
            if running[worker]?.task.key == key {
                if let status {
                    status.set(worker, "\(key): \(text)", plain: "  \(key) (rank \(worker)): \(text)")
                } else {
                    log("  \(key) (rank \(worker)): \(text)")
                }
                latestProgress[worker] = text
                freshProgress = true
            }
        case let .gangDone(key):
            guard running.removeValue(forKey: worker)?.task.key == key else {
                throw RunError(path: directory.url.path, message: "worker \(worker) finished its part of \(key), which it was not running")
            }
            idle.append(worker)
        case let .needData(fingerprint):
            try sendDataset(fingerprint, to: worker)
        case let .snapshot(key, data):
            // Kept until the task finishes: a killed job resumes the training from here.
            guard running[worker]?.task.key == key else { break }
            try FileManager.default.createDirectory(at: directory.snapshotsURL, withIntermediateDirectories: true)
            try data.write(to: directory.snapshotURL(key), options: .atomic)
        default:
            break
        }
    }

    /// A worker's result: its checkpoint is written under its hash and kept for the tasks that
    /// need it; the record to journal.
    private func received(_ key: String, outcome: TaskOutcome, checkpoint: Data?, from worker: Int) throws -> (TaskRecord, PlannedTask) {
        guard let (task, started) = running.removeValue(forKey: worker), task.key == key else {
            throw RunError(path: directory.url.path, message: "worker \(worker) returned \(key), which it was not running")
        }
        if let checkpoint, outcome.status == .ok {
            // The worker named the bytes by their content hash when it made them, and keeps them
            // under that name; hashing them again here would only repeat it. A name that is not a
            // content hash is refused; bytes that do not fit their name are found where they are
            // next read (a worker receiving them checks, and so does a resume).
            guard let hash = outcome.checkpoint, ContentHash.isValid(hash) else {
                throw RunError(path: key, message: "worker \(worker) returned a checkpoint without its content hash")
            }
            try checkpoint.write(to: directory.checkpointURL(hash), options: .atomic)
            if (pendingUses[key] ?? 0) > 0 { artifactBytes[hash] = checkpoint }
            workerCache[worker, default: []].insert(hash)
            keep(task, checkpoint: checkpoint, hash: hash, outcome: outcome, worker: worker)
        }
        return (TaskRecord(key: key, kind: task.kind, outcome: outcome, rank: worker,
                           host: hosts[worker] ?? "?", started: started, finished: Date()), task)
    }

    /// A rank that cannot read a dataset's files gets the bytes rank 0 decoded, decoded once and
    /// kept for the next such rank; nothing sent (empty bytes) tells it rank 0 cannot read them
    /// either.
    private func sendDataset(_ fingerprint: String, to worker: Int) throws {
        if datasetBytes[fingerprint] == nil {
            do { datasetBytes[fingerprint] = try ImportedDatasets.transfer(fingerprint, spec: plan.spec) } catch {
                log("rank \(worker) cannot read a dataset's files and rank 0 cannot send it: \(error)")
            }
        }
        if let bytes = datasetBytes[fingerprint] {
            let name = plan.spec.datasets.first { $0.format != nil && $0.summary?.fingerprint == fingerprint }?.name ?? fingerprint
            log("rank \(worker) (\(hosts[worker] ?? "?")) cannot read the files of dataset \(name); sending the \(max(1, bytes.count >> 20)) MB rank 0 decoded")
        }
        try link.send(.data(fingerprint: fingerprint, bytes: datasetBytes[fingerprint] ?? Data()), to: worker)
    }

    /// After a batch of messages: the workers that just answered get their next tasks before
    /// these results are journaled. A task handed out now depends on nothing unjournaled
    /// (dependents are released only by `commit`, after the fsync), so durability costs the
    /// workers no waiting, and the results of the next few milliseconds share one fsync. Then
    /// the status file and the live results, when due.
    private func settle(_ finished: [(TaskRecord, PlannedTask)], idle: inout [Int]) throws {
        idle.sort()
        for (record, task) in finished { retireArtifacts(record, task) }
        if stopRequest() == nil { try dispatchReady(to: &idle) }
        if uncommitted.isEmpty { oldestUncommitted = Date() }
        uncommitted += finished
        if commitDue(idle: idle) { try commit() }
        // Every 2 s, and soon after a new epoch line (so `sweep status` shows it while it is news).
        let sinceStatus = Date().timeIntervalSince(lastStatus)
        if sinceStatus >= 2 || (freshProgress && sinceStatus >= 0.5) { writeStatus() }
        if let refresh, !finished.isEmpty, Date().timeIntervalSince(lastRefresh) >= refreshInterval {
            try refresh(allRecords)
            lastRefresh = Date()
        }
    }

    /// Results received but not yet journaled: they do not count (no dependent is released, no
    /// line is printed) until `commit` has fsynced them.
    private var uncommitted: [(TaskRecord, PlannedTask)] = []
    private var oldestUncommitted = Date()
    /// How long a result may wait for others to share its fsync. Short against any real task,
    /// long against the coordinator's own turn-around.
    private let commitDelay: TimeInterval = 0.005
    private let commitBatch = 256

    /// Journal now when results have waited long enough, when many are waiting, or when a
    /// worker is idle with nothing ready (the results may release what it needs).
    private func commitDue(idle: [Int]) -> Bool {
        guard !uncommitted.isEmpty else { return false }
        return uncommitted.count >= commitBatch || Date().timeIntervalSince(oldestUncommitted) >= commitDelay
            || (!idle.isEmpty && scheduler.readyCount == 0)
    }

    /// Journals the held results with one fsync, then counts them.
    private func commit() throws {
        guard !uncommitted.isEmpty else { return }
        let batch = uncommitted
        uncommitted = []
        try journal.append(batch.map(\.0))
        for (record, task) in batch { try complete(record, task) }
    }

    /// status.json for `sweep status`: what is done and what each busy worker runs. A failed
    /// write is ignored (it is a view, never the record).
    private func writeStatus() {
        lastStatus = Date()
        freshProgress = false
        let busy = running.map { worker, entry in
            RunStatus.Running(rank: worker, key: entry.task.key, started: entry.started, progress: latestProgress[worker])
        }
        try? RunStatus(updated: Date(), journaled: records.count, total: plan.tasks.count, running: busy, etaSeconds: lastETA).write(to: directory)
    }

    static func threadCPUSeconds() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
    }

    /// Tasks running now (a gang's members count once).
    private var runningTasks: Int { Set(running.values.map(\.task.key)).count }

    /// Hands ready tasks, most urgent first, to idle workers (lowest id first). Idle workers that
    /// no ready task needs join the trainings among them as gangs (`GangPolicy`).
    private func dispatchReady(to idle: inout [Int]) throws {
        // The first tasks wait (a few seconds at most) for every worker's hello: trainings
        // handed out to the first worker alone could not be ganged with the rest.
        guard hosts.count == link.workers.count || Date().timeIntervalSince(sessionStart) > helloWait else { return }
        var batch: [PlannedTask] = []
        while batch.count < idle.count, let task = scheduler.next() {
            if task.kind == .load { try load(task) } else if try !serveStored(task) { batch.append(task) }
        }
        guard !batch.isEmpty else { return }
        if firstDispatch == nil { firstDispatch = (Date(), Coordinator.threadCPUSeconds()) }
        let capable = link.gangWorkers
        let spare = idle.count - batch.count
        let study = plan.spec.studyType
        let sizes = GangPolicy.sizes(for: batch, scheduler: scheduler, spare: min(spare, max(0, idle.filter(capable.contains).count - 1)),
                                     gangable: { GangPolicy.gangable($0, study: study) })
        for (task, wanted) in zip(batch, sizes) {
            let size = min(wanted, idle.filter(capable.contains).count)
            guard size > 1 else {
                // A single-rank task leaves the gang-capable workers to the gangs.
                let worker = idle.first(where: { !capable.contains($0) }) ?? idle[0]
                idle.removeAll { $0 == worker }
                try dispatch(task, to: worker)
                continue
            }
            // Members from the gang-capable idle workers, the leader's host first (its
            // exchanges then stay in shared memory where they can).
            let leader = idle.first(where: capable.contains)!
            let others = idle.filter { capable.contains($0) && $0 != leader }
                .sorted { (hosts[$0] != hosts[leader] ? 1 : 0, $0) < (hosts[$1] != hosts[leader] ? 1 : 0, $1) }
            let members = [leader] + others.prefix(size - 1)
            idle.removeAll { members.contains($0) }
            gangsFormed += 1
            let gang = GangAssignment(id: gangsFormed, members: members)
            log("\(task.key): training on a gang of \(members.count) ranks (\(members.map(String.init).joined(separator: ", ")))")
            for member in members { try dispatch(task, to: member, gang: gang) }
        }
    }

    /// A network trained elsewhere: read here (only the coordinator sees the file), stored and
    /// journaled like a trained network's checkpoint, then shipped to the workers that need it.
    private func load(_ task: PlannedTask) throws {
        let started = Date()
        do {
            let bytes = try ImportedNetworks.checkpoint(for: task, spec: plan.spec)
            try finishHere(task, started: started, outcome: TaskOutcome(status: .ok), checkpoint: bytes)
        } catch {
            var outcome = TaskOutcome(status: .failed)
            outcome.error = "\(error)"
            try finishHere(task, started: started, outcome: outcome, checkpoint: nil)
        }
    }

    /// A training the store holds: its checkpoint and outcome taken from there, journaled with
    /// where it was trained; false when the store does not hold it (a damaged entry is removed
    /// with a warning, and the network is trained).
    private func serveStored(_ task: PlannedTask) throws -> Bool {
        guard let (store, identities) = store, let identity = identities[task.key] else { return false }
        let started = Date()
        switch store.lookup(identity.key) {
        case .miss:
            return false
        case let .damaged(reason):
            log("warning: \(reason)")
            return false
        case let .hit(record, bytes):
            var outcome = record.outcome
            outcome.cached = record.origin
            // The lookup checked the bytes against their hash: no second pass over them.
            try finishHere(task, started: started, outcome: outcome, checkpoint: bytes, hash: record.checksum)
            storeServed += 1
            return true
        }
    }

    /// Adds a finished training to the store. A store that cannot take it (full, read-only) gets
    /// one warning and no further writes this run: the sweep's own results never depend on it.
    /// The entry is filed under the engine of the worker that trained it: on a cluster of mixed
    /// machines, an AVX2 node's network is never served as an AVX-512 node's.
    private func keep(_ task: PlannedTask, checkpoint: Data, hash: String, outcome: TaskOutcome, worker: Int) {
        guard storeWritable, let (store, identities) = store, var identity = identities[task.key], outcome.cached == nil else { return }
        if let engine = engines[worker], !engine.isEmpty { identity.engine = engine }
        let host = hosts[worker] ?? "?"
        let record = StoredTraining(key: identity.key, checksum: hash, bytes: checkpoint.count,
                                    bitsVersion: identity.bits, engine: identity.engine, task: task.key, dataset: task.dataset, model: task.model,
                                    seedIndex: task.seedIndex, training: identity.training.settingsText + (identity.recipe.isEmpty ? "" : "; \(identity.recipe)"),
                                    sweep: plan.spec.name, run: directory.url.path, host: host, created: Date(), outcome: outcome)
        do {
            try store.store(record, checkpoint: checkpoint)
            storeAdded += 1
        } catch {
            storeWritable = false
            log("warning: training store \(store.root.path) cannot take trainings (\(SafeText.terminal("\(error)"))); this sweep goes on without storing them")
        }
    }

    /// Journals a task the coordinator did itself (a load, a training from the store): its
    /// checkpoint goes into the run directory and is kept for the workers that will need it.
    private func finishHere(_ task: PlannedTask, started: Date, outcome: TaskOutcome, checkpoint: Data?, hash known: String? = nil) throws {
        var outcome = outcome
        if let checkpoint {
            let hash = known ?? contentHash(checkpoint)
            try checkpoint.write(to: directory.checkpointURL(hash), options: .atomic)
            if (pendingUses[task.key] ?? 0) > 0 { artifactBytes[hash] = checkpoint }
            outcome.checkpoint = hash
        }
        outcome.seconds = Date().timeIntervalSince(started)
        let record = TaskRecord(key: task.key, kind: task.kind, outcome: outcome, rank: 0,
                                host: ProcessInfo.processInfo.hostName, started: started, finished: Date())
        retireArtifacts(record, task)
        try journal.append([record])
        try complete(record, task)
    }

    private func dispatch(_ task: PlannedTask, to worker: Int, gang: GangAssignment? = nil) throws {
        var inputs: [String: String] = [:]
        for d in task.dependencies { inputs[d] = artifactHashes[d] }
        var attachments: [String: Data] = [:]
        for hash in inputs.values where !(workerCache[worker]?.contains(hash) ?? false) {
            attachments[hash] = try bytes(of: hash)
            workerCache[worker, default: []].insert(hash)
            // Every worker has it now: the file in the run directory serves any later need.
            if link.workers.allSatisfy({ workerCache[$0]?.contains(hash) ?? false }) { artifactBytes[hash] = nil }
        }
        let release = workerCache[worker, default: []].intersection(released).sorted()
        workerCache[worker]?.subtract(release)
        running[worker] = (task, Date())
        if gang == nil || gang?.leader == worker {
            status?.set(worker, "\(task.key)" + (gang.map { " (a gang of \($0.members.count))" } ?? ""))
        }
        var resume: Data?
        if task.kind.trains, let snapshot = directory.loadSnapshot(task.key, log: log) {
            resume = snapshot
            if gang == nil || gang?.leader == worker { log("\(task.key): resuming from its epoch snapshot") }
        }
        try link.send(.task(try WireTask(task), inputs: inputs, attachments: attachments, release: release, resume: resume, gang: gang), to: worker)
    }

    private func bytes(of hash: String) throws -> Data {
        if let b = artifactBytes[hash] { return b }
        let data = try Data(contentsOf: directory.checkpointURL(hash))
        artifactBytes[hash] = data
        return data
    }

    /// One fewer task needs the artifacts of `task`'s dependencies; those needed by none are
    /// dropped here and, with the next task message, on every worker holding them.
    private func consumeInputs(of task: PlannedTask) {
        for d in task.dependencies {
            guard let left = pendingUses[d] else { continue }
            pendingUses[d] = left - 1
            if left - 1 <= 0, let hash = artifactHashes[d] {
                released.insert(hash)
                artifactBytes[hash] = nil
            }
        }
    }

    /// Artifact bookkeeping of a finished task: its own artifact is known, and inputs no
    /// remaining task needs are released. Done before the batch's fsync, so the releases travel
    /// with the next task message (a task re-run after a crash reloads artifacts from disk).
    private func retireArtifacts(_ record: TaskRecord, _ task: PlannedTask) {
        if let hash = record.outcome.checkpoint {
            artifactHashes[task.key] = hash
            // An artifact no task consumes (the last IMP round) is kept on disk only.
            if (pendingUses[task.key] ?? 0) == 0 { released.insert(hash) }
        }
        consumeInputs(of: task)
    }

    /// Counts a journaled result: dependents become ready (or are skipped), progress is shown.
    private func complete(_ record: TaskRecord, _ task: PlannedTask) throws {
        records[record.key] = record
        if task.kind.trains { try? FileManager.default.removeItem(at: directory.snapshotURL(task.key)) }
        // A training the store served took no time: counting its cost would make the ETA's pace
        // look as if that work had been done in a moment.
        if record.outcome.cached == nil { costDone += task.cost }
        let skipped = scheduler.finished(task.key, succeeded: record.outcome.status == .ok)
        let elapsed = Date().timeIntervalSince(sessionStart)
        // No estimate until a measurable share of the work is done (a load task costs nothing).
        let eta = costDone > 1e-3 * (costDone + scheduler.remainingCost) && !scheduler.isDone ? elapsed / costDone * scheduler.remainingCost : nil
        lastETA = eta
        latestProgress[record.rank] = nil
        status?.set(record.rank, nil)
        finishedThisSession += 1
        log(ProgressText.line(done: records.count, total: plan.tasks.count, task: task, record: record,
                              baseline: task.baselineKey.flatMap { records[$0]?.outcome.testAccuracy }, eta: eta, study: plan.spec.studyType,
                              elapsed: elapsed, pace: finishedThisSession))
        try recordSkipped(skipped, because: record)
    }

    /// Journals tasks that will not run because a dependency failed.
    private func recordSkipped(_ tasks: [PlannedTask], because cause: TaskRecord? = nil) throws {
        guard !tasks.isEmpty else { return }
        let now = Date()
        let skipped = tasks.map { t -> TaskRecord in
            var o = TaskOutcome(status: .skipped)
            o.error = "dependency \(cause?.key ?? t.dependencies.first ?? "?") \(cause?.outcome.status.rawValue ?? "failed")"
            return TaskRecord(key: t.key, kind: t.kind, outcome: o, rank: -1, host: "", started: now, finished: now)
        }
        try journal.append(skipped)
        for r in skipped { records[r.key] = r }
        for t in tasks { consumeInputs(of: t) }
        if let first = skipped.first { log("skipped \(skipped.count) tasks: \(first.outcome.error ?? "")") }
    }
}

/// A worker's loop: hello, configuration, then tasks until stop. The same code runs in a thread
/// (`-j N`, rank 0's worker) and as an MPI rank.
public enum WorkerLoop {
    public static func run(link: WorkerLink, host: String, threads: Int) throws {
        try link.send(.hello(host: host, threads: threads, engine: ArithmeticKind.current))
        var executor: TaskExecutor?
        while true {
            switch try link.receive() {
            case .stop:
                return
            case let .configure(text, hashes, graphs, datasets):
                var spec = try SpecLoader.parse(text, file: "spec.yaml")
                spec.checkpointHashes = hashes
                spec.graphs = graphs
                spec.datasetSummaries = datasets
                let worker = TaskExecutor(spec: spec)
                // A dataset this node cannot read comes from rank 0, between tasks' messages.
                worker.fetchDataset = { fingerprint in
                    try link.send(.needData(fingerprint: fingerprint))
                    while true {
                        switch try link.receive() {
                        case let .data(received, bytes) where received == fingerprint:
                            guard !bytes.isEmpty else { throw RunError(path: fingerprint, message: "this node cannot read the dataset's files, and rank 0 could not send them") }
                            return bytes
                        case .stop: throw RunError(path: fingerprint, message: "stopped while waiting for a dataset from rank 0")
                        default: continue
                        }
                    }
                }
                executor = worker
            case let .task(sent, inputs, attachments, release, resume, gang):
                guard let executor else { throw RunError(path: sent.key, message: "task before configuration") }
                let task = try sent.task(of: executor.spec.studyType)
                executor.release(release)
                for (hash, data) in attachments { try executor.store(artifact: data, hash: hash) }
                let leads = gang.map { $0.leader == link.id } ?? true
                let members = try gang.map { try link.joinGang($0) }
                let (outcome, checkpoint) = executor.run(task, inputs: inputs, resume: resume, gang: members,
                                                         snapshot: leads ? { try? link.send(.snapshot(key: task.key, data: $0)) } : nil,
                                                         progress: leads ? { try? link.send(.progress(key: task.key, text: $0)) } : nil)
                try link.send(leads ? .result(key: task.key, outcome: outcome, checkpoint: checkpoint) : .gangDone(key: task.key))
            case .hello, .result, .snapshot, .gangDone, .progress, .needData, .data:
                continue
            }
        }
    }
}

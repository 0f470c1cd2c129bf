import Foundation
import Rendering
import SweepCore
import SweepFile
import SweepPlan
import SweepRecords
import SweepReport
import SweepStore
import TensorEngine

/// How `sweep run` was asked to run.
public struct RunOptions: Sendable {
    public var specPath: String?
    /// `key=value` changes to the sweep file's fields (`SpecOverrides`).
    public var overrides: [String]
    public var resumePath: String?
    public var output: String?
    /// Worker threads in this process when not under an MPI launcher (`-j`).
    public var localWorkers: Int
    /// Engine threads per worker; nil: the node's cores divided among its workers.
    public var threads: Int?
    /// Whether rank 0 also runs a worker under MPI; nil: when the world has at most 16 ranks.
    public var coordinatorWorks: Bool?
    /// On resume, run failed tasks (and what they made skip) again.
    public var retryFailed: Bool
    /// A sweep file whose output already holds this sweep's journal is continued, not refused.
    public var continueExisting: Bool
    /// Seconds a drain (SIGUSR1) waits for running tasks.
    public var drainGrace: Double
    /// Neither take trainings from the training store nor add them (`--no-cache`).
    public var noCache = false

    public init(specPath: String? = nil, overrides: [String] = [], resumePath: String? = nil, output: String? = nil, localWorkers: Int = 1,
                threads: Int? = nil, coordinatorWorks: Bool? = nil, retryFailed: Bool = false,
                continueExisting: Bool = false, drainGrace: Double = 60) {
        self.specPath = specPath
        self.overrides = overrides
        self.resumePath = resumePath
        self.output = output
        self.localWorkers = localWorkers
        self.threads = threads
        self.coordinatorWorks = coordinatorWorks
        self.retryFailed = retryFailed
        self.continueExisting = continueExisting
        self.drainGrace = drainGrace
    }
}

/// What a finished (or resumed) run produced.
public struct RunSummary: Sendable {
    public let directory: RunDirectory
    public let rows: [ResultRow]
    public let seconds: Double
    public let workers: Int
    public let study: SweepSpec.Study
    /// How the summary's intervals and calls are made.
    public let statistics: StatisticsSection
    /// Set when a drain request (SIGUSR1) ended the run before every task had a record.
    public let drained: Bool
    /// Tasks of the plan, for "N of M done".
    public let planned: Int
}

/// Starts a sweep: under mpirun/srun as MPI ranks (rank 0 coordinates), otherwise as worker
/// threads in this process. Both paths run the same coordinator and worker loops.
public enum SweepLauncher {
    /// Runs the sweep; returns the summary on the coordinating process, nil on other ranks.
    public static func run(_ options: RunOptions, log: @escaping (String) -> Void) throws -> RunSummary? {
        if MPIWorld.isLaunched {
            if let rank = MPIWorld.launchedRank, rank != 0 { StopSignals.installForWorker() } else { StopSignals.installForCoordinator() }
            StopSignals.exitWithParent()
            let world = try MPIWorld()
            defer { world.finalize() }
            return try runMPI(options, world: world, log: log)
        }
        StopSignals.installForCoordinator()
        let hub = LocalHub(workers: Array(0..<max(1, options.localWorkers)))
        Parallel.configure(threads: options.threads ?? max(1, Parallel.availableCores / max(1, options.localWorkers)))
        let prepared = try prepare(options, log: log)
        let host = ProcessInfo.processInfo.hostName
        let threads = WorkerThreads()
        for id in hub.workerIDs { threads.start(hub: hub, id: id, host: host, log: log) }
        let summary = try coordinate(prepared, link: hub.coordinatorLink(), log: log)
        if !(summary.drained && prepared.abandoned > 0) { threads.waitForStop() }
        return summary
    }

    private static func runMPI(_ options: RunOptions, world: MPIWorld, log: @escaping (String) -> Void) throws -> RunSummary? {
        let threads = options.threads ?? world.threadsPerRank
        Parallel.configure(threads: threads)
        let host = ProcessInfo.processInfo.hostName
        if world.rank != 0 {
            do {
                try WorkerLoop.run(link: MPIWorkerLink(world: world), host: host, threads: threads)
            } catch {
                // A worker that cannot go on (say, the dataset is missing on its node) must not
                // leave the coordinator waiting for it: end the job; the journal keeps every
                // finished result for --resume.
                log("Error: rank \(world.rank) on \(host): \(error)")
                world.abort(1)
            }
            return nil
        }
        let works = options.coordinatorWorks ?? (world.size <= 16)
        let local = works || world.size == 1 ? LocalHub(workers: [0]) : nil
        let workerThreads = WorkerThreads()
        if let local {
            local.makeGang = { try MPIGang(world: world, assignment: $0) }
            workerThreads.start(hub: local, id: 0, host: host, log: log)
        }
        let link = MPICoordinatorLink(world: world, local: local)
        let prepared: Prepared
        do {
            prepared = try prepare(options, log: log)
        } catch {
            // Nothing ran yet and every worker is idle: tell them to stop, report the bad input.
            for w in link.workers { try? link.send(.stop, to: w) }
            throw error
        }
        do {
            let summary = try coordinate(prepared, link: link, log: log)
            // After a drain that abandoned running tasks, workers are still busy: MPI_Finalize
            // would wait for them, so leave now; mpirun ends the others.
            if summary.drained, prepared.abandoned > 0 { _exit(StopRequest.drain.exitStatus) }
            workerThreads.waitForStop()
            return summary
        } catch {
            // Workers may be mid-task or mid-send: stop the whole job rather than hang in finalize.
            log("Error: \(error)")
            log("finished results are in \(prepared.run.journalURL.path); continue with: sweep run --resume \(prepared.run.url.path)")
            world.abort(1)
        }
    }

    /// results.csv, results.json and report.html for the records so far.
    static func writeResults(_ input: ReportInput, run: RunDirectory, ranks: Int, start: Date) throws {
        let started = (input.records.map(\.started) + [start]).min() ?? start
        try RunOutputs.write(input, to: run, ranks: ranks, started: started, finished: Date())
    }

    final class Prepared {
        let plan: Plan
        let run: RunDirectory
        let specText: String
        let previous: [TaskRecord]
        let options: RunOptions
        /// Held for the whole run: no other process may write this directory meanwhile.
        let lock: RunLock
        /// Tasks a drain left running (set by `coordinate`).
        var abandoned = 0

        init(plan: Plan, run: RunDirectory, specText: String, previous: [TaskRecord], options: RunOptions, lock: RunLock) {
            self.plan = plan
            self.run = run
            self.specText = specText
            self.previous = previous
            self.options = options
            self.lock = lock
        }
    }

    /// Loads the sweep (fresh or resumed), expands it and claims the run directory.
    static func prepare(_ options: RunOptions, log: (String) -> Void = { _ in }) throws -> Prepared {
        if let resume = options.resumePath {
            let run = RunDirectory(resume)
            let lock = try run.claimForResume()
            return try resumed(run, lock: lock, options: options, log: log)
        }
        guard let path = options.specPath else { throw RunError(path: "sweep run", message: "give a sweep file or --resume RUN_DIR") }
        var (spec, text) = try SpecLoader.load(path, overrides: options.overrides)
        for section in spec.ignoredSections { log("warning: \(path): '\(section):' is not read by study \(spec.study.rawValue)") }
        // Datasets first: an imported graph is summarised on the images of the first dataset.
        let run = RunDirectory(options.output ?? spec.output)
        if FileManager.default.fileExists(atPath: run.datasetsURL.path), options.continueExisting {
            try ImportedDatasets.reread(&spec, run: run, log: log)
        } else {
            try ImportedDatasets.read(&spec)
        }
        try ImportedNetworks.hashFiles(&spec)
        let plan = try Plan.expand(spec)
        try ImportedNetworks.check(plan)
        let (lock, existing) = try run.create(specText: text, sweep: spec.name, continueExisting: options.continueExisting)
        if !existing { try ImportedNetworks.record(spec, in: run) }
        try ImportedDatasets.record(spec, in: run)
        if existing { return try resumed(run, lock: lock, options: options, plan: plan, log: log) }
        return Prepared(plan: plan, run: run, specText: text, previous: [], options: options, lock: lock)
    }

    /// An existing run of the locked directory `run`, checked against its stored sweep file;
    /// `plan` when the caller has already expanded that same text.
    private static func resumed(_ run: RunDirectory, lock: RunLock, options: RunOptions, plan: Plan? = nil,
                                log: (String) -> Void) throws -> Prepared {
        let text = try run.storedSpecText()
        let expanded = try plan ?? {
            var spec = try SpecLoader.parse(text, file: run.specURL.path)
            try ImportedDatasets.reread(&spec, run: run, log: log)
            try ImportedDatasets.record(spec, in: run)
            try ImportedNetworks.hashFiles(&spec, run: run)
            return try Plan.expand(spec)
        }()
        let (header, records, rejected) = try Journal.read(run.journalURL, study: expanded.spec.studyType)
        guard header.specHash == RunDirectory.specHash(text) else {
            throw RunError(path: run.journalURL.path, message: "journal belongs to a different sweep file than \(run.specURL.path)")
        }
        for line in rejected { log("\(run.journalURL.path):\(line.number): \(line.reason); moved to journal.rejected.jsonl, its task runs again") }
        try Journal.setAside(rejected, of: run.journalURL)
        try FileManager.default.createDirectory(at: run.checkpointsURL, withIntermediateDirectories: true)
        run.removeTornWrites()
        return Prepared(plan: expanded, run: run, specText: text, previous: records, options: options, lock: lock)
    }

    static func coordinate(_ p: Prepared, link: CoordinatorLink, log: @escaping (String) -> Void) throws -> RunSummary {
        let start = Date()
        let journal = try Journal(url: p.run.journalURL, header: JournalHeader(sweep: p.plan.spec.name, specHash: RunDirectory.specHash(p.specText),
                                                                               version: layersweepVersion))
        // On a terminal, one live line per busy rank under the finished-task lines.
        let status = LiveStatus.forStandardError(plain: log)
        let coordinator = Coordinator(plan: p.plan, run: p.run, journal: journal, link: link, specText: p.specText,
                                      previous: p.previous, retryFailed: p.options.retryFailed, log: status.log)
        coordinator.status = status
        defer { status.finish() }
        coordinator.drainGrace = p.options.drainGrace
        // A partial report and results every 30 s, off the dispatch path: open report.html while
        // the sweep runs.
        let refresher = BackgroundRefresh(write: { records in
            try writeResults(ReportInput(plan: p.plan, records: records), run: p.run, ranks: link.workers.count, start: start)
        }, log: log)
        defer { refresher.finish() }
        coordinator.refresh = { records in refresher.offer(records) }
        let resumed = coordinator.allRecords.count
        var before = resumed > 0 ? " (\(resumed) journaled before" : ""
        if coordinator.keptFailures > 0 {
            before += (before.isEmpty ? " (" : "; ") + "\(coordinator.keptFailures) failed: add --retry-failed to run them again"
        }
        if !before.isEmpty { before += ")" }
        let workers = link.workers.count
        log("sweep \(p.plan.spec.name): \(p.plan.tasks.count) tasks\(before), \(workers) worker\(workers == 1 ? "" : "s"), \(Parallel.threads) thread\(Parallel.threads == 1 ? "" : "s") each -> \(p.run.url.path)")
        coordinator.store = openStore(p, done: Set(coordinator.allRecords.map(\.key)), log: log)
        let ending: Coordinator.Ending
        do { ending = try coordinator.run() } catch { throw p.run.explainingWriteFailure(error) }
        let journaled = coordinator.allRecords.count
        let ran = journaled - resumed
        if let store = coordinator.store, !store.identities.isEmpty {
            log("training store \(store.store.root.path): \(coordinator.storeServed) training\(coordinator.storeServed == 1 ? "" : "s") taken from it, \(coordinator.storeAdded) added")
        }
        // Tasks that do no work: the loop's time is the runner's own.
        if !p.plan.spec.studyType.needsData, ran > 0 {
            log(String(format: "coordinator: %.0f µs per task (%.0f µs of its CPU), %d tasks in %@", 1e6 * coordinator.loopSeconds / Double(ran),
                       1e6 * coordinator.loopCPUSeconds / Double(ran), ran, ProgressText.duration(coordinator.loopSeconds)))
        }
        if case let .stopped(request, abandoned) = ending {
            let resume = "continue with: sweep run --resume \(p.run.url.path)"
            let what = "\(journaled) of \(p.plan.tasks.count) tasks journaled\(abandoned > 0 ? ", \(abandoned) running abandoned" : "")"
            if case .interrupt = request {
                // Exit at once: the journal is complete up to here; results files are rebuilt on
                // resume (or by `sweep report`).
                log("interrupted by \(request.name): \(what); \(resume)")
                _exit(request.exitStatus)
            }
            log("drained on \(request.name): \(what); \(resume)")
            p.abandoned = abandoned
        }
        refresher.finish()
        let input = ReportInput(plan: p.plan, records: coordinator.allRecords)
        do { try writeResults(input, run: p.run, ranks: workers, start: start) } catch { throw p.run.explainingWriteFailure(error) }
        return RunSummary(directory: p.run, rows: input.rows, seconds: Date().timeIntervalSince(start), workers: workers,
                          study: p.plan.spec.study, statistics: p.plan.spec.statistics, drained: ending != .complete, planned: p.plan.tasks.count)
    }
}

extension SweepLauncher {
    /// The training store of a run and the identities of its trainings still to run; nil when
    /// the store is off or the plan trains nothing. A dataset that cannot be read here leaves
    /// the run without the store (its tasks report the problem).
    static func openStore(_ p: Prepared, done: Set<String>, log: (String) -> Void) -> (store: TrainingStore, identities: [String: TrainingIdentity])? {
        guard let store = TrainingStore.resolve(disabled: p.options.noCache, setting: p.plan.spec.cache) else { return nil }
        guard p.plan.tasks.contains(where: { $0.kind == .train && !done.contains($0.key) }) else { return nil }
        do {
            let identities = try TrainingIdentity.of(p.plan, except: done)
            let held = identities.values.filter { store.holds($0.key) }.count
            log("training store \(store.root.path): holds \(held) of this run's \(identities.count) training\(identities.count == 1 ? "" : "s")")
            return (store, identities)
        } catch {
            log("warning: training store off for this run: \(SafeText.terminal("\(error)"))")
            return nil
        }
    }
}

/// This process's worker threads. The process waits for them to take their stop message before
/// it exits: a thread still busy (expanding the plan it was just sent) while the process tears
/// down its globals crashes it.
final class WorkerThreads {
    private let group = DispatchGroup()

    /// A worker thread. Task errors become results; an error of the loop itself (a broken
    /// message) leaves the coordinator waiting forever, so it ends the process: the journal keeps
    /// every finished result for `--resume`.
    func start(hub: LocalHub, id: Int, host: String, log: @escaping (String) -> Void) {
        group.enter()
        let t = Thread { [group] in
            defer { group.leave() }
            do { try WorkerLoop.run(link: hub.workerLink(id), host: host, threads: Parallel.threads) } catch {
                log("worker \(id) failed: \(error); finished results are journaled, continue with --resume")
                exit(70)
            }
        }
        t.stackSize = 16 << 20
        t.start()
    }

    /// Waits (a minute at most: a worker that never answers must not hang the exit) for every
    /// thread to have returned from its loop.
    func waitForStop() { _ = group.wait(timeout: .now() + 60) }
}

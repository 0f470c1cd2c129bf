import Foundation
import SweepCore
import TensorEngine

/// How `sweep run` was asked to run.
public struct RunOptions: Sendable {
    public var specPath: String?
    public var resumePath: String?
    public var output: String?
    /// Worker threads in this process when not under an MPI launcher (`-j`).
    public var localWorkers: Int
    /// Engine threads per worker; nil: the node's cores divided among its workers.
    public var threads: Int?
    /// Whether rank 0 also runs a worker under MPI; nil: when the world has at most 16 ranks.
    public var coordinatorWorks: Bool?

    public init(specPath: String? = nil, resumePath: String? = nil, output: String? = nil, localWorkers: Int = 1,
                threads: Int? = nil, coordinatorWorks: Bool? = nil) {
        self.specPath = specPath
        self.resumePath = resumePath
        self.output = output
        self.localWorkers = localWorkers
        self.threads = threads
        self.coordinatorWorks = coordinatorWorks
    }
}

/// What a finished (or resumed) run produced.
public struct RunSummary: Sendable {
    public let directory: RunDirectory
    public let rows: [ResultRow]
    public let seconds: Double
    public let workers: Int
    public let study: SweepSpec.Study
}

/// Starts a sweep: under mpirun/srun as MPI ranks (rank 0 coordinates), otherwise as worker
/// threads in this process. Both paths run the same coordinator and worker loops.
public enum SweepLauncher {
    /// Runs the sweep; returns the summary on the coordinating process, nil on other ranks.
    public static func run(_ options: RunOptions, log: @escaping (String) -> Void) throws -> RunSummary? {
        if MPIWorld.isLaunched {
            let world = try MPIWorld()
            defer { world.finalize() }
            return try runMPI(options, world: world, log: log)
        }
        let hub = LocalHub(workers: Array(0..<max(1, options.localWorkers)))
        Parallel.configure(threads: options.threads ?? max(1, Parallel.availableCores / max(1, options.localWorkers)))
        let prepared = try prepare(options)
        let host = ProcessInfo.processInfo.hostName
        for id in hub.workerIDs { startWorkerThread(hub: hub, id: id, host: host, log: log) }
        return try coordinate(prepared, link: hub.coordinatorLink(), log: log)
    }

    private static func runMPI(_ options: RunOptions, world: MPIWorld, log: @escaping (String) -> Void) throws -> RunSummary? {
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let threads = options.threads ?? max(1, min(Parallel.availableCores, cores / max(1, world.localSize)))
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
        if let local { startWorkerThread(hub: local, id: 0, host: host, log: log) }
        let link = MPICoordinatorLink(world: world, local: local)
        let prepared: Prepared
        do {
            prepared = try prepare(options)
        } catch {
            // Nothing ran yet and every worker is idle: tell them to stop, report the bad input.
            for w in link.workers { try? link.send(.stop, to: w) }
            throw error
        }
        do {
            return try coordinate(prepared, link: link, log: log)
        } catch {
            // Workers may be mid-task or mid-send: stop the whole job rather than hang in finalize.
            log("Error: \(error)")
            log("finished results are in \(prepared.run.journalURL.path); continue with: sweep run --resume \(prepared.run.url.path)")
            world.abort(1)
        }
    }

    /// A worker thread. Task errors become results; an error of the loop itself (a broken
    /// message) leaves the coordinator waiting forever, so it ends the process: the journal keeps
    /// every finished result for `--resume`.
    private static func startWorkerThread(hub: LocalHub, id: Int, host: String, log: @escaping (String) -> Void) {
        let t = Thread {
            do { try WorkerLoop.run(link: hub.workerLink(id), host: host, threads: Parallel.threads) } catch {
                log("worker \(id) failed: \(error); finished results are journaled, continue with --resume")
                exit(70)
            }
        }
        t.stackSize = 16 << 20
        t.start()
    }

    /// results.csv, results.json and report.html for the records so far.
    static func writeResults(_ input: ReportInput, run: RunDirectory, ranks: Int, start: Date) throws {
        let started = (input.records.map(\.started) + [start]).min() ?? start
        try ReportPage.writeOutputs(input, to: run, ranks: ranks, started: started, finished: Date())
    }

    struct Prepared {
        let plan: Plan
        let run: RunDirectory
        let specText: String
        let previous: [TaskRecord]
        let header: JournalHeader
    }

    /// Loads the sweep (fresh or resumed), expands it and prepares the run directory.
    static func prepare(_ options: RunOptions) throws -> Prepared {
        if let resume = options.resumePath {
            let run = RunDirectory(resume)
            let text = try run.storedSpecText()
            let spec = try SpecLoader.parse(text, file: run.specURL.path)
            let (header, records) = FileManager.default.fileExists(atPath: run.journalURL.path)
                ? try Journal.read(run.journalURL)
                : (JournalHeader(sweep: spec.name, specHash: RunDirectory.specHash(text), version: layersweepVersion), [])
            guard header.specHash == RunDirectory.specHash(text) else {
                throw RunError(path: run.journalURL.path, message: "journal belongs to a different sweep file than \(run.specURL.path)")
            }
            try FileManager.default.createDirectory(at: run.checkpointsURL, withIntermediateDirectories: true)
            return Prepared(plan: try Plan.expand(spec), run: run, specText: text, previous: records, header: header)
        }
        guard let path = options.specPath else { throw RunError(path: "sweep run", message: "give a sweep file or --resume RUN_DIR") }
        let (spec, text) = try SpecLoader.load(path)
        let plan = try Plan.expand(spec)
        let run = RunDirectory(options.output ?? spec.output)
        try run.create(specText: text)
        return Prepared(plan: plan, run: run, specText: text, previous: [],
                        header: JournalHeader(sweep: spec.name, specHash: RunDirectory.specHash(text), version: layersweepVersion))
    }

    static func coordinate(_ p: Prepared, link: CoordinatorLink, log: @escaping (String) -> Void) throws -> RunSummary {
        let start = Date()
        let journal = try Journal(url: p.run.journalURL, header: p.header)
        let coordinator = Coordinator(plan: p.plan, run: p.run, journal: journal, link: link, specText: p.specText,
                                      previous: p.previous, log: log)
        // A partial report and results every 30 s: open report.html while the sweep runs.
        coordinator.refresh = { records in
            let input = ReportInput(plan: p.plan, records: records)
            try writeResults(input, run: p.run, ranks: link.workers.count, start: start)
        }
        let resumed = p.previous.count
        log("sweep \(p.plan.spec.name): \(p.plan.tasks.count) tasks\(resumed > 0 ? " (\(resumed) journaled before)" : ""), \(link.workers.count) workers, \(Parallel.threads) threads each -> \(p.run.url.path)")
        try coordinator.run()
        let input = ReportInput(plan: p.plan, records: coordinator.allRecords)
        try writeResults(input, run: p.run, ranks: link.workers.count, start: start)
        let rows = input.rows
        return RunSummary(directory: p.run, rows: rows, seconds: Date().timeIntervalSince(start), workers: link.workers.count,
                          study: p.plan.spec.study)
    }
}

import ArgumentParser
import Cluster
import Foundation
import PairedStatistics
import Rendering
import Studies
import SweepCore
import SweepFile
import SweepPlan
import SweepRecords
import SweepReport
import SweepStore
import TensorEngine

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Run a sweep: train, mask and evaluate every point, journaled and resumable.",
        discussion: """
        Without a launcher, workers are threads of this process (-j N). Under mpirun or srun every \
        rank is a worker and rank 0 coordinates:
          sweep run sweeps/quick.yaml -j 2
          sweep run sweeps/quick.yaml training.epochs=1 seeds=1
          mpirun -n 32 sweep run sweeps/wang2020.yaml
          sweep run --resume runs/wang2020

        Exit status: 0 when every task has a record and none failed; 1 on bad input or when tasks \
        failed (fix the cause, then --resume --retry-failed); 75 after a drain (SIGUSR1); 130/143 \
        after SIGINT/SIGTERM. Every finished result is journaled in each case.
        """)

    @Argument(help: "The sweep file (YAML).") var file: String?
    @Argument(help: "Changes to the sweep file's fields, key=value (e.g. training.epochs=1 seeds=1); the run records them in its spec.")
    var overrides: [String] = []
    @Option(help: "Continue the run in this directory (runs only what its journal lacks).") var resume: String?
    @Option(name: .shortAndLong, help: "Run directory (default: the sweep file's `output`).") var output: String?
    @Option(name: [.customShort("j"), .long], help: "Worker threads when not under mpirun/srun.") var jobs = 1
    @Option(help: "Engine threads per worker (default: this node's cores divided among its workers).") var threads: Int?
    @Option(help: "Whether rank 0 also runs tasks under MPI: auto (when ≤ 16 ranks), yes, no.") var coordinatorWorks = "auto"
    @Flag(help: "With --resume: run failed tasks (and the tasks they made skip) again.") var retryFailed = false
    @Flag(name: .customLong("continue"), help: "If the run directory already holds this sweep's journal, continue it instead of refusing (job scripts that restart).")
    var continueExisting = false
    @Option(help: "Seconds a drain (SIGUSR1) lets running tasks finish before leaving them to a resume.") var grace: Double = 60
    @Flag(help: "Neither take trainings from the training store nor add them (see sweep cache).") var noCache = false

    func validate() throws {
        guard (file == nil) != (resume == nil) else { throw ValidationError("give either a sweep file or --resume RUN_DIR") }
        guard overrides.isEmpty || resume == nil else { throw FlagError("a resumed run keeps its recorded spec: key=value overrides go with a sweep file") }
        guard (1...Parallel.maxThreads).contains(jobs) else { throw FlagError("-j must be between 1 and \(Parallel.maxThreads)") }
        try EngineOptions.check(threads: threads)
        guard ["auto", "yes", "no"].contains(coordinatorWorks) else { throw FlagError("--coordinator-works is auto, yes or no") }
        guard grace.isFinite, grace >= 0 else { throw FlagError("--grace must be 0 or more seconds") }
    }

    func run() throws {
        var options = RunOptions(specPath: file, overrides: overrides, resumePath: resume, output: output, localWorkers: jobs, threads: threads,
                                 coordinatorWorks: coordinatorWorks == "auto" ? nil : coordinatorWorks == "yes",
                                 retryFailed: retryFailed, continueExisting: continueExisting, drainGrace: grace)
        options.noCache = noCache
        guard let summary = try SweepLauncher.run(options, log: report) else { return }
        let counts = Dictionary(grouping: summary.rows, by: \.status.rawValue).mapValues(\.count)
        let countText = counts.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
        let workers = "\(summary.workers) worker\(summary.workers == 1 ? "" : "s")"
        if summary.drained {
            report("drained: \(summary.rows.count) of \(summary.planned) tasks (\(countText)) in \(formatDuration(summary.seconds)) on \(workers)")
        } else {
            report("done: \(summary.rows.count) tasks (\(countText)) in \(formatDuration(summary.seconds)) on \(workers)")
        }
        for line in ProgressText.summary(rows: summary.rows, study: StudyRegistry.study(of: summary.study),
                                              statistics: summary.statistics) { report(line) }
        emit("report:  \(summary.directory.reportURL.path)")
        emit("results: \(summary.directory.resultsCSV.path)")
        emit("         \(summary.directory.resultsJSON.path)")
        emit("figures: \(summary.directory.figuresURL.path)/ (each figure as SVG and PDF, each table as CSV and LaTeX)")
        if summary.drained {
            report("continue with: sweep run --resume \(summary.directory.url.path)")
            throw ExitCode(StopRequest.drain.exitStatus)
        }
        let failed = counts[TaskStatus.failed.rawValue] ?? 0
        if failed > 0 {
            report("Error: \(failed) task\(failed == 1 ? "" : "s") failed (see the error column of results.csv); after fixing the cause: sweep run --resume \(summary.directory.url.path) --retry-failed")
            throw ExitCode.failure
        }
    }
}

struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan", abstract: "Print a sweep's task graph (counts per kind, the first tasks, estimated cost) without running it.")

    @Argument(help: "The sweep file (YAML).") var file: String
    @Argument(help: "Changes to the sweep file's fields, key=value, as for sweep run.") var overrides: [String] = []
    @Option(help: "How many tasks to list.") var show = 12
    @Option(help: "Predict the run on this many ranks (simulating the scheduler with the cost model).") var ranks: Int?
    @Option(help: "Cores per node of that allocation (for the node count; default 32).") var coresPerNode = 32
    @Flag(help: "Print the whole plan as JSON: every task (key, kind, dataset, model, seed, unit, mask, dependencies, cost), counts, the estimate and, with --ranks, the forecast.")
    var json = false
    @Flag(help: "Plan as sweep run --no-cache would run it: every training trained.") var noCache = false

    /// The plan as `--json` prints it.
    struct PlanJSON: Encodable {
        struct Task: Encodable {
            let key, kind, dataset, model: String
            let seed: Int
            let unit, mask, file: String?
            let dependencies: [String]
            let cost: Double
        }
        struct Forecast: Encodable {
            let ranks: Int
            let makespanSeconds, lowerBoundSeconds: Double
            enum CodingKeys: String, CodingKey { case ranks, makespanSeconds = "makespan_seconds", lowerBoundSeconds = "lower_bound_seconds" }
        }
        let name, study, output: String
        let counts: [String: Int]
        let multiplyAdds, estimatedSeconds: Double
        let forecast: Forecast?
        let store: StoreForecast?
        let tasks: [Task]
        enum CodingKeys: String, CodingKey {
            case name, study, output, counts, forecast, store, tasks
            case multiplyAdds = "multiply_adds", estimatedSeconds = "estimated_seconds_one_core"
        }
    }

    func validate() throws {
        if let ranks, !(1...1_000_000).contains(ranks) { throw FlagError("--ranks must be between 1 and 1000000") }
        guard (1...100_000).contains(coresPerNode) else { throw FlagError("--cores-per-node must be between 1 and 100000") }
    }

    func run() throws {
        var (spec, _) = try SpecLoader.load(file, overrides: overrides)
        for section in spec.ignoredSections { report("warning: \(file): '\(section):' is not read by study \(spec.study.rawValue)") }
        try ImportedDatasets.read(&spec)
        try ImportedNetworks.hashFiles(&spec)
        let plan = try Plan.expand(spec)
        try ImportedNetworks.check(plan)
        let byKind = Dictionary(grouping: plan.tasks, by: \.kind)
        let store = StoreForecast.of(plan, disabled: noCache)
        if json { return try printJSON(plan, byKind: byKind, store: store) }
        emit("sweep \(spec.name) (study \(spec.study.rawValue)): \(plan.tasks.count) tasks -> \(spec.output)")
        let width = max(9, byKind.keys.map(\.rawValue.count).max() ?? 0)
        for kind in PlanningStudies.kindOrder {
            guard let tasks = byKind[kind] else { continue }
            let cost = tasks.reduce(0) { $0 + $1.cost }
            emit("  \(kind.rawValue.padding(toLength: width, withPad: " ", startingAt: 0)) \(String(tasks.count).padding(toLength: 6, withPad: " ", startingAt: 0)) \(String(format: "%5.1f%%", 100 * cost / max(plan.totalCost, 1))) of the cost")
        }
        let seconds = ScheduleForecast.seconds(forCost: plan.totalCost)
        emit(String(format: "  estimated work: %.3g multiply-adds, about %@ on one core", plan.totalCost, formatDuration(seconds)))
        if let store { for line in store.lines { emit("  " + line) } }
        if let ranks {
            let f = ScheduleForecast.forecast(plan, ranks: ranks)
            let nodes = (ranks + coresPerNode - 1) / coresPerNode
            emit("on \(ranks) rank\(ranks == 1 ? "" : "s") (\(nodes) node\(nodes == 1 ? "" : "s") of \(coresPerNode) cores), by the cost model:")
            emit("  predicted makespan  \(formatDuration(f.makespan))  (critical path first, spare ranks in training gangs;"
                  + " one rank per task: \(formatDuration(f.makespanOneRank)); longest task first: \(formatDuration(f.makespanOwnCost)))")
            emit("  lower bound         \(formatDuration(f.lowerBound))  = max(work / ranks \(formatDuration(f.workBound)), longest chain with trainings on \(f.gang)-rank gangs \(formatDuration(f.gangChainBound)))")
            emit(String(format: "  ratio               %.2f", f.makespan / max(f.lowerBound, 1e-9))
                  + "  (each task runs on one rank: the longest chain alone takes \(formatDuration(f.chainBound)))")
        }
        if show > 0 { emit("first tasks (in the order a single worker would run them):") }
        for key in firstTasks(plan) { let t = plan[key]!; emit("  \(t.key)\(t.dependencies.isEmpty ? "" : "  <- \(t.dependencies.joined(separator: ", "))")") }
    }

    /// The first `show` tasks in the order the scheduler would hand them out.
    private func firstTasks(_ plan: Plan) -> [String] {
        var scheduler = Scheduler(plan.tasks, workers: ranks ?? 1)
        var keys: [String] = []
        while keys.count < show, let task = scheduler.next() {
            keys.append(task.key)
            scheduler.finished(task.key, succeeded: true)
        }
        return keys
    }

    private func printJSON(_ plan: Plan, byKind: [TaskKind: [PlannedTask]], store: StoreForecast?) throws {
        let forecast = ranks.map { r -> PlanJSON.Forecast in
            let f = ScheduleForecast.forecast(plan, ranks: r)
            return PlanJSON.Forecast(ranks: r, makespanSeconds: f.makespan, lowerBoundSeconds: f.lowerBound)
        }
        let tasks = plan.tasks.map { t in
            PlanJSON.Task(key: t.key, kind: t.kind.rawValue, dataset: t.dataset, model: t.model, seed: t.seedIndex, unit: t.unit,
                          mask: t.mask?.rawValue, file: t.checkpointFile, dependencies: t.dependencies, cost: t.cost)
        }
        let document = PlanJSON(name: plan.spec.name, study: plan.spec.study.rawValue, output: plan.spec.output,
                                counts: byKind.reduce(into: [:]) { $0[$1.key.rawValue] = $1.value.count }, multiplyAdds: plan.totalCost,
                                estimatedSeconds: ScheduleForecast.seconds(forCost: plan.totalCost), forecast: forecast, store: store, tasks: tasks)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        print(String(decoding: try encoder.encode(document), as: UTF8.self))
    }
}

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report", abstract: "Rebuild a run's report.html (and results files) from its journal, also while it runs or after a crash.")

    @Argument(help: "The run directory (holds spec.yaml and journal.jsonl).") var runDirectory: String
    @Option(help: "Interval level for this report (default: the sweep file's statistics.level, else 0.95).") var level: Double?
    @Option(help: "|Δ| below this is trivial, for this report (default: statistics.threshold, else 0.01).") var threshold: Double?
    @Option(help: "Multiple-testing correction for this report: holm, bh or none (default: statistics.correction, else holm).") var correction: String?

    func run() throws {
        let run = RunDirectory(runDirectory)
        var input = try ReportInput.load(run)
        // The calls are made at report time: other settings need no new run.
        var statistics = input.plan.spec.statistics
        if let level { statistics.level = level }
        if let threshold { statistics.threshold = threshold }
        if let correction {
            guard let chosen = Correction(rawValue: correction) else {
                throw FlagError("--correction \(SafeText.terminal(correction)) is not one of \(Correction.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            statistics.correction = chosen
        }
        if let problem = statistics.problems.first { throw FlagError("--\(problem.field) \(problem.requirement)") }
        input.plan.spec.statistics = statistics
        let ran = input.records.filter { $0.rank >= 0 }
        let now = Date()
        try RunOutputs.write(input, to: run, ranks: Set(ran.map(\.rank)).count, started: ran.map(\.started).min() ?? now,
                                    finished: ran.map(\.finished).max() ?? now)
        let counts = Dictionary(grouping: input.rows, by: \.status.rawValue).mapValues(\.count)
        report("\(input.rows.count) of \(input.plan.tasks.count) tasks journaled (\(counts.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")))\(input.complete ? "" : "; partial report")")
        for line in ProgressText.summary(rows: input.rows, study: input.plan.spec.studyType, statistics: input.plan.spec.statistics) { report(line) }
        emit("wrote:")
        for file in run.resultFiles(study: input.plan.spec.studyType) { emit("  \(file.path)") }
        emit("  \(run.figuresURL.path)/ (figures as SVG and PDF, tables as CSV and LaTeX)")
    }
}

struct CompareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare", abstract: "Two runs of the same masks side by side: each unit's Δ, interval and call in both, and which calls differ.")

    @Argument(help: "The first run directory.") var runA: String
    @Argument(help: "The second run directory.") var runB: String
    @Option(name: .shortAndLong, help: "The HTML page to write.") var output = "compare.html"

    func run() throws {
        try OutputPath.checkWritableFile(output)
        let comparison = try RunComparison(RunDirectory(runA), RunDirectory(runB))
        for line in comparison.table { emit(line) }
        let page = URL(fileURLWithPath: output)
        let drawn = comparison.output
        try Data(drawn.html.utf8).write(to: page, options: .atomic)
        emit("page: \(output)")
        // The scatter plot and tables as files too, beside the page (compare-scatter.svg, ...).
        let stem = page.deletingPathExtension().lastPathComponent
        for file in drawn.files {
            let url = page.deletingLastPathComponent().appendingPathComponent("\(stem)-\(file.name)")
            try file.data.write(to: url, options: .atomic)
            emit("       \(url.path)")
        }
    }
}

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "What a run is doing: tasks journaled, what runs on each rank and its latest progress, the ETA.")

    @Argument(help: "The run directory.") var runDirectory: String

    func run() throws {
        for line in try RunStatus.describe(RunDirectory(runDirectory)) { emit(line) }
    }
}

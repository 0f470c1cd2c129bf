import HeapModule
import SweepFile

/// What a sweep's schedule will take on a given allocation, by the cost model: the scheduler run
/// in simulation (tasks last their estimated seconds; trainings on the gangs `GangPolicy` gives
/// them), against lower bounds no schedule can beat.
public struct ScheduleForecast: Sendable {
    public let ranks: Int
    /// Simulated wall time with the critical-path scheduler and gangs, seconds.
    public let makespan: Double
    /// The same with every task on one rank (no gangs), for comparison.
    public let makespanOneRank: Double
    /// One rank per task, in the former own-cost-first order.
    public let makespanOwnCost: Double
    /// Total work over the ranks.
    public let workBound: Double
    /// The longest dependency chain with every task on one rank.
    public let chainBound: Double
    /// The longest chain if each training ran data-parallel on a gang of `gang` ranks (perfect
    /// scaling): what an allocation could reach at best.
    public let gangChainBound: Double
    public let gang: Int

    /// max(work ÷ ranks, longest chain at full gang speed-up).
    public var lowerBound: Double { max(workBound, gangChainBound) }

    /// Seconds of one rank (one core) per unit of task cost: ~25 GFLOP/s of useful work per core,
    /// 2 FLOP per multiply-add (a training's cost already counts 3 passes per image).
    public static func seconds(forCost cost: Double) -> Double { 2 * cost / 25e9 }

    public static func forecast(_ plan: Plan, ranks: Int) -> ScheduleForecast {
        let workers = max(1, ranks)
        let gang = min(workers, GangPolicy.maxGang)
        let total = seconds(forCost: plan.totalCost)
        let study = plan.spec.plannedStudy
        return ScheduleForecast(
            ranks: workers,
            makespan: simulate(plan.tasks, workers: workers, priority: .criticalPath,
                               gangable: { GangPolicy.gangable($0, study: study) }),
            makespanOneRank: simulate(plan.tasks, workers: workers, priority: .criticalPath),
            makespanOwnCost: simulate(plan.tasks, workers: workers, priority: .ownCost),
            workBound: total / Double(workers),
            chainBound: longestChain(plan.tasks) { seconds(forCost: $0.cost) },
            gangChainBound: longestChain(plan.tasks) { seconds(forCost: $0.cost) / ($0.kind.trains ? Double(gang) : 1) },
            gang: gang)
    }

    /// Event-driven simulation: idle workers take the scheduler's next tasks, as the coordinator
    /// hands them out (spare workers join `gangable` trainings by `GangPolicy`); a task lasts its
    /// estimated seconds over its gang's speed-up. Returns the makespan.
    public static func simulate(_ tasks: [PlannedTask], workers: Int, priority: Scheduler.Priority,
                                gangable: ((PlannedTask) -> Bool)? = nil,
                                duration: (PlannedTask) -> Double = { seconds(forCost: $0.cost) }) -> Double {
        struct Running: Comparable {
            let end: Double, key: String, members: Int
            static func < (a: Running, b: Running) -> Bool { a.end != b.end ? a.end < b.end : a.key < b.key }
        }
        var scheduler = Scheduler(tasks, workers: workers, priority: priority)
        var busy = Heap<Running>()
        var idle = workers, clock = 0.0
        while !scheduler.isDone {
            var batch: [PlannedTask] = []
            while batch.count < idle, let t = scheduler.next() { batch.append(t) }
            let sizes = gangable.map { GangPolicy.sizes(for: batch, scheduler: scheduler, spare: idle - batch.count, gangable: $0, duration: duration) }
                ?? Array(repeating: 1, count: batch.count)
            for (t, members) in zip(batch, sizes) {
                busy.insert(Running(end: clock + duration(t) / GangPolicy.speedup(members), key: t.key, members: members))
                idle -= members
            }
            guard let first = busy.popMin() else { break }
            clock = first.end
            scheduler.finished(first.key, succeeded: true)
            idle += first.members
        }
        return clock
    }

    /// The longest path through the DAG, each task weighing `weight`.
    static func longestChain(_ tasks: [PlannedTask], weight: (PlannedTask) -> Double) -> Double {
        let byKey = Dictionary(tasks.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
        var finish: [String: Double] = [:]
        func end(_ key: String) -> Double {
            if let f = finish[key] { return f }
            guard let t = byKey[key] else { return 0 }
            let f = weight(t) + (t.dependencies.map(end).max() ?? 0)
            finish[key] = f
            return f
        }
        return tasks.map { end($0.key) }.max() ?? 0
    }
}

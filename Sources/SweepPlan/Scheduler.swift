import HeapModule
import SweepFile

/// Which task runs next: dynamic, dependency-aware, most urgent first among ready tasks.
///
/// A pure state machine (no I/O, no clocks), so it is tested by simulation. Tasks differ 100x in
/// cost, and a cheap training can gate hours of evaluations: a ready task's urgency is the
/// longest remaining path through the DAG from it (its cost plus the longest chain that waits on
/// it), or, when more work waits on it than the workers can absorb in that time, its cost plus
/// that work spread over the workers. Handing out the most urgent task first keeps the makespan
/// near the lower bound max(total / workers, critical path) without any static split.
public struct Scheduler {
    /// How ready tasks are ordered.
    public enum Priority: Sendable {
        /// Longest remaining path (and gated work over the workers) first: the default.
        case criticalPath
        /// The task's own cost only (the policy before critical paths; kept for comparison).
        case ownCost
    }

    private struct Ready: Comparable {
        let priority: Double
        let key: String
        // Heap is a min-max heap; `max` is the most urgent, ties broken by the smaller key.
        static func < (a: Ready, b: Ready) -> Bool { a.priority != b.priority ? a.priority < b.priority : a.key > b.key }
    }

    private let tasks: [String: PlannedTask]
    private let priority: [String: Double]
    private var waitingOn: [String: Int] = [:]
    private var dependents: [String: [String]] = [:]
    private var ready = Heap<Ready>()
    private var running: Set<String> = []
    private var outstanding: Int
    public private(set) var remainingCost: Double

    /// A scheduler over `plan` for `workers` workers, with `done` tasks already finished
    /// (resume); tasks whose dependencies already failed are reported by `failedAtStart`.
    public init(_ plan: [PlannedTask], done: Set<String> = [], failed: Set<String> = [], workers: Int = 1,
                priority policy: Priority = .criticalPath) {
        tasks = Dictionary(plan.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
        priority = policy == .ownCost ? Dictionary(plan.map { ($0.key, $0.cost) }, uniquingKeysWith: { a, _ in a })
            : Scheduler.urgency(plan.filter { !done.contains($0.key) }, workers: max(1, workers))
        outstanding = 0
        remainingCost = 0
        for t in plan where !done.contains(t.key) {
            outstanding += 1
            remainingCost += t.cost
            let pending = t.dependencies.filter { !done.contains($0) }
            waitingOn[t.key] = pending.count
            for d in pending { dependents[d, default: []].append(t.key) }
            if pending.isEmpty { ready.insert(Ready(priority: priority[t.key] ?? t.cost, key: t.key)) }
        }
        failedAtStart = plan.filter { t in !done.contains(t.key) && t.dependencies.contains(where: failed.contains) }.map(\.key)
    }

    /// Each task's urgency: max(longest path from it to the end of the DAG, its cost plus the
    /// work waiting on it over the workers). Work shared by several parents (a reuse point needs
    /// two trainings) is split among them.
    static func urgency(_ plan: [PlannedTask], workers: Int) -> [String: Double] {
        let byKey = Dictionary(plan.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
        var children: [String: [String]] = [:]
        for t in plan { for d in t.dependencies where byKey[d] != nil { children[d, default: []].append(t.key) } }
        var path: [String: Double] = [:], downstream: [String: Double] = [:]
        // Children before parents: repeatedly settle tasks whose children are all settled.
        var unsettled = Dictionary(plan.map { ($0.key, children[$0.key]?.count ?? 0) }, uniquingKeysWith: { a, _ in a })
        var stack = plan.filter { (children[$0.key] ?? []).isEmpty }.map(\.key)
        while let key = stack.popLast(), let t = byKey[key] {
            let kids = children[key] ?? []
            path[key] = t.cost + (kids.compactMap { path[$0] }.max() ?? 0)
            downstream[key] = kids.reduce(0) { sum, c in
                let parents = Double(max(1, byKey[c]?.dependencies.filter { byKey[$0] != nil }.count ?? 1))
                return sum + ((byKey[c]?.cost ?? 0) + (downstream[c] ?? 0)) / parents
            }
            for d in t.dependencies where byKey[d] != nil {
                unsettled[d, default: 1] -= 1
                if unsettled[d] == 0 { stack.append(d) }
            }
        }
        var out: [String: Double] = [:]
        for t in plan { out[t.key] = max(path[t.key] ?? t.cost, t.cost + (downstream[t.key] ?? 0) / Double(workers)) }
        return out
    }

    /// A task's urgency (remaining path, in cost units) as the ready queue orders it.
    public func urgency(of key: String) -> Double { priority[key] ?? tasks[key]?.cost ?? 0 }

    /// Tasks that cannot run because a dependency failed before a resume; call `finished(_:succeeded:)` on them.
    public let failedAtStart: [String]

    /// True when every task has finished (or been skipped).
    public var isDone: Bool { outstanding == 0 }
    public var readyCount: Int { ready.count }
    public var runningCount: Int { running.count }

    /// The most urgent ready task, now marked running; nil when none is ready.
    public mutating func next() -> PlannedTask? {
        guard let top = ready.popMax() else { return nil }
        running.insert(top.key)
        return tasks[top.key]
    }

    /// Records a finished task. On failure its dependents (transitively) are returned: they will
    /// not run and count as finished.
    @discardableResult
    public mutating func finished(_ key: String, succeeded: Bool) -> [PlannedTask] {
        guard let task = tasks[key], waitingOn[key] != nil else { return [] }
        running.remove(key)
        waitingOn[key] = nil
        outstanding -= 1
        remainingCost -= task.cost
        var skipped: [PlannedTask] = []
        for d in dependents[key] ?? [] {
            guard let count = waitingOn[d] else { continue }
            if succeeded {
                waitingOn[d] = count - 1
                if count - 1 == 0, let t = tasks[d] { ready.insert(Ready(priority: priority[d] ?? t.cost, key: t.key)) }
            } else if let t = tasks[d] {
                skipped.append(t)
                skipped += finished(d, succeeded: false)
            }
        }
        return skipped
    }
}

import HeapModule

/// Which task runs next: dynamic, dependency-aware, longest-expected-first among ready tasks.
///
/// A pure state machine (no I/O, no clocks), so it is tested by simulation. Tasks differ 100x in
/// cost; handing out the longest ready task first keeps the makespan near the lower bound
/// max(total / workers, critical path) without any static split.
public struct Scheduler {
    private struct Ready: Comparable {
        let cost: Double
        let key: String
        // Heap is a min-max heap; `max` is the costliest, ties broken by the smaller key.
        static func < (a: Ready, b: Ready) -> Bool { a.cost != b.cost ? a.cost < b.cost : a.key > b.key }
    }

    private let tasks: [String: PlannedTask]
    private var waitingOn: [String: Int] = [:]
    private var dependents: [String: [String]] = [:]
    private var ready = Heap<Ready>()
    private var running: Set<String> = []
    private var outstanding: Int
    public private(set) var remainingCost: Double

    /// A scheduler over `plan`, with `done` tasks already finished (resume); tasks whose
    /// dependencies already failed are reported by `initiallySkipped`.
    public init(_ plan: [PlannedTask], done: Set<String> = [], failed: Set<String> = []) {
        tasks = Dictionary(plan.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
        outstanding = 0
        remainingCost = 0
        for t in plan where !done.contains(t.key) {
            outstanding += 1
            remainingCost += t.cost
            let pending = t.dependencies.filter { !done.contains($0) }
            waitingOn[t.key] = pending.count
            for d in pending { dependents[d, default: []].append(t.key) }
            if pending.isEmpty { ready.insert(Ready(cost: t.cost, key: t.key)) }
        }
        failedAtStart = plan.filter { t in !done.contains(t.key) && t.dependencies.contains(where: failed.contains) }.map(\.key)
    }

    /// Tasks that cannot run because a dependency failed before a resume; call `finished(_:succeeded:)` on them.
    public let failedAtStart: [String]

    /// True when every task has finished (or been skipped).
    public var isDone: Bool { outstanding == 0 }
    public var readyCount: Int { ready.count }
    public var runningCount: Int { running.count }

    /// The costliest ready task, now marked running; nil when none is ready.
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
                if count - 1 == 0, let t = tasks[d] { ready.insert(Ready(cost: t.cost, key: t.key)) }
            } else if let t = tasks[d] {
                skipped.append(t)
                skipped += finished(d, succeeded: false)
            }
        }
        return skipped
    }
}

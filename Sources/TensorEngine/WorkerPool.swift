import Foundation
import Synchronization

/// Helper threads that run one parallel loop at a time with the calling thread.
///
/// libdispatch's `concurrentPerform` sometimes ran both halves of a loop on one thread when its
/// pool judged the CPUs busy (throughput then dropped 4x at random); a pool of our own threads
/// does not. Helpers spin briefly on an atomic generation counter before sleeping, because a
/// training step runs hundreds of short loops and a futex wake-up per loop costs more than the
/// loop. Each calling thread gets its own pool, so worker threads of `sweep run -j N` never
/// share one.
final class WorkerPool: @unchecked Sendable {
    let helpers: Int
    private let generation = Atomic<Int>(0)
    private let remaining = Atomic<Int>(0)
    private let condition = NSCondition()
    private var job: ((Int) -> Void)?

    /// How long an idle helper polls before it sleeps (about 100 µs).
    private static let spins = 20_000

    init(helpers: Int) {
        self.helpers = helpers
        for index in 1...max(helpers, 1) where helpers > 0 {
            // The threads keep their pool alive: pools live as long as the process.
            let thread = Thread { self.serve(index) }
            thread.stackSize = 4 << 20
            thread.start()
        }
    }

    /// Runs `body(i)` for i in 0...helpers, i = 0 on the calling thread; returns when all are done.
    func run(_ body: (Int) -> Void) {
        withoutActuallyEscaping(body) { body in
            condition.lock()
            job = body
            remaining.store(helpers, ordering: .releasing)
            generation.add(1, ordering: .releasing)
            condition.broadcast()
            condition.unlock()
            body(0)
            var polls = 0
            while remaining.load(ordering: .acquiring) > 0 {
                polls += 1
                if polls > 1000 { sched_yield() }
            }
            condition.lock()
            job = nil
            condition.unlock()
        }
    }

    private func serve(_ index: Int) {
        var seen = 0
        while true {
            var polls = 0
            while generation.load(ordering: .acquiring) == seen && polls < WorkerPool.spins { polls += 1 }
            condition.lock()
            while generation.load(ordering: .acquiring) == seen { condition.wait() }
            seen = generation.load(ordering: .acquiring)
            do {
                // The job must be released before the caller's `run` returns (it is a
                // non-escaping closure), so it lives only in this scope.
                let work = job
                condition.unlock()
                work?(index)
            }
            remaining.subtract(1, ordering: .releasing)
        }
    }

    /// The calling thread's pool with `helpers` helper threads.
    static func forCurrentThread(helpers: Int) -> WorkerPool {
        let key = "layersweep.WorkerPool"
        let dictionary = Thread.current.threadDictionary
        if let pool = dictionary[key] as? WorkerPool, pool.helpers == helpers { return pool }
        let pool = WorkerPool(helpers: helpers)
        dictionary[key] = pool
        return pool
    }
}

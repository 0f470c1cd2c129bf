import Foundation
import SweepCore
import SweepFile
import SweepRecords

/// Rewrites a running sweep's results files and partial report on a thread of its own, so the
/// coordinator never stops handing out tasks while a large table is rebuilt. At most one refresh
/// runs at a time and a request that arrives meanwhile is dropped (the next one covers it), so
/// memory holds at most one snapshot of the records besides the coordinator's own.
final class BackgroundRefresh: @unchecked Sendable {
    private let write: ([TaskRecord]) throws -> Void
    private let log: (String) -> Void
    private let condition = NSCondition()
    private var pending: [TaskRecord]?
    private var busy = false
    private var stopped = false

    init(write: @escaping ([TaskRecord]) throws -> Void, log: @escaping (String) -> Void) {
        self.write = write
        self.log = log
        let thread = Thread { [unowned self] in self.loop() }
        thread.stackSize = 8 << 20
        thread.start()
    }

    /// Asks for a refresh with `records`; returns at once (dropped while one is running).
    func offer(_ records: [TaskRecord]) {
        condition.lock()
        defer { condition.unlock() }
        guard !busy, pending == nil, !stopped else { return }
        pending = records
        condition.signal()
    }

    /// Waits for a running refresh and ends the thread: the final write must not be overtaken by
    /// an older one renaming its files into place afterwards.
    func finish() {
        condition.lock()
        stopped = true
        pending = nil
        condition.broadcast()
        while busy { condition.wait() }
        condition.unlock()
    }

    private func loop() {
        while true {
            condition.lock()
            while pending == nil && !stopped { condition.wait() }
            guard !stopped, let records = pending else { condition.unlock(); return }
            pending = nil
            busy = true
            condition.unlock()
            // A failed refresh (a full disk) must not end the sweep: the journal has every result.
            do { try write(records) } catch { log("could not refresh the results files: \(error)") }
            condition.lock()
            busy = false
            condition.broadcast()
            condition.unlock()
        }
    }
}

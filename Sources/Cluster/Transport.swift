import Foundation
import TensorEngine

/// The coordinator's side of the protocol: messages to and from workers, by worker id.
public protocol CoordinatorLink: AnyObject {
    /// The ids of the workers this coordinator serves.
    var workers: [Int] { get }
    /// The workers that can be members of a training gang.
    var gangWorkers: Set<Int> { get }
    func send(_ message: Message, to worker: Int) throws
    /// Waits up to `timeout` seconds for a message from any worker.
    func receive(timeout: Double) throws -> (worker: Int, message: Message)?
    /// A message if one is waiting, without blocking.
    func poll() throws -> (worker: Int, message: Message)?
}

/// A worker's side of the protocol.
public protocol WorkerLink: AnyObject {
    var id: Int { get }
    func send(_ message: Message) throws
    func receive() throws -> Message
    /// This worker's link to the other members of `gang` (collective: every member calls it).
    func joinGang(_ gang: GangAssignment) throws -> GangLink
}

/// A blocking FIFO of encoded messages between threads of one process.
final class Mailbox: @unchecked Sendable {
    private let condition = NSCondition()
    private var queue: [(Int, Data)] = []
    private var head = 0

    func put(_ from: Int, _ data: Data) {
        condition.lock()
        queue.append((from, data))
        condition.signal()
        condition.unlock()
    }

    func take() -> (Int, Data) {
        condition.lock()
        defer { condition.unlock() }
        while head == queue.count { condition.wait() }
        return pop()
    }

    func tryTake() -> (Int, Data)? {
        condition.lock()
        defer { condition.unlock() }
        return head == queue.count ? nil : pop()
    }

    /// Waits up to `seconds` for a message.
    func take(timeout seconds: Double) -> (Int, Data)? {
        condition.lock()
        defer { condition.unlock() }
        if head == queue.count { _ = condition.wait(until: Date(timeIntervalSinceNow: seconds)) }
        return head == queue.count ? nil : pop()
    }

    private func pop() -> (Int, Data) {
        let item = queue[head]
        head += 1
        if head > 1024 && head * 2 > queue.count { queue.removeFirst(head); head = 0 }
        return item
    }
}

/// In-process transport: worker threads and the coordinator exchange the same encoded messages
/// MPI would carry (`sweep run -j N`, and rank 0's own worker under MPI).
public final class LocalHub: @unchecked Sendable {
    let coordinatorInbox = Mailbox()
    private var workerInboxes: [Int: Mailbox] = [:]
    /// How this hub's workers join a gang: by default with each other, as threads (`LocalGang`);
    /// under MPI, rank 0's worker joins the MPI gang of its ranks instead.
    var makeGang: ((GangAssignment) throws -> GangLink)?
    private let gangLock = NSLock()
    private var gangs: [Int: (gang: LocalGang, joined: Int)] = [:]

    public init(workers: [Int]) {
        for w in workers { workerInboxes[w] = Mailbox() }
    }

    /// Member `worker` of a gang of this hub's threads; the gang is forgotten once all joined.
    func localGang(_ assignment: GangAssignment, worker: Int) -> GangLink {
        gangLock.lock()
        defer { gangLock.unlock() }
        var entry = gangs[assignment.id] ?? (LocalGang(size: assignment.members.count), 0)
        entry.joined += 1
        gangs[assignment.id] = entry.joined == assignment.members.count ? nil : entry
        return entry.gang.member(assignment.members.firstIndex(of: worker)!)
    }

    public var workerIDs: [Int] { workerInboxes.keys.sorted() }

    public func coordinatorLink() -> CoordinatorLink { LocalCoordinatorLink(hub: self) }

    public func workerLink(_ id: Int) -> WorkerLink { LocalWorkerLink(id: id, hub: self) }

    func inbox(_ worker: Int) -> Mailbox {
        guard let box = workerInboxes[worker] else { preconditionFailure("no local worker \(worker)") }
        return box
    }
}

final class LocalCoordinatorLink: CoordinatorLink {
    let hub: LocalHub
    init(hub: LocalHub) { self.hub = hub }

    var workers: [Int] { hub.workerIDs }
    var gangWorkers: Set<Int> { Set(hub.workerIDs) }

    func send(_ message: Message, to worker: Int) throws {
        hub.inbox(worker).put(-1, try MessageCodec.encode(message))
    }

    func receive(timeout: Double) throws -> (worker: Int, message: Message)? {
        guard let (from, data) = hub.coordinatorInbox.take(timeout: timeout) else { return nil }
        return (from, try MessageCodec.decode(data))
    }

    func poll() throws -> (worker: Int, message: Message)? {
        guard let (from, data) = hub.coordinatorInbox.tryTake() else { return nil }
        return (from, try MessageCodec.decode(data))
    }
}

final class LocalWorkerLink: WorkerLink {
    let id: Int
    let hub: LocalHub
    init(id: Int, hub: LocalHub) { self.id = id; self.hub = hub }

    func send(_ message: Message) throws { hub.coordinatorInbox.put(id, try MessageCodec.encode(message)) }

    func receive() throws -> Message { try MessageCodec.decode(hub.inbox(id).take().1) }

    func joinGang(_ gang: GangAssignment) throws -> GangLink {
        if let make = hub.makeGang { return try make(gang) }
        return hub.localGang(gang, worker: id)
    }
}

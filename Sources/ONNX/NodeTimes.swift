import Foundation

/// Where an imported graph's evaluation spends its time, node by node (`sweep bench --onnx FILE
/// --profile`): each node's total over every run and image group, its output's shape and
/// whether the output stayed in the engine's blocked layout. A node whose output is plain
/// between blocked neighbours pays two layout conversions: the first thing to look for.
public final class NodeTimes: @unchecked Sendable {
    /// The collector runs record into while it is set (nil: nothing is timed).
    nonisolated(unsafe) public static var shared: NodeTimes?

    public struct Entry {
        public let node: Int
        public let op: String
        public var nanoseconds: UInt64
        public let shape: [Int]?
        public let blocked: Bool
    }

    private let lock = NSLock()
    private var entries: [Int: Entry] = [:]

    public init() {}

    func add(node: Int, op: String, nanoseconds: UInt64, shape: [Int]?, blocked: Bool) {
        lock.lock()
        defer { lock.unlock() }
        if var entry = entries[node] {
            entry.nanoseconds += nanoseconds
            entries[node] = entry
        } else {
            entries[node] = Entry(node: node, op: op, nanoseconds: nanoseconds, shape: shape, blocked: blocked)
        }
    }

    /// Every timed node, in graph order.
    public var nodes: [Entry] {
        lock.lock()
        defer { lock.unlock() }
        return entries.values.sorted { $0.node < $1.node }
    }
}

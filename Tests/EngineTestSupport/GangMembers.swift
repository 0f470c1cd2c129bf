import Foundation
import TensorEngine

/// Runs `body` once per member of an in-process gang, each on its own thread (with a stack large
/// enough for a network's forward pass), and returns the members' results in member order.
public func onGangThreads<T>(_ gang: LocalGang, _ body: @escaping (GangLink, Int) -> T) -> [T] {
    let results = MemberResults<T>(gang.size)
    let group = DispatchGroup()
    for m in 0..<gang.size {
        group.enter()
        let thread = Thread {
            let value = body(gang.member(m), m)
            results.lock.lock(); results.values[m] = value; results.lock.unlock()
            group.leave()
        }
        thread.stackSize = 16 << 20
        thread.start()
    }
    group.wait()
    return results.values.map { $0! }
}

/// The members' results, written from their threads.
private final class MemberResults<T>: @unchecked Sendable {
    var values: [T?]
    let lock = NSLock()
    init(_ count: Int) { values = Array(repeating: nil, count: count) }
}

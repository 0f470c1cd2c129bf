import Foundation

/// A gang whose members are threads of one process: the same collectives as the MPI gang, for
/// tests of gang training without a launcher.
public final class LocalGang: @unchecked Sendable {
    public let size: Int
    private let condition = NSCondition()
    private var arrived = 0
    private var generation = 0
    private var slots: [[Double]]
    private var floats: [Float] = []
    private var mail: [Int: [Float]] = [:]   // receiver -> values

    public init(size: Int) {
        self.size = size
        slots = Array(repeating: [], count: size)
    }

    /// The link member `rank` uses.
    public func member(_ rank: Int) -> GangLink { Member(gang: self, rank: rank) }

    private func barrier() {
        condition.lock()
        let mine = generation
        arrived += 1
        if arrived == size {
            arrived = 0
            generation += 1
            condition.broadcast()
        } else {
            while generation == mine { condition.wait() }
        }
        condition.unlock()
    }

    private final class Member: GangLink {
        let gang: LocalGang
        let rank: Int
        var size: Int { gang.size }
        init(gang: LocalGang, rank: Int) { self.gang = gang; self.rank = rank }

        func allGather(_ local: UnsafeBufferPointer<Double>, counts: [Int], into all: UnsafeMutableBufferPointer<Double>) {
            precondition(local.count == counts[rank], "member \(rank) gathers \(local.count) values, announced \(counts[rank])")
            gang.condition.lock(); gang.slots[rank] = Array(local); gang.condition.unlock()
            gang.barrier()
            gang.condition.lock()
            var offset = 0
            for m in 0..<size {
                for v in gang.slots[m] { all[offset] = v; offset += 1 }
            }
            gang.condition.unlock()
            gang.barrier()
        }

        func send(_ values: UnsafeBufferPointer<Float>, to member: Int) {
            gang.condition.lock()
            while gang.mail[member] != nil { gang.condition.wait() }
            gang.mail[member] = Array(values)
            gang.condition.broadcast()
            gang.condition.unlock()
        }

        func receive(_ values: UnsafeMutableBufferPointer<Float>, from member: Int) {
            gang.condition.lock()
            while gang.mail[rank] == nil { gang.condition.wait() }
            let got = gang.mail.removeValue(forKey: rank)!
            gang.condition.broadcast()
            gang.condition.unlock()
            for i in 0..<values.count { values[i] = got[i] }
        }

        func broadcast(_ values: UnsafeMutableBufferPointer<Float>, root: Int) {
            if rank == root { gang.condition.lock(); gang.floats = Array(values); gang.condition.unlock() }
            gang.barrier()
            if rank != root {
                gang.condition.lock()
                for i in 0..<values.count { values[i] = gang.floats[i] }
                gang.condition.unlock()
            }
            gang.barrier()
        }
    }
}

import Foundation

/// The messages members of a training gang exchange: an MPI sub-communicator in a cluster run,
/// threads of one process in tests. Member `rank` of `size`; every call is collective (all
/// members make it, in the same order) except `send`/`receive`, which pair neighbours.
public protocol GangLink: AnyObject {
    var rank: Int { get }
    var size: Int { get }
    /// Every member's `local` values, concatenated in member order; `counts[m]` values from member m.
    func allGather(_ local: UnsafeBufferPointer<Double>, counts: [Int], into all: UnsafeMutableBufferPointer<Double>)
    func send(_ values: UnsafeBufferPointer<Float>, to member: Int)
    func receive(_ values: UnsafeMutableBufferPointer<Float>, from member: Int)
    /// Overwrites `values` on every member with `root`'s.
    func broadcast(_ values: UnsafeMutableBufferPointer<Float>, root: Int)
}

/// One member's part of a mini-batch trained data-parallel by a gang, and the bookkeeping that
/// keeps the result bit-identical to one process training the whole batch.
///
/// The batch is cut into the same fixed image groups a single process uses (`imageGroups`, at
/// most 16, set by the batch size alone); member m owns a contiguous run of whole groups. Layers
/// compute exactly what one process computes for those groups, and every sum over the batch is
/// made in the single process's order:
/// - batch-norm statistics are per-image partial moments, gathered from all members and combined
///   in image order (sync BN: the statistics of the whole mini-batch);
/// - fully connected layers gather their inputs and output gradients and compute the whole
///   batch's product (they are small next to the convolutions);
/// - convolution weight gradients are per-group partials, folded in group order along the chain
///   of members (member m continues the running sum of members 0..<m), then broadcast.
/// A single process runs the same layers with no shard: the same groups, the same order.
public final class GangShard {
    public let link: GangLink
    /// Images in the whole mini-batch.
    public let batchCount: Int
    /// This member's images, as indices into the mini-batch.
    public let images: Range<Int>
    /// Every member's images, in member order.
    public let memberImages: [Range<Int>]
    /// This member's image groups, relative to its first image.
    public let localGroups: [Range<Int>]
    /// Gradients whose per-group partials wait for the chain fold, in the order layers filed them.
    private var pending: [(grad: Tensor, partials: [Tensor])] = []

    public init(link: GangLink, batchCount: Int) {
        self.link = link
        self.batchCount = batchCount
        memberImages = GangShard.split(batchCount: batchCount, members: link.size)
        let mine = memberImages[link.rank]
        images = mine
        localGroups = imageGroups(batchCount).filter { mine.contains($0.lowerBound) }.map {
            ($0.lowerBound - mine.lowerBound)..<($0.upperBound - mine.lowerBound)
        }
    }

    /// Member m of `members` owns groups [m·g/members, (m+1)·g/members) of the batch's g groups.
    public static func split(batchCount: Int, members: Int) -> [Range<Int>] {
        let groups = imageGroups(batchCount)
        return (0..<members).map { m in
            let (first, last) = (m * groups.count / members, (m + 1) * groups.count / members)
            guard first < last else {
                let at = first < groups.count ? groups[first].lowerBound : batchCount
                return at..<at
            }
            return groups[first].lowerBound..<groups[last - 1].upperBound
        }
    }

    // MARK: - The shard a training step runs under

    private static let key = "layersweep.GangShard"

    /// The shard of the training step running on this thread, if it is ganged.
    public static var current: GangShard? { Thread.current.threadDictionary[key] as? GangShard }

    /// Runs `body` (one step's forward and backward) with `shard` current on this thread.
    public static func with<T>(_ shard: GangShard?, _ body: () throws -> T) rethrows -> T {
        guard let shard else { return try body() }
        Thread.current.threadDictionary[key] = shard
        defer { Thread.current.threadDictionary[key] = nil }
        return try body()
    }

    // MARK: - Sums over the batch

    /// Per-image values of every member's images, in image order; `perImage` values per image.
    public func gather(_ local: UnsafeBufferPointer<Double>, perImage: Int) -> [Double] {
        var all = [Double](repeating: 0, count: batchCount * perImage)
        all.withUnsafeMutableBufferPointer { link.allGather(local, counts: memberImages.map { $0.count * perImage }, into: $0) }
        return all
    }

    /// Per-image figures of a batch (moments, gradient sums): `fill` writes `values` numbers for
    /// each of this process's `images`, and `combine` reads every image's, in batch order, after
    /// a gang's members have gathered theirs. One process hands its own buffer straight on.
    public static func perImage<R>(_ shard: GangShard?, images n: Int, values width: Int,
                                   fill: (UnsafeMutablePointer<Double>) -> Void, _ combine: (UnsafePointer<Double>) -> R) -> R {
        let local = UnsafeMutableBufferPointer<Double>.allocate(capacity: max(n * width, 1))
        defer { local.deallocate() }
        fill(local.baseAddress!)
        guard let shard else { return combine(local.baseAddress!) }
        let all = shard.gather(UnsafeBufferPointer(rebasing: local[0..<(n * width)]), perImage: width)
        return all.withUnsafeBufferPointer { combine($0.baseAddress!) }
    }

    /// The whole batch's rows of a (images, width) tensor of which this member holds its own.
    public func gatherRows(_ local: Tensor) -> Tensor {
        let width = local.shape.dropFirst().reduce(1, *)
        let all = Tensor.uninitialized([batchCount] + local.shape.dropFirst())
        let values = (0..<local.count).map { Double(local.data[$0]) }
        let gathered = values.withUnsafeBufferPointer { gather($0, perImage: width) }
        for i in 0..<all.count { all.data[i] = Float(gathered[i]) }
        return all
    }

    /// This member's rows of a whole-batch tensor.
    public func localRows(_ all: Tensor) -> Tensor {
        let width = all.shape.dropFirst().reduce(1, *)
        let out = Tensor.uninitialized([images.count] + all.shape.dropFirst())
        out.data.update(from: all.data + images.lowerBound * width, count: images.count * width)
        return out
    }

    /// Files per-group partial gradients; the fold into `grad` happens in `reduceGradients`.
    public func file(_ grad: Tensor, partials: [Tensor]) { pending.append((grad, partials)) }

    /// Folds every filed gradient along the chain of members and broadcasts the total, so each
    /// member ends with the sum one process would have formed, group by group in batch order.
    public func reduceGradients() {
        defer { pending.removeAll() }
        guard !pending.isEmpty else { return }
        let total = pending.reduce(0) { $0 + $1.grad.count }
        let buffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: total)
        defer { buffer.deallocate() }
        let (rank, size) = (link.rank, link.size)
        if rank > 0 {
            link.receive(buffer, from: rank - 1)
            unpack(buffer)
        }
        for (grad, partials) in pending { GangShard.fold(partials, into: grad) }
        if size > 1 {
            pack(buffer)
            if rank < size - 1 { link.send(UnsafeBufferPointer(buffer), to: rank + 1) }
            link.broadcast(buffer, root: size - 1)
            if rank < size - 1 { unpack(buffer) }
        }
    }

    private func pack(_ buffer: UnsafeMutableBufferPointer<Float>) {
        var offset = 0
        for (grad, _) in pending {
            (buffer.baseAddress! + offset).update(from: grad.data, count: grad.count)
            offset += grad.count
        }
    }

    private func unpack(_ buffer: UnsafeMutableBufferPointer<Float>) {
        var offset = 0
        for (grad, _) in pending {
            grad.data.update(from: buffer.baseAddress! + offset, count: grad.count)
            offset += grad.count
        }
    }

    /// grad += partials[0] + partials[1] + ..., one partial at a time, as one process sums them.
    static func fold(_ partials: [Tensor], into grad: Tensor) {
        let g = grad.data
        for part in partials { for i in 0..<grad.count { g[i] += part.data[i] } }
    }

    /// Adds per-group partials into `grad` now, or files them for the gang's chain fold.
    public static func accumulate(_ partials: [Tensor], into grad: Tensor) {
        if let shard = current { shard.file(grad, partials: partials) } else { fold(partials, into: grad) }
    }

    /// The image groups of a batch of `n` images as this thread's layers see it: the shard's
    /// own groups under a gang, else all of them.
    public static func groups(_ n: Int) -> [Range<Int>] {
        guard let shard = current else { return imageGroups(n) }
        precondition(n == shard.images.count, "a ganged layer got \(n) images; its shard holds \(shard.images.count)")
        return shard.localGroups
    }
}

/// At most 16 contiguous groups of images, fixed by the batch size alone: the unit of
/// parallel work inside a layer and of a gang member's share of a mini-batch.
public func imageGroups(_ n: Int) -> [Range<Int>] {
    Parallel.ranges(n, grain: (n + 15) / 16)
}

/// The groups an evaluation kernel splits a batch of `n` into: `imageGroups`, or the whole batch
/// as one group inside `Parallel.serially`, where the batch is one of those groups already.
public func evaluationGroups(_ n: Int) -> [Range<Int>] {
    Parallel.isSerial ? [0..<n] : imageGroups(n)
}

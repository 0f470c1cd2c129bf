import Datasets
import Foundation
import Models
import TensorEngine

/// Evaluates masked variants of one trained network on a test set, reusing the activations of
/// the layers before the masked one (they are the same for every mask deeper in the network).
///
/// The network's evaluation plan (`InferencePlan`) runs its steps in order. The inputs of some
/// steps, for every test batch, are kept: the set that fits the memory budget and saves the most
/// recomputation over the network's units (`CachePlan`). They are kept compact (mostly zeros
/// after a ReLU: `CompactActivation`), and the budget counts the bytes actually held. A mask
/// inside step k then starts from the deepest kept input at or before k. Results are
/// bit-identical to a full evaluation: the same kernels see the same batches.
public final class PrefixEvaluator {
    public let checkpoint: SafeTensorsFile
    private let data: Dataset
    private let batchSize: Int
    private let budget: Int
    private let batches: [ArraySlice<Int>]
    /// The unmasked network's plan, whose steps compute the shared prefixes.
    private var reference: InferencePlan?
    /// Steps whose inputs are kept, decided on first use.
    private var keep: Set<Int> = []
    /// Step index -> its input for each test batch computed so far.
    private var cached: [Int: [CompactActivation]] = [:]
    /// Bytes `cached` holds; a step stops being kept when its next batch would exceed the budget.
    public private(set) var cachedBytes = 0
    /// Plan steps run, for measuring the saving.
    public private(set) var layerPasses = 0

    public init(checkpoint: SafeTensorsFile, data: Dataset, batchSize: Int, budgetBytes: Int) {
        self.checkpoint = checkpoint
        self.data = data
        self.batchSize = batchSize
        budget = budgetBytes
        batches = data.batchIndices(batchSize: batchSize, shuffleSeed: nil, epoch: 0)
    }

    /// Test accuracy and loss of the checkpoint's network with `mask` applied to `unit` (nil:
    /// the baseline), and the number of parameters masked. Masks that change every layer (BN
    /// recalibration) and networks that are not a plain sequence are evaluated in full.
    public func evaluate(mask: MaskKind?, unit: String?, context: MaskContext) throws -> (Evaluation, masked: Int?) {
        try evaluate(unit: mask == nil ? nil : unit, everyLayer: mask == .zeroKernelRecalibrated) { network, u in
            try Masking.apply(mask!, to: u, of: network, context: context)
        }
    }

    /// Test accuracy and loss of the checkpoint's network after `change` altered `unit` (nil:
    /// the baseline, unchanged); `change` returns the number of parameters it altered. With
    /// `everyLayer` (BN statistics re-estimated afterwards, say) nothing before the unit is
    /// reused.
    public func evaluate(unit: String?, everyLayer: Bool, change: (Network, MaskableUnit) throws -> Int)
        throws -> (Evaluation, masked: Int?) {
        let network = try Checkpoint.network(from: checkpoint)
        var masked: Int?
        if let unitName = unit {
            guard let u = network.unit(unitName) else { throw MaskError.unknownUnit(unitName) }
            masked = try change(network, u)
        }
        guard network.root is Sequential, !everyLayer, try prepare() else {
            return (Evaluation.run(network, on: data, batchSize: batchSize), masked)
        }
        let plan = InferencePlan(network)
        let start = unit.flatMap(network.topLevelIndex(of:)).map(plan.step(holding:)) ?? plan.steps.count
        var lossSum = 0.0, correct = 0
        var hits: [Bool] = []
        for (b, indices) in batches.enumerated() {
            let h = plan.run(start..<plan.steps.count, prefix(upTo: start, batch: b, indices: indices))
            layerPasses += plan.steps.count - start
            let result = Loss.softmaxCrossEntropy(h.plain, labels: indices.map { data.labels[$0] })
            lossSum += Double(result.loss) * Double(indices.count)
            correct += result.correct
            hits += result.hits
        }
        let n = max(data.count, 1)
        return (Evaluation(accuracy: Double(correct) / Double(n), loss: lossSum / Double(n), count: data.count, hits: hits), masked)
    }

    /// Compiles the unmasked network and decides which step inputs to keep (`CachePlan`), from
    /// one probe batch's activation sizes and step times. False when the network is not a plain
    /// sequence.
    private func prepare() throws -> Bool {
        if reference != nil { return true }
        let network = try Checkpoint.network(from: checkpoint)
        guard network.root is Sequential, let first = batches.first else { return false }
        let plan = InferencePlan(network)
        var sizes: [Double] = [], seconds: [Double] = []
        let scale = Double(data.count) / Double(max(first.count, 1))
        for pass in 0..<2 {   // the first pass creates the kernels; the second is timed
            var h = LayoutTensor(plain: data.batch(first).0)
            for s in plan.steps.indices {
                let start = DispatchTime.now().uptimeNanoseconds
                // The compact size of the probe batch's input, with a margin for other batches.
                if pass == 1 { sizes.append(Double(s == 0 ? h.bytes : CompactActivation.bytes(of: h)) * scale * 1.05) }
                h = plan.run(s..<(s + 1), h)
                if pass == 1 { seconds.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9) }
            }
        }
        // Every unit is expected to be masked once: its step is where its evaluations start.
        var demand = [Double](repeating: 0, count: plan.steps.count)
        for unit in network.units {
            if let layer = network.topLevelIndex(of: unit.name) { demand[plan.step(holding: layer)] += 1 }
        }
        keep = CachePlan.frugal(sizes: sizes, seconds: seconds, demand: demand, budget: Double(budget))
        reference = plan
        return true
    }

    /// The input of step `k` for batch `b`: from the deepest kept input at or before `k`,
    /// through the unmasked steps, keeping what is to be kept on the way.
    private func prefix(upTo k: Int, batch b: Int, indices: ArraySlice<Int>) -> LayoutTensor {
        let input = { LayoutTensor(plain: self.data.batch(indices).0) }
        guard let reference else { return input() }
        let from = cached.keys.filter { $0 <= k && (cached[$0]?.count ?? 0) > b }.max()
        let h = from.map { cached[$0]![b].expanded } ?? input()
        let i = from ?? 0
        guard i < k else { return h }
        let wanted = keep.filter { $0 > i && $0 <= k && (cached[$0]?.count ?? 0) == b }
        let (output, kept) = reference.run(i..<k, h, keeping: wanted)
        layerPasses += k - i
        for step in kept.keys.sorted() {
            let compact = CompactActivation(kept[step]!)
            if cachedBytes + compact.bytes <= budget {
                cached[step, default: []].append(compact)
                cachedBytes += compact.bytes
            } else {
                keep.remove(step)   // the batches before this one stay kept
            }
        }
        return output
    }
}

/// Which step inputs a prefix cache keeps.
public enum CachePlan {
    /// The steps (≥ 1; step 0's input is the data) whose inputs to keep: the set within `budget`
    /// bytes that minimises the prefix time of one evaluation per unit of `demand` (evaluations
    /// starting at each step), each evaluation resuming from the deepest kept input at or before
    /// its step. `sizes[i]` is step i's input size over the whole test set, `seconds[i]` the
    /// time of step i. Exact, by dynamic programming over (last kept step, budget left) with the
    /// budget in 1/1024ths.
    public static func choose(sizes: [Double], seconds: [Double], demand: [Double], budget: Double) -> Set<Int> {
        let n = sizes.count
        guard n > 1, budget > 0 else { return [] }
        let units = 1024
        let cost = sizes.map { Int(($0 / budget * Double(units)).rounded(.up)) }
        // spent[i][j]: prefix time of the evaluations starting in i..<j when i is the deepest kept.
        var spent = [[Double]](repeating: [Double](repeating: 0, count: n + 1), count: n)
        for i in 0..<n {
            var run = 0.0
            for k in i..<n {
                spent[i][k + 1] = spent[i][k] + demand[k] * run
                run += seconds[k]
            }
        }
        // best[i][b]: least time for evaluations starting at i... given input i is kept, b left.
        var best = [[Double]](repeating: [Double](repeating: 0, count: units + 1), count: n)
        var next = [[Int]](repeating: [Int](repeating: n, count: units + 1), count: n)
        for i in stride(from: n - 1, through: 0, by: -1) {
            for b in 0...units {
                var choice = (spent[i][n], n)
                for j in (i + 1)..<n where cost[j] <= b {
                    let t = spent[i][j] + best[j][b - cost[j]]
                    if t < choice.0 - 1e-12 { choice = (t, j) }
                }
                (best[i][b], next[i][b]) = choice
            }
        }
        var kept: Set<Int> = []
        var (i, b) = (0, units)
        while next[i][b] < n {
            let j = next[i][b]
            kept.insert(j)
            (i, b) = (j, b - cost[j])
        }
        return kept
    }

    /// `choose` with the least memory that stays within `slack` of its plan: the budget is
    /// halved while the best plan's prefix time grows by no more than `slack` of all the
    /// evaluations' whole time. Memory that would save less than that (1%: the deep, small
    /// inputs already hold most of the saving) is left to the rest of the machine.
    public static func frugal(sizes: [Double], seconds: [Double], demand: [Double], budget: Double, slack: Double = 0.01) -> Set<Int> {
        var chosen = choose(sizes: sizes, seconds: seconds, demand: demand, budget: budget)
        let limit = prefixTime(chosen, seconds: seconds, demand: demand) + slack * demand.reduce(0, +) * seconds.reduce(0, +)
        var smaller = budget / 2
        while smaller >= 1 {
            let plan = choose(sizes: sizes, seconds: seconds, demand: demand, budget: smaller)
            guard prefixTime(plan, seconds: seconds, demand: demand) <= limit else { break }
            (chosen, smaller) = (plan, smaller / 2)
        }
        return chosen
    }

    /// The prefix time of one evaluation per unit of `demand` when the inputs of `kept` are
    /// kept: each evaluation starting at step k runs the steps from the deepest kept one at or
    /// before k.
    public static func prefixTime(_ kept: Set<Int>, seconds: [Double], demand: [Double]) -> Double {
        var total = 0.0, run = 0.0
        for k in seconds.indices {
            if kept.contains(k) { run = 0 }
            total += demand[k] * run
            run += seconds[k]
        }
        return total
    }
}

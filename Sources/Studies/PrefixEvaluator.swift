import Datasets
import Foundation
import Models
import TensorEngine

/// Evaluates masked variants of one trained network on a test set, reusing the activations of
/// the layers before the masked one (they are the same for every mask deeper in the network).
///
/// The network's top-level layers run in order. The inputs of some top-level layers, for every
/// test batch, are kept: chosen from the deepest layer backwards (deep activations are small and
/// save the most work) while they fit the memory budget. A mask inside top-level layer k then
/// starts from the deepest kept input at or before k. Results are bit-identical to a full
/// forward pass: the same kernels see the same batches.
public final class PrefixEvaluator {
    public let checkpoint: SafeTensorsFile
    private let data: Dataset
    private let batchSize: Int
    private let budget: Int
    private let batches: [ArraySlice<Int>]
    /// The unmasked network, whose top-level layers compute the shared prefixes.
    private var reference: Sequential?
    /// Top-level layers whose inputs are kept, decided on first use.
    private var keep: Set<Int> = []
    /// Top-level layer index -> its input for each test batch computed so far.
    private var cached: [Int: [Tensor]] = [:]
    /// Top-level layer forward passes run, for measuring the saving.
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
        guard let root = network.root as? Sequential, !everyLayer, try prepare() else {
            return (Evaluation.run(network, on: data, batchSize: batchSize), masked)
        }
        let start = unit.flatMap { name in root.children.firstIndex { name == $0.0 || name.hasPrefix($0.0 + ".") } }
            ?? root.children.count
        var lossSum = 0.0, correct = 0
        var hits: [Bool] = []
        for (b, indices) in batches.enumerated() {
            var h = prefix(upTo: start, batch: b, indices: indices)
            for i in start..<root.children.count {
                h = root.children[i].1.forward(h, training: false)
                layerPasses += 1
            }
            let result = Loss.softmaxCrossEntropy(h, labels: indices.map { data.labels[$0] })
            lossSum += Double(result.loss) * Double(indices.count)
            correct += result.correct
            hits += result.hits
        }
        let n = max(data.count, 1)
        return (Evaluation(accuracy: Double(correct) / Double(n), loss: lossSum / Double(n), count: data.count, hits: hits), masked)
    }

    /// Builds the unmasked reference network and decides which layer inputs to keep, from one
    /// probe batch's activation sizes. False when the network is not a plain sequence.
    private func prepare() throws -> Bool {
        if reference != nil { return true }
        guard let root = try Checkpoint.network(from: checkpoint).root as? Sequential, let first = batches.first else { return false }
        var sizes: [Int] = []
        var h = data.batch(first).0
        for (_, layer) in root.children {
            sizes.append(h.count * 4)
            h = layer.forward(h, training: false)
        }
        let scale = Double(data.count) / Double(max(first.count, 1))
        var used = 0.0
        for i in stride(from: sizes.count - 1, through: 1, by: -1) {
            let bytes = Double(sizes[i]) * scale
            if used + bytes <= Double(budget) { keep.insert(i); used += bytes }
        }
        reference = root
        return true
    }

    /// The input of top-level layer `k` for batch `b`: from the deepest kept input at or before
    /// `k`, through the unmasked layers, keeping what is to be kept on the way.
    private func prefix(upTo k: Int, batch b: Int, indices: ArraySlice<Int>) -> Tensor {
        guard let reference else { return data.batch(indices).0 }
        let from = cached.keys.filter { $0 <= k && (cached[$0]?.count ?? 0) > b }.max()
        var h = from.map { cached[$0]![b] } ?? data.batch(indices).0
        var i = from ?? 0
        while i < k {
            h = reference.children[i].1.forward(h, training: false)
            layerPasses += 1
            i += 1
            if keep.contains(i) && (cached[i]?.count ?? 0) == b { cached[i, default: []].append(h) }
        }
        return h
    }
}

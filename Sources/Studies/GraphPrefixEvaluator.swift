import Datasets
import Foundation
import ONNX
import TensorEngine

/// Mask evaluations of one imported graph that share its unmasked layers. A mask on a unit
/// changes nothing before the unit's first node (its cut), so a masked run can start there from
/// the values the unmasked run had live at that point. The unmasked run is made once, keeping,
/// per batch, the live values at each unit's cut — the deepest cuts first, while they fit
/// `budgetBytes`; a cut that did not fit runs the whole graph. Results are the same bits as whole
/// runs: the same operations on the same values.
public final class GraphPrefixEvaluator {
    let data: Dataset
    let batchSize: Int
    private let batches: [ArraySlice<Int>]
    /// Live values by cut, per batch.
    private var cache: [Int: [[String: ONNXValue]]] = [:]
    /// The unmasked graph's evaluation.
    public let baseline: Evaluation
    /// Bytes the kept values take.
    public private(set) var bytes = 0

    public init(_ program: ONNXProgram, data: Dataset, batchSize: Int, budgetBytes: Int) throws {
        self.data = data
        self.batchSize = batchSize
        let batches = data.batchIndices(batchSize: batchSize, shuffleSeed: nil, epoch: 0)
        self.batches = batches
        let cuts = Set(program.units.compactMap { $0.nodes.min() }).filter { $0 > 0 }.sorted(by: >)
        let live = Dictionary(uniqueKeysWithValues: cuts.map { ($0, Set(program.liveValues(at: $0))) })
        let wanted = live.values.reduce(into: Set<String>()) { $0.formUnion($1) }
        var kept: [Int: [[String: ONNXValue]]] = [:]
        var used = 0
        var full = Set(cuts)  // cuts whose values still fit, deepest first
        var counted = Set<String>()  // values already paid for: cuts share them (copy on write)
        baseline = try GraphEvaluation.score(program, on: data, batches: batches) { b, x in
            var seen: [String: ONNXValue] = [program.inputNames[0]: x]
            let out = try program.run([program.inputNames[0]: x], observing: wanted) { name, value in
                if wanted.contains(name) { seen[name] = value }
            }
            for cut in cuts where full.contains(cut) {
                var values: [String: ONNXValue] = [:]
                for name in live[cut]! { values[name] = seen[name] }
                // A cut is kept for every batch or not at all (budgeted on the first batch's size).
                if b == 0 {
                    let fresh = values.filter { !counted.contains($0.key) }
                    let size = fresh.values.reduce(0) { $0 + $1.count * 4 }
                    if used + size * batches.count > budgetBytes { full.remove(cut); continue }
                    used += size * batches.count
                    counted.formUnion(fresh.keys)
                }
                kept[cut, default: []].append(values)
            }
            return out
        }
        cache = kept.filter { full.contains($0.key) && $0.value.count == batches.count }
        bytes = used
    }

    /// `masked` (this graph with a mask on a unit whose first node is `cut`) on the test images,
    /// from the kept values at `cut` when there are any.
    public func evaluate(_ masked: ONNXProgram, cut: Int) throws -> Evaluation {
        let kept = cache[cut]
        return try GraphEvaluation.score(masked, on: data, batches: batches) { b, x in
            if let kept { return try masked.run(kept[b], from: cut) }
            return try masked.run([masked.inputNames[0]: x])
        }
    }
}

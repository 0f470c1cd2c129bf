import Datasets
import Foundation
import ONNX
import TensorEngine

/// Mask evaluations of one imported graph that share its unmasked layers. A mask on a unit
/// changes nothing before the unit's first node (its cut), so a masked run can start there, or
/// at any earlier cut, from the values the unmasked run had live at that point. The unmasked run
/// is made once and keeps, per batch, the live values of the cuts that save the most
/// recomputation within `budgetBytes` (`CachePlan.frugal`, as for built-in networks: sizes from the
/// first batch, costs from each node's multiply-adds), compacted (`CompactActivation`). A masked
/// run starts at the deepest kept cut at or before its own, or at the input. Results are the
/// same bits as whole runs: the same operations on the same values.
public final class GraphPrefixEvaluator {
    let data: Dataset
    let batchSize: Int
    private let batches: [ArraySlice<Int>]
    private let inputName: String
    /// Kept cuts, ascending, and the values live at each cut (the graph's input among them when
    /// a later node reads it; it is never stored).
    private let keptCuts: [Int]
    private let live: [Int: [String]]
    /// Kept values by name, one per batch.
    private let stored: [String: [KeptValue]]
    /// The unmasked graph's evaluation.
    public let baseline: Evaluation
    /// Bytes the kept values take.
    public let bytes: Int

    /// A value the unmasked run had live at a kept cut: compacted when it is an activation.
    private enum KeptValue {
        case compact(CompactActivation)
        case raw(ONNXValue)

        init(_ value: ONNXValue) {
            if case let .floats(shape, v) = value, shape.count >= 1 {
                self = .compact(CompactActivation(LayoutTensor(plain: Tensor(shape: shape, values: v))))
            } else {
                self = .raw(value)
            }
        }

        var value: ONNXValue {
            switch self {
            case let .compact(c): return .floats(c.shape, c.storedValues)  // stored plain: storage is the shape
            case let .raw(v): return v
            }
        }

        var bytes: Int {
            switch self {
            case let .compact(c): return c.bytes
            case let .raw(v): return v.count * 4
            }
        }
    }

    public init(_ program: ONNXProgram, data: Dataset, batchSize: Int, budgetBytes: Int) throws {
        self.data = data
        self.batchSize = batchSize
        let batches = data.batchIndices(batchSize: batchSize, shuffleSeed: nil, epoch: 0)
        self.batches = batches
        let inputName = program.inputNames.first ?? ""
        self.inputName = inputName
        let cutOf = program.units.compactMap { $0.nodes.min() }
        let cuts = Set(cutOf).filter { $0 > 0 }.sorted()
        var live: [Int: [String]] = [:]
        for cut in cuts { live[cut] = program.liveValues(at: cut) }
        self.live = live
        // Costs of the stretches between cuts, for choosing which to keep: multiply-adds, plus
        // one per node so that stretches without weights are not free.
        let work = budgetBytes > 0 && !cuts.isEmpty ? try program.multiplyAdds(image: data.shape) : [:]
        let starts = [0] + cuts
        let nodeCount = program.model.graph.nodes.count
        let seconds = starts.indices.map { i in
            (starts[i]..<(i + 1 < starts.count ? starts[i + 1] : nodeCount)).reduce(0.0) { $0 + (work[$1] ?? 0) + 1 }
        }
        let demand = starts.map { start in Double(cutOf.filter { $0 == start }.count) }
        // The values a set of cuts needs stored: all they read but the graph's input.
        func values(of cuts: [Int]) -> Set<String> { cuts.reduce(into: Set<String>()) { $0.formUnion(live[$1]!) }.subtracting([inputName]) }
        var watched = budgetBytes > 0 ? values(of: cuts) : []
        var (kept, stored, bytes) = ([Int](), [String: [KeptValue]](), 0)
        baseline = try GraphEvaluation.score(program, on: data, batches: batches) { b, x in
            var seen: [String: ONNXValue] = [:]
            let out = try program.run([inputName: x], observing: watched) { name, value in
                if watched.contains(name) { seen[name] = value }
            }
            if b == 0, !watched.isEmpty {
                // The compact size of each cut's values over the test set (scaled from this
                // batch, with a margin for other batches), then the cuts worth keeping.
                let compact = seen.mapValues(KeptValue.init)
                let scale = Double(data.count) / Double(max(batches[0].count, 1)) * 1.05
                let sizes = starts.map { start in
                    start == 0 ? 0 : Double(live[start]!.reduce(0) { $0 + (compact[$1]?.bytes ?? 0) }) * scale
                }
                kept = CachePlan.frugal(sizes: sizes, seconds: seconds, demand: demand, budget: Double(budgetBytes)).map { starts[$0] }.sorted()
                watched = values(of: kept)
                for name in watched { stored[name] = [compact[name]!] }
                bytes = stored.values.reduce(0) { $0 + $1[0].bytes }
            } else if b > 0, !watched.isEmpty {
                for name in watched { stored[name]!.append(KeptValue(seen[name]!)) }
                bytes += watched.reduce(0) { $0 + stored[$1]![b].bytes }
                // Batches that compact less well than the first one: the deepest kept cut goes,
                // with every batch of its values, until the rest fits.
                while bytes > budgetBytes, let dropped = kept.popLast() {
                    let needed = values(of: kept)
                    for name in live[dropped]! where !needed.contains(name) {
                        bytes -= stored.removeValue(forKey: name)?.reduce(0) { $0 + $1.bytes } ?? 0
                    }
                    watched = needed
                }
            }
            return out
        }
        (keptCuts, self.stored, self.bytes) = (kept, stored, bytes)
    }

    /// The cuts whose values are kept, ascending.
    public var cachedCuts: [Int] { keptCuts }

    /// `masked` (this graph with a mask on a unit whose first node is `cut`) on the test images,
    /// from the kept values at the deepest kept cut at or before `cut`, or from the input.
    public func evaluate(_ masked: ONNXProgram, cut: Int) throws -> Evaluation {
        let from = keptCuts.last { $0 <= cut }
        return try GraphEvaluation.score(masked, on: data, batches: batches) { b, x in
            guard let from else { return try masked.run([inputName: x]) }
            var values: [String: ONNXValue] = [:]
            for name in live[from]! { values[name] = name == inputName ? x : stored[name]![b].value }
            return try masked.run(values, from: from)
        }
    }
}

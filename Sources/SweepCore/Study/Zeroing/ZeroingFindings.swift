import Foundation

/// The answer to the layer-zeroing question for one (dataset, model, mask): which units are
/// trivial and which matter, with deltas averaged over the trained networks (seeds).
public struct ZeroingFinding: Equatable, Sendable {
    public let dataset: String
    public let model: String
    public let mask: String
    /// Mean Δ accuracy per unit, in network order as the rows appear.
    public let meanDelta: [(unit: String, delta: Double)]
    public let seeds: Int
    /// How many units each call covers (trivial / harmful with 95% confidence, or undecided).
    public var calls: [Statistics.Call: Int] = [:]

    /// A unit is trivial when masking it moves test accuracy by less than this (1 point).
    public static let trivialThreshold = 0.01

    public var trivial: [String] { meanDelta.filter { abs($0.delta) < Self.trivialThreshold }.map(\.unit) }
    public var mostHarmful: [(unit: String, delta: Double)] { Array(meanDelta.sorted { $0.delta < $1.delta }.prefix(3)) }

    /// "3 trivial, 14 harmful, 3 undecided (95% intervals, |Δ| < 0.01)".
    public var callText: String {
        "\(calls[.trivial] ?? 0) trivial, \(calls[.harmful] ?? 0) harmful, \(calls[.undecided] ?? 0) undecided (95% intervals, |Δ| < \(Self.trivialThreshold))"
    }

    public static func == (a: ZeroingFinding, b: ZeroingFinding) -> Bool {
        a.calls == b.calls && a.dataset == b.dataset && a.model == b.model && a.mask == b.mask && a.seeds == b.seeds
            && a.meanDelta.map(\.unit) == b.meanDelta.map(\.unit) && a.meanDelta.map(\.delta) == b.meanDelta.map(\.delta)
    }

    /// Findings for every (dataset, model, mask) with successful mask rows, sorted by those names.
    public static func compute(_ rows: [ResultRow]) -> [ZeroingFinding] {
        let masked = rows.filter { $0.kind == .mask && $0.status == .ok && $0.deltaAccuracy != nil }
        let groups = Dictionary(grouping: masked) { [$0.dataset, $0.model, $0.mask] }
        let summaries = Dictionary(grouping: UnitSummary.summaries(rows)) { [$0.dataset, $0.model, $0.mask] }
        return groups.keys.sorted { $0.joined(separator: "\u{1}") < $1.joined(separator: "\u{1}") }.compactMap { key in
            guard let group = groups[key] else { return nil }
            var order: [String] = []
            var sums: [String: (Double, Int)] = [:]
            for row in group {
                if sums[row.layer] == nil { order.append(row.layer) }
                let (s, n) = sums[row.layer] ?? (0, 0)
                sums[row.layer] = (s + row.deltaAccuracy!, n + 1)
            }
            var finding = ZeroingFinding(dataset: key[0], model: key[1], mask: key[2],
                                         meanDelta: order.map { ($0, sums[$0]!.0 / Double(sums[$0]!.1)) },
                                         seeds: Set(group.map(\.seed)).count)
            for s in summaries[key] ?? [] { finding.calls[s.call, default: 0] += 1 }
            return finding
        }
    }
}

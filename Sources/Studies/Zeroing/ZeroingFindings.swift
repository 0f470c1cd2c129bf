import Foundation
import PairedStatistics
import Procedures
import Rendering
import SweepCore
import SweepFile
import SweepRecords

/// The answer to the layer-zeroing question for one (dataset, model, mask): which units are
/// trivial, harmful to remove or helpful to remove, with deltas averaged over the trained networks (seeds).
public struct ZeroingFinding: Equatable, Sendable {
    public let dataset: String
    public let model: String
    public let mask: String
    /// Mean Δ accuracy per unit, in network order as the rows appear.
    public let meanDelta: [(unit: String, delta: Double)]
    public let seeds: Int
    /// Each unit's summary (interval and call), in the order of `meanDelta`.
    public var units: [UnitSummary] = []
    /// How the calls were made, and over how many tests (the units and masks of the dataset and model).
    public let statistics: StatisticsSection
    public var tests = 0

    public var calls: [Statistics.Call: Int] { Dictionary(grouping: units, by: \.call).mapValues(\.count) }
    public func units(called call: Statistics.Call) -> [UnitSummary] { units.filter { $0.call == call } }

    /// The units called harmful, the largest drops first (at most three).
    public var mostHarmful: [(unit: String, delta: Double)] {
        Array(units(called: .harmful).sorted { $0.deltaMean < $1.deltaMean }.prefix(3).map { ($0.layer, $0.deltaMean) })
    }

    /// Units not called harmful for the recipe but harmful in each of its networks (at least
    /// two), the largest drops first (at most three): with few seeds the recipe's interval is
    /// wide and this is what the networks agree on.
    public var harmfulInEachNetwork: [(unit: String, delta: Double)] {
        Array(units.filter { $0.call != .harmful && $0.networkCalls.count > 1 && $0.networkCalls.allSatisfy { $0 == .harmful } }
            .sorted { $0.deltaMean < $1.deltaMean }.prefix(3).map { ($0.layer, $0.deltaMean) })
    }

    /// "most harmful: a −0.600, b −0.300", or what each network says when the recipe calls none.
    public var harmfulText: String {
        func list(_ units: [(unit: String, delta: Double)]) -> String { units.map { "\($0.unit) \(Format.signed($0.delta))" }.joined(separator: ", ") }
        if !mostHarmful.isEmpty { return "most harmful: " + list(mostHarmful) }
        if !harmfulInEachNetwork.isEmpty { return "harmful in each network, not called for the recipe: " + list(harmfulInEachNetwork) }
        return "none called harmful"
    }

    /// "3 trivial, 14 harmful, 1 helpful, 3 undecided (95% intervals, |Δ| < 0.01 trivial, calls Holm-corrected over 42 tests ...)".
    public var callText: String {
        let counts = Statistics.Call.allCases.map { "\(calls[$0] ?? 0) \($0.rawValue)" }.joined(separator: ", ")
        return "\(counts) (\(statistics.describe(tests: tests)))"
    }

    /// The finding in one sentence: "3 of 20 units are trivial for this recipe (2 networks): a, b, c; 1 helpful to remove: d."
    public var answer: String {
        func list(_ us: [UnitSummary]) -> String {
            let names = us.prefix(6).map(\.layer).joined(separator: ", ")
            return us.count > 6 ? names + " and \(us.count - 6) more" : names
        }
        let recipe = seeds == 1 ? "this network (one trained network: the interval covers its test images only)" : "this recipe (\(seeds) trained networks)"
        let trivial = units(called: .trivial), helpful = units(called: .helpful), harmful = units(called: .harmful)
        var text = "\(trivial.count) of \(units.count) units are trivial under \(mask) for \(recipe)"
        text += trivial.isEmpty ? "" : ": \(list(trivial))"
        text += "; \(harmful.count) harmful to remove"
        if !helpful.isEmpty { text += "; \(helpful.count) helpful to remove (accuracy rises): \(list(helpful))" }
        let undecided = units.count - trivial.count - harmful.count - helpful.count
        if undecided > 0 {
            text += "; \(undecided) undecided"
            let agreed = units.filter { $0.call == .undecided && $0.networkCalls.count > 1 && Set($0.networkCalls).count == 1 && $0.networkCalls[0] != .undecided }
            if !agreed.isEmpty { text += " (\(agreed.count) of them get the same call in each of the \(seeds) networks)" }
        }
        text += "."
        if seeds == 2 && trivial.isEmpty && harmful.isEmpty && helpful.isEmpty {
            text += " Two networks are too few for a call about the recipe at this many tests (Student's t with one degree of freedom); each network's own calls are in the tooltips and units.csv."
        }
        return text
    }

    public static func == (a: ZeroingFinding, b: ZeroingFinding) -> Bool {
        a.units == b.units && a.dataset == b.dataset && a.model == b.model && a.mask == b.mask && a.seeds == b.seeds
            && a.meanDelta.map(\.unit) == b.meanDelta.map(\.unit) && a.meanDelta.map(\.delta) == b.meanDelta.map(\.delta)
    }

    /// Findings for every (dataset, model, mask) with successful mask rows, sorted by those names.
    public static func compute(_ rows: [ResultRow], statistics: StatisticsSection) -> [ZeroingFinding] {
        let masked = rows.filter { $0.kind == .mask && $0.status == .ok && $0.deltaAccuracy != nil }
        let groups = Dictionary(grouping: masked) { [$0.dataset, $0.model, $0.mask] }
        let all = UnitSummary.summaries(rows, settings: statistics)
        let summaries = Dictionary(grouping: all) { [$0.dataset, $0.model, $0.mask] }
        let tests = Dictionary(grouping: all.filter { $0.p != nil }) { [$0.dataset, $0.model] }.mapValues(\.count)
        return groups.keys.sorted { $0.joined(separator: "\u{1}") < $1.joined(separator: "\u{1}") }.compactMap { key in
            guard let group = groups[key] else { return nil }
            var order: [String] = []
            var sums: [String: (Double, Int)] = [:]
            for row in group {
                if sums[row.layer] == nil { order.append(row.layer) }
                let (s, n) = sums[row.layer] ?? (0, 0)
                sums[row.layer] = (s + row.deltaAccuracy!, n + 1)
            }
            let byLayer = Dictionary((summaries[key] ?? []).map { ($0.layer, $0) }, uniquingKeysWith: { a, _ in a })
            var finding = ZeroingFinding(dataset: key[0], model: key[1], mask: key[2],
                                         meanDelta: order.map { ($0, sums[$0]!.0 / Double(sums[$0]!.1)) },
                                         seeds: Set(group.map(\.seed)).count, statistics: statistics)
            finding.units = order.compactMap { byLayer[$0] }
            finding.tests = tests[[key[0], key[1]]] ?? 0
            return finding
        }
    }
}

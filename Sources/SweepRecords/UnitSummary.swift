import Foundation
import PairedStatistics
import Rendering
import SweepFile

/// What the trained networks say about one unit under one mask: the mean Δ accuracy with its
/// interval for the recipe (over seeds and test images; with one network, over its test images),
/// the call it supports after the correction for the other units tested, each network's own
/// call, and whether the unit's rank among its network's units moves between seeds.
public struct UnitSummary: Codable, Equatable, Sendable {
    public var dataset: String
    public var model: String
    public var layer: String
    public var mask: String
    /// Trained networks with a result for this unit and mask.
    public var seeds: Int
    public var deltaMean: Double
    public var deltaLow: Double?
    public var deltaHigh: Double?
    /// What the interval accounts for: "seeds and test images", or "test images" (one network).
    public var interval: String
    public var call: Statistics.Call
    /// The p-value of the call the estimate leans to, before and after the correction.
    public var p: Double?
    public var pAdjusted: Double?
    /// Each network's own call (corrected over that network's units), in seed order.
    public var networkCalls: [Statistics.Call]
    /// The unit's rank by Δ among its network's units spans more than a quarter of them across seeds.
    public var rankUnstable: Bool

    enum CodingKeys: String, CodingKey {
        case dataset, model, layer, mask, seeds, interval, call, p
        case deltaMean = "delta_mean", deltaLow = "delta_low", deltaHigh = "delta_high", rankUnstable = "rank_unstable"
        case pAdjusted = "p_adjusted", networkCalls = "network_calls"
    }

    /// "harmful in each of 2 networks", "harmful in 1 of 2 networks, undecided in 1".
    public var networkCallText: String {
        let counts = Dictionary(grouping: networkCalls, by: { $0 })
        if counts.count == 1, let only = counts.keys.first {
            return networkCalls.count == 1 ? "\(only.rawValue) in its one network" : "\(only.rawValue) in each of \(networkCalls.count) networks"
        }
        return Statistics.Call.allCases.compactMap { c in counts[c].map { "\(c.rawValue) in \($0.count)" } }.joined(separator: ", ")
            + " of \(networkCalls.count) networks"
    }

    /// One summary per (dataset, model, layer, mask) of the successful mask rows, in row order;
    /// calls made per (dataset, model) family as `settings` says.
    public static func summaries(_ rows: [ResultRow], settings: StatisticsSection = StatisticsSection()) -> [UnitSummary] {
        let masked = rows.filter { $0.kind == .mask && $0.status == .ok && $0.deltaAccuracy != nil }
        let unstable = unstableUnits(masked)
        var order: [String] = []
        var groups: [String: [ResultRow]] = [:]
        for r in masked {
            let key = [r.dataset, r.model, r.layer, r.mask].joined(separator: "\u{1}")
            if groups[key] == nil { order.append(key) }
            groups[key, default: []].append(r)
        }
        var summaries: [UnitSummary] = []
        var estimates: [DeltaEstimate?] = []
        var perNetwork: [[(seed: Int, estimate: DeltaEstimate?)]] = []
        for key in order {
            let group = groups[key]!.sorted { $0.seed < $1.seed }
            let first = group[0]
            let deltas = group.map { $0.deltaAccuracy! }
            let networks = group.map { (seed: $0.seed, estimate: $0.networkEstimate) }
            let known = networks.compactMap(\.estimate)
            let estimate = known.count == group.count ? Statistics.population(known) : nil
            var summary = UnitSummary(dataset: first.dataset, model: first.model, layer: first.layer, mask: first.mask, seeds: group.count,
                                      deltaMean: deltas.reduce(0, +) / Double(deltas.count), deltaLow: nil, deltaHigh: nil,
                                      interval: "none", call: .undecided, p: nil, pAdjusted: nil, networkCalls: [],
                                      rankUnstable: unstable.contains(key))
            if let estimate {
                (summary.deltaLow, summary.deltaHigh) = estimate.interval(level: settings.level)
                summary.interval = estimate.sources.rawValue
            }
            summaries.append(summary)
            estimates.append(estimate)
            perNetwork.append(networks)
        }
        // The recipe's calls: one family per (dataset, model).
        let families = Dictionary(grouping: summaries.indices.filter { estimates[$0] != nil }) { [summaries[$0].dataset, summaries[$0].model] }
        for members in families.values {
            for (i, decision) in zip(members, Statistics.calls(members.map { estimates[$0]! }, settings: settings)) {
                (summaries[i].call, summaries[i].p, summaries[i].pAdjusted) = (decision.call, significant(decision.p), significant(decision.adjustedP))
            }
        }
        // Each network's calls: one family per (dataset, model, seed).
        struct Network: Hashable { let dataset: String, model: String, seed: Int }
        var networkCalls: [[Int: Statistics.Call]] = Array(repeating: [:], count: summaries.count)
        var byNetwork: [Network: [(unit: Int, estimate: DeltaEstimate)]] = [:]
        for (i, networks) in perNetwork.enumerated() {
            for n in networks {
                if let e = n.estimate { byNetwork[Network(dataset: summaries[i].dataset, model: summaries[i].model, seed: n.seed), default: []].append((i, e)) }
            }
        }
        for (network, members) in byNetwork {
            for (member, decision) in zip(members, Statistics.calls(members.map(\.estimate), settings: settings)) {
                networkCalls[member.unit][network.seed] = decision.call
            }
        }
        for i in summaries.indices {
            summaries[i].networkCalls = perNetwork[i].map { networkCalls[i][$0.seed] ?? .undecided }
            summaries[i].deltaMean = significant(summaries[i].deltaMean)!
            (summaries[i].deltaLow, summaries[i].deltaHigh) = (significant(summaries[i].deltaLow), significant(summaries[i].deltaHigh))
        }
        return summaries
    }

    /// Units whose rank by Δ (per dataset, model, mask and seed) spans more than a quarter of the
    /// units across the seeds.
    static func unstableUnits(_ rows: [ResultRow]) -> Set<String> {
        var out: Set<String> = []
        let networks = Dictionary(grouping: rows) { [$0.dataset, $0.model, $0.mask].joined(separator: "\u{1}") }
        for (_, group) in networks {
            let bySeed = Dictionary(grouping: group, by: \.seed)
            guard bySeed.count >= 2 else { continue }
            var ranks: [String: [Int]] = [:]
            for (_, seedRows) in bySeed {
                for (rank, r) in seedRows.sorted(by: { ($0.deltaAccuracy!, $0.layer) < ($1.deltaAccuracy!, $1.layer) }).enumerated() {
                    ranks[r.layer, default: []].append(rank)
                }
            }
            let units = Set(group.map(\.layer)).count
            for (layer, r) in ranks where r.count >= 2 && Double(r.max()! - r.min()!) > Double(units) / 4 {
                out.insert([group[0].dataset, group[0].model, layer, group[0].mask].joined(separator: "\u{1}"))
            }
        }
        return out
    }

    /// units.csv: one line per summary (the columns after rank_unstable came later; readers
    /// that take columns by name see the file they knew).
    public static func csv(_ units: [UnitSummary]) -> String {
        func number(_ v: Double?) -> String { v.map { "\($0)" } ?? "" }
        var out = "dataset,model,layer,mask,seeds,delta_mean,delta_low,delta_high,interval,call,rank_unstable,p,p_adjusted,network_calls\n"
        for u in units {
            out += [u.dataset, u.model, u.layer, u.mask, String(u.seeds), "\(u.deltaMean)", number(u.deltaLow), number(u.deltaHigh),
                    u.interval, u.call.rawValue, u.rankUnstable ? "yes" : "no", number(u.p), number(u.pAdjusted),
                    u.networkCalls.map(\.rawValue).joined(separator: " ")].map(SafeText.csvField).joined(separator: ",") + "\n"
        }
        return out
    }
}

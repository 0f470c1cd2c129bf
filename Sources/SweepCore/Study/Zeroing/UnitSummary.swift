import Foundation

/// What the trained networks say about one unit under one mask: the mean Δ accuracy with its
/// 95% interval over seeds (or, with one network, over its paired test images), the call it
/// supports, and whether the unit's rank among its network's units moves between seeds.
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
    /// Over seeds (Student t) with two or more networks, else the one network's paired interval.
    public var interval: String
    public var call: Statistics.Call
    /// The unit's rank by Δ among its network's units spans more than a quarter of them across seeds.
    public var rankUnstable: Bool

    enum CodingKeys: String, CodingKey {
        case dataset, model, layer, mask, seeds, interval, call
        case deltaMean = "delta_mean", deltaLow = "delta_low", deltaHigh = "delta_high", rankUnstable = "rank_unstable"
    }

    /// |Δ| below this is what "trivial" means (Wang et al.'s 1-point cut).
    public static let threshold = 0.01

    /// One summary per (dataset, model, layer, mask) of the successful mask rows, in row order.
    public static func summaries(_ rows: [ResultRow]) -> [UnitSummary] {
        let masked = rows.filter { $0.kind == .mask && $0.status == .ok && $0.deltaAccuracy != nil }
        let unstable = unstableUnits(masked)
        var order: [String] = []
        var groups: [String: [ResultRow]] = [:]
        for r in masked {
            let key = [r.dataset, r.model, r.layer, r.mask].joined(separator: "\u{1}")
            if groups[key] == nil { order.append(key) }
            groups[key, default: []].append(r)
        }
        return order.map { key in
            let group = groups[key]!.sorted { $0.seed < $1.seed }
            let first = group[0]
            let deltas = group.map { $0.deltaAccuracy! }
            var summary = UnitSummary(dataset: first.dataset, model: first.model, layer: first.layer, mask: first.mask, seeds: group.count,
                                      deltaMean: deltas.reduce(0, +) / Double(deltas.count), deltaLow: nil, deltaHigh: nil,
                                      interval: "none", call: .undecided, rankUnstable: unstable.contains(key))
            if let over = Statistics.meanInterval(deltas) {
                (summary.deltaLow, summary.deltaHigh, summary.interval) = (over.low, over.high, "seeds")
            } else if let low = first.deltaLow, let high = first.deltaHigh {
                (summary.deltaLow, summary.deltaHigh, summary.interval) = (low, high, "test images")
            }
            if let low = summary.deltaLow, let high = summary.deltaHigh {
                summary.call = Statistics.call(low: low, high: high, threshold: threshold)
            }
            summary.deltaMean = significant(summary.deltaMean)!
            (summary.deltaLow, summary.deltaHigh) = (significant(summary.deltaLow), significant(summary.deltaHigh))
            return summary
        }
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

    /// units.csv: one line per summary.
    public static func csv(_ units: [UnitSummary]) -> String {
        func number(_ v: Double?) -> String { v.map { "\($0)" } ?? "" }
        var out = "dataset,model,layer,mask,seeds,delta_mean,delta_low,delta_high,interval,call,rank_unstable\n"
        for u in units {
            out += [u.dataset, u.model, u.layer, u.mask, String(u.seeds), "\(u.deltaMean)", number(u.deltaLow), number(u.deltaHigh),
                    u.interval, u.call.rawValue, u.rankUnstable ? "yes" : "no"].map(SafeText.csvField).joined(separator: ",") + "\n"
        }
        return out
    }
}

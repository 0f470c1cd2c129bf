import Foundation
import Procedures
import Rendering
import SweepCore
import SweepFile
import SweepRecords

/// The answer to the reuse question for one (source, target, model, mode): per reused layer
/// (or prefix), the accuracy gain over training from scratch and the kernel RMSE between the
/// source-trained and the target-trained networks, averaged over seeds.
public struct ReuseFinding: Sendable {
    public struct Point: Sendable {
        public let layer: String
        public let gain: [Double]
        public let rmse: [Double]
        public var meanGain: Double { SeedStatistics(gain).mean }
        public var meanRMSE: Double { SeedStatistics(rmse).mean }
        public var isPrefix: Bool { layer.hasPrefix("first") }
    }

    public let source: String
    public let target: String
    public let model: String
    public let mode: String
    /// In network order (single layers first, then prefixes by length).
    public let points: [Point]

    /// A layer is reusable for the target when reusing it costs at most this much accuracy.
    public static let tolerance = 0.005

    public var reusable: [Point] { points.filter { $0.meanGain >= -Self.tolerance } }

    /// Pearson correlation of mean gain and mean RMSE over single layers (nil below 3 layers).
    public var correlation: Double? {
        let single = points.filter { !$0.isPrefix }
        guard single.count >= 3 else { return nil }
        let (x, y) = (single.map(\.meanRMSE), single.map(\.meanGain))
        let (mx, my) = (x.reduce(0, +) / Double(x.count), y.reduce(0, +) / Double(y.count))
        let sxy = zip(x, y).reduce(0) { $0 + ($1.0 - mx) * ($1.1 - my) }
        let sxx = x.reduce(0) { $0 + ($1 - mx) * ($1 - mx) }, syy = y.reduce(0) { $0 + ($1 - my) * ($1 - my) }
        return sxx > 0 && syy > 0 ? sxy / (sxx * syy).squareRoot() : nil
    }

    public static func compute(_ rows: [ResultRow], unitOrder: [String] = []) -> [ReuseFinding] {
        let ok = rows.succeeded.filter { $0.study == .reuse && $0.kind == .reuse && $0.deltaAccuracy != nil }
        let groups = Dictionary(grouping: ok) { [$0.source ?? "", $0.dataset, $0.model, $0.mask] }
        func order(_ layer: String) -> (Int, Int, String) {
            if layer.hasPrefix("first"), let k = Int(layer.dropFirst(5)) { return (1, k, layer) }
            return (0, unitOrder.firstIndex(of: layer) ?? Int.max, layer)
        }
        return groups.keys.sorted { $0.joined(separator: "|") < $1.joined(separator: "|") }.map { g in
            let byLayer = Dictionary(grouping: groups[g]!, by: \.layer)
            let points = byLayer.keys.sorted { order($0) < order($1) }.map { layer in
                Point(layer: layer, gain: byLayer[layer]!.compactMap(\.deltaAccuracy), rmse: byLayer[layer]!.compactMap { $0.reuse?.rmse })
            }
            return ReuseFinding(source: g[0], target: g[1], model: g[2], mode: g[3], points: points)
        }
    }

    /// Terminal lines: reusable layers, best and worst gain, gain-RMSE correlation.
    /// The finding in one sentence.
    public var answer: String {
        let names = reusable.sorted { $0.meanGain > $1.meanGain }.prefix(6).map(\.layer).joined(separator: ", ")
        var text = "\(reusable.count) of \(points.count) layers of \(model) trained on \(source) can be reused on \(target) (\(mode)) at a cost of at most \(Format.fixed(Self.tolerance * 100, 1)) point"
        text += reusable.isEmpty ? "" : ": \(names)" + (reusable.count > 6 ? " and \(reusable.count - 6) more" : "")
        if let best = points.max(by: { $0.meanGain < $1.meanGain }) { text += "; the best, \(best.layer), gains \(Format.signed(best.meanGain, 4))" }
        return text + "."
    }

    public var summary: [String] {
        let best = points.max { $0.meanGain < $1.meanGain }, worst = points.min { $0.meanGain < $1.meanGain }
        let r = correlation.map { ", corr(gain, RMSE) \(Format.signed($0, 2))" } ?? ""
        return ["  \(source) → \(target) \(model) \(mode): \(reusable.count)/\(points.count) reusable (gain ≥ −\(Self.tolerance))"
            + (best.map { "; best \($0.layer) \(Format.signed($0.meanGain, 4))" } ?? "")
            + (worst.map { ", worst \($0.layer) \(Format.signed($0.meanGain, 4))" } ?? "") + r]
    }
}

/// The reuse section of report.html.
enum ReuseReport {
    static func section(_ input: ReportInput, into m: inout Markup) {
        let spec = input.plan.spec
        var unitOrder: [String] = []
        if let model = spec.models.first, let units = try? LayerMatcher.units(of: model) { unitOrder = units.map(\.name) }
        let findings = ReuseFinding.compute(input.rows, unitOrder: unitOrder)
        m.element("h2", text: "Which layers can be reused on the target task?")
        for f in findings { m.element("p", ["class": "answer"], text: f.answer) }
        m.element("p", ["class": "note"]) { m in
            m.add("For each source → target pair, a network is trained on each dataset from scratch. A reuse point copies the source-trained kernels ")
            m.add("of one conv layer (or of the first k conv layers, 'firstk') into a network for the target, with the same initialisation and batch order as ")
            m.add("the target's scratch run, then trains everything else (frozen: the copied kernels stay fixed; finetuned: they train too) with the same budget. ")
            m.add("Gain = target test accuracy with reuse − the scratch-trained target network's accuracy (same seed); positive means reuse helped. ")
            m.add("Kernel RMSE = root-mean-square difference between the layer's kernels trained on the source and on the target. ")
            m.add("A layer is reusable when its mean gain is at least −\(ReuseFinding.tolerance) (reuse costs at most half a point). Points are means over seeds.")
        }
        let pairs = Dictionary(grouping: findings) { "\($0.source) → \($0.target) · \($0.model)" }
        for title in pairs.keys.sorted() {
            let group = pairs[title]!
            m.element("h3", text: title)
            let colors = ["frozen": "#2166ac", "finetuned": "#b2182b"]
            var split: [LineChart.Series] = []
            for f in group {
                for prefixes in [false, true] {
                    let points = f.points.filter { $0.isPrefix == prefixes }
                    guard !points.isEmpty else { continue }
                    split.append(LineChart.Series(
                        label: "\(f.mode): \(prefixes ? "first-k prefixes" : "single layers")", color: colors[f.mode] ?? "#555555",
                        points: points.map { p in
                            LineChart.Point(x: p.meanRMSE, y: p.meanGain, spread: SeedStatistics(p.gain).deviation,
                                            tooltip: "\(p.layer) \(f.mode): gain \(SeedStatistics(p.gain).text), RMSE \(Format.fixed(p.meanRMSE, 4))")
                        },
                        lines: false, marker: prefixes ? "square" : "circle"))
                }
            }
            m.element("div", ["class": "row"]) { m in
                m.figure(named: "reuse-gain-vs-rmse") { m in
                LineChart(title: "Accuracy gain vs kernel RMSE", xLabel: "kernel RMSE, source-trained vs target-trained", yLabel: "gain over scratch (accuracy)",
                          series: split, reference: (0, "no gain (scratch accuracy)"), width: 480, height: 320).svg(into: &m)
                }
                let points = group.flatMap { f in f.points.map { (f.mode, $0) } }
                m.table(named: "reuse-\(group.first.map { "\($0.source)-\($0.target)-\($0.model)" } ?? "layers")", attributes: ["class": "reuse"],
                        header: ["mode", "layer", "gain (mean ± sd)", "RMSE", "reusable"],
                        rows: points.map { mode, p in
                            [mode, p.layer, "\(Format.signed(p.meanGain, 4)) ± \(Format.fixed(SeedStatistics(p.gain).deviation, 4))", Format.fixed(p.meanRMSE, 4),
                             p.meanGain >= -ReuseFinding.tolerance ? "yes" : "no"]
                        }, rowClass: { points[$0].1.meanGain >= -ReuseFinding.tolerance ? "reusable" : nil })
            }
        }
    }
}

import Foundation
import PairedStatistics
import Procedures
import Rendering
import SweepCore
import SweepFile
import SweepRecords

/// The answer to the sensitivity question for one (dataset, model, variant): per layer, the
/// accuracy change at each sparsity over the networks, and the first sparsity that costs a point.
public struct SensitivityCurves: Sendable {
    public struct Point: Sendable {
        public let sparsity: Double
        /// Δ accuracy of each network (masked − unpruned).
        public let deltas: [Double]
        /// The interval of the recipe's Δ (over the networks and their test images; with one
        /// network, over its paired test images), at the sweep's statistics level.
        public let low: Double
        public let high: Double
        public var mean: Double { deltas.reduce(0, +) / Double(max(deltas.count, 1)) }
    }

    public struct Layer: Sendable {
        public let layer: String
        public let index: Int
        public let points: [Point]
        /// The smallest sparsity whose mean Δ is at or below −`SensitivityStudy.lossThreshold`.
        public var firstLoss: Double? { points.first { $0.mean <= -SensitivityStudy.lossThreshold }?.sparsity }
    }

    public let dataset: String
    public let model: String
    public let variant: String
    public let sparsities: [Double]
    /// In network order.
    public let layers: [Layer]
    public let baselines: [Double]

    /// The finding in one sentence: "7 of 20 layers stay within a point of accuracy up to 0.9 sparsity (structured): a, b, ...; the most sensitive ...".
    public var answer: String {
        let top = sparsities.last.map { Format.fixed($0, 2) } ?? "?"
        let robust = layers.filter { $0.firstLoss == nil }
        let names = robust.prefix(6).map(\.layer).joined(separator: ", ") + (robust.count > 6 ? " and \(robust.count - 6) more" : "")
        var text = "\(robust.count) of \(layers.count) layers stay within \(Format.fixed(SensitivityStudy.lossThreshold * 100, 0)) point of accuracy up to sparsity \(top) (\(variant))"
        text += robust.isEmpty ? "" : ": \(names)"
        let fragile = layers.filter { $0.firstLoss != nil }.sorted { ($0.firstLoss!, $0.index) < ($1.firstLoss!, $1.index) }.prefix(3)
        if !fragile.isEmpty {
            text += "; the most sensitive: " + fragile.map { l in
                "\(l.layer) (loses it at \(l.firstLoss == sparsities.first ? "≤ " : "")\(Format.fixed(l.firstLoss!, 2)))"
            }.joined(separator: ", ")
        }
        return text + "."
    }

    public static func compute(_ rows: [ResultRow], statistics: StatisticsSection = StatisticsSection()) -> [SensitivityCurves] {
        let ok = rows.succeeded.filter { $0.study == .sensitivity }
        let baselines = Dictionary(grouping: ok.filter { $0.kind == .baseline }) { [$0.dataset, $0.model] }
        let pruned = ok.filter { $0.kind == .pruneLayer && $0.deltaAccuracy != nil }
        let groups = Dictionary(grouping: pruned) { [$0.dataset, $0.model, $0.mask] }
        return groups.keys.sorted { $0.joined(separator: "\u{1}") < $1.joined(separator: "\u{1}") }.map { g in
            let mine = groups[g]!
            let sparsities = Set(mine.compactMap { ($0.payload as? SensitivityPoint)?.sparsity }).sorted()
            let byLayer = Dictionary(grouping: mine, by: \.layer)
            let layers = byLayer.map { name, rows -> Layer in
                let bySparsity = Dictionary(grouping: rows) { ($0.payload as? SensitivityPoint)?.sparsity ?? .nan }
                let points = bySparsity.keys.filter(\.isFinite).sorted().map { s -> Point in
                    let cell = bySparsity[s]!
                    let deltas = cell.compactMap(\.deltaAccuracy)
                    let mean = deltas.reduce(0, +) / Double(max(deltas.count, 1))
                    let networks = cell.compactMap(\.networkEstimate)
                    let interval = networks.count == cell.count ? Statistics.population(networks)?.interval(level: statistics.level) : nil
                    return Point(sparsity: s, deltas: deltas, low: interval?.low ?? mean, high: interval?.high ?? mean)
                }
                return Layer(layer: name, index: rows.compactMap(\.unitIndex).first ?? Int.max, points: points)
            }.sorted { ($0.index, $0.layer) < ($1.index, $1.layer) }
            return SensitivityCurves(dataset: g[0], model: g[1], variant: g[2], sparsities: sparsities, layers: layers,
                                     baselines: (baselines[[g[0], g[1]]] ?? []).compactMap(\.testAccuracy))
        }
    }
}

enum SensitivityReport {
    static func section(_ input: ReportInput, into m: inout Markup) {
        let spec = input.plan.spec
        let threshold = Format.fixed(SensitivityStudy.lossThreshold * 100, 0)
        m.element("h2", text: "How much of each layer can be pruned?")
        m.element("p", ["class": "note"]) { m in
            m.add("Each trained network has one layer pruned at a time, nothing retrained: ")
            if spec.sensitivity.methods.contains(.unstructured) { m.add("unstructured removes the layer's smallest-magnitude weights; ") }
            if spec.sensitivity.methods.contains(.structured) { m.add("structured removes its filters (output channels or units) of smallest L1 norm; ") }
            if spec.sensitivity.recalibrate { m.add("+bn re-estimates every BN's statistics on \(spec.evaluation.recalibrationBatches) training batches after pruning; ") }
            m.add("Δ accuracy = pruned − the same network unpruned, on the same test images, averaged over the networks. ")
            m.add("Bands: the \(Format.percent(spec.statistics.level)) interval of the recipe's Δ (over the networks and their test images, or over one network's paired test images), clipped to the frame; one panel per stage, the same scale in each. ")
            m.add("A layer loses its point at the first sparsity whose mean Δ is −\(threshold) point or worse; layers that lose it late can be pruned hardest.")
        }
        for curves in SensitivityCurves.compute(input.rows, statistics: spec.statistics) {
            let base = curves.baselines.isEmpty ? "" : " · unpruned accuracy \(Format.fixed(curves.baselines.reduce(0, +) / Double(curves.baselines.count), 4))"
            m.element("h3", text: "\(curves.dataset) · \(curves.model) · \(curves.variant)\(base)")
            m.element("p", ["class": "answer"], text: curves.answer)
            m.element("div", ["class": "row"]) { m in charts(curves, spec: spec, into: &m) }
            table(curves, into: &m)
        }
    }

    /// Small multiples: one panel per stage (the model's unit groups), one colour per layer
    /// within it, the same y range in every panel, x ticks at the sparsities tested and the
    /// intervals as bands clipped to the frame.
    static func charts(_ c: SensitivityCurves, spec: SweepSpec, into m: inout Markup) {
        let groups = Dictionary(((try? LayerMatcher.units(of: c.model, in: spec)) ?? []).map { ($0.name, $0.group) }, uniquingKeysWith: { a, _ in a })
        var order: [String] = []
        var panels: [String: [SensitivityCurves.Layer]] = [:]
        for layer in c.layers {
            let group = groups[layer.layer].flatMap { $0.isEmpty ? nil : $0 } ?? "layers"
            if panels[group] == nil { order.append(group) }
            panels[group, default: []].append(layer)
        }
        // Long groups (an imported graph's single group) are cut into panels of at most seven lines.
        var cut: [(String, [SensitivityCurves.Layer])] = []
        for group in order {
            let layers = panels[group]!
            let parts = stride(from: 0, to: layers.count, by: 7).map { Array(layers[$0..<min($0 + 7, layers.count)]) }
            for (i, part) in parts.enumerated() { cut.append((parts.count > 1 ? "\(group) (\(i + 1)/\(parts.count))" : group, part)) }
        }
        let means: [Double] = c.layers.flatMap { $0.points.map(\.mean) } + [-SensitivityStudy.lossThreshold, 0]
        let low: Double = means.min() ?? -1, high: Double = means.max() ?? 0
        let pad: Double = max((high - low) * 0.08, 0.005)
        let range: ClosedRange<Double> = max(-1, low - pad)...min(1, high + pad)
        for (group, layers) in cut {
            let series = layers.enumerated().map { i, layer in
                LineChart.Series(label: layer.layer, color: ColorScale.categories[i % ColorScale.categories.count], points: layer.points.map { p in
                    LineChart.Point(x: p.sparsity, y: p.mean, spread: (p.high - p.low) / 2,
                                    tooltip: "\(layer.layer) at sparsity \(Format.fixed(p.sparsity, 2)): Δ \(Format.signed(p.mean, 4)) [\(Format.signed(p.low, 4)), \(Format.signed(p.high, 4))] (n=\(p.deltas.count))")
                })
            }
            m.element("figure") { m in
                m.figure(named: "sensitivity-\(c.dataset)-\(c.model)-\(c.variant)-\(group)") { m in
                LineChart(title: group, xLabel: "fraction of the layer pruned", yLabel: "Δ test accuracy", series: series,
                          reference: (-SensitivityStudy.lossThreshold, "−\(Format.fixed(SensitivityStudy.lossThreshold * 100, 0)) point"),
                          yRange: range, fitWhiskers: false, xTickValues: c.sparsities, bands: true, legendBeside: true,
                          width: 300, height: 230).svg(into: &m)
                }
            }
        }
    }

    private static func table(_ c: SensitivityCurves, into m: inout Markup) {
        let top = c.sparsities.last.map { Format.fixed($0, 2) } ?? "?"
        m.table(named: "sensitivity-\(c.dataset)-\(c.model)-\(c.variant)", attributes: ["class": "findings"],
                header: ["layer", "loses 1 point at", "Δ at sparsity \(top) [interval]"],
                rows: c.layers.map { layer in
                    [layer.layer,
                     layer.firstLoss.map { $0 == c.sparsities.first ? "≤ \(Format.fixed($0, 2)) (the lowest tested)" : Format.fixed($0, 2) } ?? "never (up to \(top))",
                     layer.points.last.map { "\(Format.signed($0.mean, 4)) [\(Format.signed($0.low, 4)), \(Format.signed($0.high, 4))]" } ?? "—"]
                })
    }
}

import Foundation

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
            m.add("Whiskers: the 95% interval (over networks, or over one network's paired test images). ")
            m.add("A layer loses its point at the first sparsity whose mean Δ is −\(threshold) point or worse; layers that lose it late can be pruned hardest.")
        }
        for curves in SensitivityCurves.compute(input.rows, statistics: spec.statistics) {
            m.element("h3", text: "\(curves.dataset) · \(curves.model) · \(curves.variant)")
            m.element("div", ["class": "row"]) { m in
                chart(curves, into: &m)
                table(curves, into: &m)
            }
        }
    }

    private static func chart(_ c: SensitivityCurves, into m: inout Markup) {
        let last = Double(max(c.layers.count - 1, 1))
        let series = c.layers.enumerated().map { i, layer in
            LineChart.Series(label: layer.layer, color: ColorScale.sequential.color(0.25 + 0.75 * Double(i) / last), points: layer.points.map { p in
                LineChart.Point(x: p.sparsity, y: p.mean, spread: (p.high - p.low) / 2,
                                tooltip: "\(layer.layer) at sparsity \(Format.fixed(p.sparsity, 2)): Δ \(Format.signed(p.mean, 4)) [\(Format.signed(p.low, 4)), \(Format.signed(p.high, 4))] (n=\(p.deltas.count))")
            })
        }
        let base = c.baselines.isEmpty ? nil : c.baselines.reduce(0, +) / Double(c.baselines.count)
        LineChart(title: "Δ test accuracy by sparsity, one line per layer (light: early, dark: deep)", xLabel: "fraction of the layer pruned",
                  yLabel: "Δ test accuracy", series: series,
                  reference: (-SensitivityStudy.lossThreshold, "−\(Format.fixed(SensitivityStudy.lossThreshold * 100, 0)) point"
                              + (base.map { " (unpruned accuracy \(Format.fixed($0, 4)))" } ?? "")),
                  fitWhiskers: false, width: 560, height: 340).svg(into: &m)
    }

    private static func table(_ c: SensitivityCurves, into m: inout Markup) {
        m.element("table", ["class": "findings"]) { m in
            m.element("tr") { m in
                for h in ["layer", "loses 1 point at", "Δ at the highest sparsity"] { m.element("th", text: h) }
            }
            for layer in c.layers {
                m.element("tr") { m in
                    m.element("td", text: layer.layer)
                    m.element("td", text: layer.firstLoss.map { Format.fixed($0, 2) } ?? "never (up to \(c.sparsities.last.map { Format.fixed($0, 2) } ?? "?"))")
                    m.element("td", text: layer.points.last.map { "\(Format.signed($0.mean, 4)) [\(Format.signed($0.low, 4)), \(Format.signed($0.high, 4))]" } ?? "—")
                }
            }
        }
    }
}

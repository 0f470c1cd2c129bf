import Foundation
import Models

/// The layer-zeroing heatmap of one (dataset, model): units as rows in network order (stage
/// boundaries ruled, transition units marked), masks as columns, cells coloured by the mean
/// Δ accuracy on a diverging scale centred on zero.
struct ZeroingHeatmap {
    let dataset: String
    let model: String
    let units: [MaskableUnit]
    let masks: [String]
    /// (unit, mask) -> per-seed rows.
    let cells: [String: [ResultRow]]
    let baselines: [Double]
    let limit: Double
    /// (unit, mask) -> the interval over seeds (or test images) and its call.
    let summaries: [String: UnitSummary]
    let statistics: StatisticsSection

    static func key(_ unit: String, _ mask: String) -> String { "\(unit)\u{1}\(mask)" }

    init(dataset: String, model: String, rows: [ResultRow], masks: [String], limit: Double, spec: SweepSpec? = nil) {
        self.dataset = dataset
        self.model = model
        let mine = rows.filter { $0.dataset == dataset && $0.model == model }
        let masked = mine.filter { $0.kind == .mask }
        let present = Set(masked.map(\.layer))
        let all = (try? LayerMatcher.units(of: model, in: spec)) ?? []
        units = all.filter { present.contains($0.name) }
        self.masks = masks.filter { m in masked.contains { $0.mask == m } }
        cells = Dictionary(grouping: masked) { Self.key($0.layer, $0.mask) }
        baselines = mine.filter { $0.kind == .baseline && $0.status == .ok }.compactMap(\.testAccuracy)
        self.limit = limit
        statistics = spec?.statistics ?? StatisticsSection()
        summaries = Dictionary(UnitSummary.summaries(rows.filter { $0.dataset == dataset && $0.model == model }, settings: statistics).map { (Self.key($0.layer, $0.mask), $0) }, uniquingKeysWith: { a, _ in a })
    }

    /// Mean Δ of the successful rows of a cell, and how many there were.
    func mean(_ unit: String, _ mask: String) -> (Double, Int)? {
        let ok = (cells[Self.key(unit, mask)] ?? []).compactMap { $0.status == .ok ? $0.deltaAccuracy : nil }
        return ok.isEmpty ? nil : (ok.reduce(0, +) / Double(ok.count), ok.count)
    }

    func svg(into m: inout Markup) {
        let (labelWidth, cellWidth, cellHeight, header) = (210.0, 104.0, 19.0, 34.0)
        // Wide enough for the legend and its caption even with one or two mask columns.
        let width = max(labelWidth + cellWidth * Double(masks.count) + 10, labelWidth + 400)
        let height = header + cellHeight * Double(units.count) + 78
        m.element("svg", ["xmlns": "http://www.w3.org/2000/svg", "class": "heatmap", "width": Format.coordinate(width),
                          "height": Format.coordinate(height), "viewBox": "0 0 \(Format.coordinate(width)) \(Format.coordinate(height))",
                          "role": "img", "aria-label": "Δ accuracy heatmap of \(model) on \(dataset)"]) { m in
            for (j, mask) in masks.enumerated() {
                m.element("text", ["x": Format.coordinate(labelWidth + cellWidth * (Double(j) + 0.5)), "y": "24",
                                   "text-anchor": "middle", "class": "colhead"], text: mask)
            }
            var previousGroup: String?
            for (i, unit) in units.enumerated() {
                let y = header + cellHeight * Double(i)
                if let previousGroup, previousGroup != unit.group {
                    m.empty("line", ["x1": "0", "x2": Format.coordinate(labelWidth + cellWidth * Double(masks.count)), "y1": Format.coordinate(y), "y2": Format.coordinate(y),
                                     "class": "stage-boundary"])
                }
                previousGroup = unit.group
                let label = (unit.isTransition ? "▸ " : "") + unit.name
                m.element("text", ["x": Format.coordinate(labelWidth - 6), "y": Format.coordinate(y + cellHeight - 4.5),
                                   "text-anchor": "end", "class": unit.isTransition ? "rowhead transition" : "rowhead"], text: label)
                for (j, mask) in masks.enumerated() {
                    let x = labelWidth + cellWidth * Double(j)
                    let rows = cells[Self.key(unit.name, mask)] ?? []
                    let stats = mean(unit.name, mask)
                    let summary = summaries[Self.key(unit.name, mask)]
                    // Grey: the mask does not apply to this unit, or no network gave a result.
                    let fill = stats.map { ColorScale.diverging.color(value: $0.0, limit: limit) } ?? "#d9d9d9"
                    let call = summary?.call
                    m.element("g", ["class": "cell", "data-applies": rows.isEmpty ? "no" : "yes", "data-unit": unit.name, "data-mask": mask,
                                    "data-call": call?.rawValue ?? "n/a", "data-rank-unstable": summary?.rankUnstable == true ? "yes" : "no",
                                    "data-delta": stats.map { Format.signed($0.0, 4) } ?? "n/a"]) { m in
                        m.element("title", text: rows.isEmpty ? "\(unit.name) · \(mask): n/a (the mask does not apply)"
                                                              : tooltip(unit.name, mask, rows, stats, summary))
                        m.empty("rect", ["x": Format.coordinate(x + 1), "y": Format.coordinate(y + 1), "width": Format.coordinate(cellWidth - 2),
                                         "height": Format.coordinate(cellHeight - 2), "fill": fill])
                        if call == .trivial {
                            m.empty("rect", ["x": Format.coordinate(x + 2.5), "y": Format.coordinate(y + 2.5), "width": Format.coordinate(cellWidth - 5),
                                             "height": Format.coordinate(cellHeight - 5), "class": "trivial-mark"])
                        }
                        m.element("text", ["x": Format.coordinate(x + cellWidth / 2), "y": Format.coordinate(y + cellHeight - 4.5),
                                           "text-anchor": "middle", "class": "value", "fill": ColorScale.textColor(on: fill)],
                                  text: cellText(stats, summary, status: rows.first?.status.rawValue))
                    }
                }
            }
            legend(into: &m, x: labelWidth, y: header + cellHeight * Double(units.count) + 14, width: 200)
        }
    }

    /// "−0.352±0.041" (mean and the interval's half-width), "n/a" where nothing ran; a trailing
    /// "*" marks a unit whose rank moves between seeds.
    private func cellText(_ stats: (Double, Int)?, _ summary: UnitSummary?, status: String?) -> String {
        guard let stats else { return status ?? "n/a" }
        var text = Format.signed(stats.0, 3)
        if let low = summary?.deltaLow, let high = summary?.deltaHigh { text += "±" + Format.fixed((high - low) / 2, 3).replacingOccurrences(of: "0.", with: ".") }
        return text + (summary?.rankUnstable == true ? "*" : "")
    }

    private func tooltip(_ unit: String, _ mask: String, _ rows: [ResultRow], _ stats: (Double, Int)?, _ summary: UnitSummary?) -> String {
        var parts = ["\(unit) · \(mask)"]
        if let stats { parts.append("mean Δ accuracy \(Format.signed(stats.0, 4)) over \(stats.1) trained network\(stats.1 == 1 ? "" : "s")") }
        if let s = summary, let low = s.deltaLow, let high = s.deltaHigh {
            parts.append("\(Format.percent(statistics.level)) interval [\(Format.signed(low, 4)), \(Format.signed(high, 4))] over \(s.seeds == 1 ? "the test images (one network)" : "\(s.seeds) seeds and their test images"): "
                         + "\(s.call.rawValue) at |Δ| < \(statistics.threshold) (\(statistics.correction.rawValue) correction; each network: \(s.networkCallText))")
        }
        if summary?.rankUnstable == true { parts.append("* its rank among the units moves by more than a quarter of them between seeds") }
        for r in rows where r.mcnemarP != nil {
            parts.append("seed\(r.seed): McNemar p = \(String(format: "%.3g", r.mcnemarP!))")
        }
        for r in rows.sorted(by: { $0.seed < $1.seed }) {
            if let acc = r.testAccuracy, let base = r.baselineAccuracy {
                parts.append("seed\(r.seed): accuracy \(Format.fixed(acc, 4)) vs baseline \(Format.fixed(base, 4))")
            } else {
                parts.append("seed\(r.seed): \(r.status.rawValue)\(r.error.map { " — \($0)" } ?? "")")
            }
        }
        if let params = rows.first?.paramsMasked { parts.append("\(params) parameters masked") }
        return parts.joined(separator: "\n")
    }

    private func legend(into m: inout Markup, x: Double, y: Double, width: Double) {
        let steps = 24
        for s in 0..<steps {
            let t = Double(s) / Double(steps - 1)
            m.empty("rect", ["x": Format.coordinate(x + width * Double(s) / Double(steps)), "y": Format.coordinate(y),
                             "width": Format.coordinate(width / Double(steps) + 0.5), "height": "10",
                             "fill": ColorScale.diverging.color(t)])
        }
        for (value, anchor, dx) in [(-limit, "start", 0.0), (0, "middle", width / 2), (limit, "end", width)] {
            m.element("text", ["x": Format.coordinate(x + dx), "y": Format.coordinate(y + 24), "text-anchor": anchor, "class": "tick"],
                      text: value == 0 ? "0" : Format.signed(value, 2))
        }
        m.element("text", ["x": Format.coordinate(x), "y": Format.coordinate(y + 38), "text-anchor": "start", "class": "axis"],
                  text: "Δ test accuracy (fraction; red = the unit matters)")
        m.element("text", ["x": Format.coordinate(x), "y": Format.coordinate(y + 52), "text-anchor": "start", "class": "axis"],
                  text: "±: 95% interval · outlined: trivial · *: rank unstable · grey: n/a")
    }
}

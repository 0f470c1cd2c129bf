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

    static func key(_ unit: String, _ mask: String) -> String { "\(unit)\u{1}\(mask)" }

    init(dataset: String, model: String, rows: [ResultRow], masks: [String], limit: Double) {
        self.dataset = dataset
        self.model = model
        let mine = rows.filter { $0.dataset == dataset && $0.model == model }
        let masked = mine.filter { $0.kind == TaskKind.mask.rawValue }
        let present = Set(masked.map(\.layer))
        let all = (try? LayerMatcher.units(of: model)) ?? []
        units = all.filter { present.contains($0.name) }
        self.masks = masks.filter { m in masked.contains { $0.mask == m } }
        cells = Dictionary(grouping: masked) { Self.key($0.layer, $0.mask) }
        baselines = mine.filter { $0.kind == TaskKind.baseline.rawValue && $0.status == "ok" }.compactMap(\.testAccuracy)
        self.limit = limit
    }

    /// Mean Δ of the successful rows of a cell, and how many there were.
    func mean(_ unit: String, _ mask: String) -> (Double, Int)? {
        let ok = (cells[Self.key(unit, mask)] ?? []).compactMap { $0.status == "ok" ? $0.deltaAccuracy : nil }
        return ok.isEmpty ? nil : (ok.reduce(0, +) / Double(ok.count), ok.count)
    }

    func svg(into m: inout Markup) {
        let (labelWidth, cellWidth, cellHeight, header) = (190.0, 78.0, 17.0, 34.0)
        // Wide enough for the legend and its caption even with one or two mask columns.
        let width = max(labelWidth + cellWidth * Double(masks.count) + 10, labelWidth + 250)
        let height = header + cellHeight * Double(units.count) + 64
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
                    m.empty("line", ["x1": "0", "x2": Format.coordinate(width - 10), "y1": Format.coordinate(y), "y2": Format.coordinate(y),
                                     "class": "stage-boundary"])
                }
                previousGroup = unit.group
                let label = (unit.isTransition ? "▸ " : "") + unit.name
                m.element("text", ["x": Format.coordinate(labelWidth - 6), "y": Format.coordinate(y + cellHeight - 4.5),
                                   "text-anchor": "end", "class": unit.isTransition ? "rowhead transition" : "rowhead"], text: label)
                for (j, mask) in masks.enumerated() {
                    let x = labelWidth + cellWidth * Double(j)
                    let rows = cells[Self.key(unit.name, mask)] ?? []
                    guard !rows.isEmpty else { continue }
                    let stats = mean(unit.name, mask)
                    let fill = stats.map { ColorScale.diverging.color(value: $0.0, limit: limit) } ?? "#d9d9d9"
                    m.element("g", ["class": "cell", "data-unit": unit.name, "data-mask": mask,
                                    "data-delta": stats.map { Format.signed($0.0, 4) } ?? "n/a"]) { m in
                        m.element("title", text: tooltip(unit.name, mask, rows, stats))
                        m.empty("rect", ["x": Format.coordinate(x + 1), "y": Format.coordinate(y + 1), "width": Format.coordinate(cellWidth - 2),
                                         "height": Format.coordinate(cellHeight - 2), "fill": fill])
                        m.element("text", ["x": Format.coordinate(x + cellWidth / 2), "y": Format.coordinate(y + cellHeight - 4.5),
                                           "text-anchor": "middle", "class": "value", "fill": ColorScale.textColor(on: fill)],
                                  text: stats.map { Format.signed($0.0, 3) } ?? (rows.first?.status ?? "n/a"))
                    }
                }
            }
            legend(into: &m, x: labelWidth, y: header + cellHeight * Double(units.count) + 14, width: 200)
        }
    }

    private func tooltip(_ unit: String, _ mask: String, _ rows: [ResultRow], _ stats: (Double, Int)?) -> String {
        var parts = ["\(unit) · \(mask)"]
        if let stats { parts.append("mean Δ accuracy \(Format.signed(stats.0, 4)) over \(stats.1) trained network(s)") }
        for r in rows.sorted(by: { $0.seed < $1.seed }) {
            if let acc = r.testAccuracy, let base = r.baselineAccuracy {
                parts.append("seed\(r.seed): accuracy \(Format.fixed(acc, 4)) vs baseline \(Format.fixed(base, 4))")
            } else {
                parts.append("seed\(r.seed): \(r.status)\(r.error.map { " — \($0)" } ?? "")")
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
    }
}

import Foundation
import Models
import PairedStatistics
import Procedures
import Rendering
import SweepCore
import SweepFile
import SweepRecords

/// One panel of the layer-zeroing heatmap of a (dataset, model): the units that take the same
/// masks (kernels: convolutions and the classifier; branches: residual blocks) as rows in
/// network order (stage boundaries ruled, transition units marked), those masks as columns; no
/// cell is filler. Cells are coloured by the mean Δ accuracy on a fixed diverging scale (the same
/// in every run) and show each network's Δ as a dot.
struct ZeroingHeatmap {
    let dataset: String
    let model: String
    /// "kernels" or "branches" (or "units" for a mix).
    let title: String
    let units: [MaskableUnit]
    let masks: [String]
    /// (unit, mask) -> per-seed rows.
    let cells: [String: [ResultRow]]
    let baselines: [Double]
    /// (unit, mask) -> the interval over seeds (or test images) and its call.
    let summaries: [String: UnitSummary]
    let statistics: StatisticsSection

    static func key(_ unit: String, _ mask: String) -> String { "\(unit)\u{1}\(mask)" }

    /// The panels of one (dataset, model): units grouped by the masks that have rows for them.
    static func panels(dataset: String, model: String, rows: [ResultRow], masks: [String], spec: SweepSpec? = nil) -> [ZeroingHeatmap] {
        let mine = rows.filter { $0.dataset == dataset && $0.model == model }
        let masked = mine.filter { $0.kind == .mask }
        let cells = Dictionary(grouping: masked) { key($0.layer, $0.mask) }
        let all = ((try? LayerMatcher.units(of: model, in: spec)) ?? []).filter { u in masked.contains { $0.layer == u.name } }
        let statistics = spec?.statistics ?? StatisticsSection()
        let summaries = Dictionary(UnitSummary.summaries(mine, settings: statistics).map { (key($0.layer, $0.mask), $0) }, uniquingKeysWith: { a, _ in a })
        let baselines = mine.filter { $0.kind == .baseline && $0.status == .ok }.compactMap(\.testAccuracy)
        // Units that take the same masks share a panel, kernels first.
        var order: [[String]] = []
        var members: [[String]: [MaskableUnit]] = [:]
        for unit in all {
            let taken = masks.filter { cells[key(unit.name, $0)] != nil }
            if members[taken] == nil { order.append(taken) }
            members[taken, default: []].append(unit)
        }
        return order.map { taken in
            let units = members[taken]!
            let kinds = Set(units.map(\.kind))
            let title = kinds == [.branch] ? "residual branches" : kinds.contains(.branch) ? "units" : "kernels"
            return ZeroingHeatmap(dataset: dataset, model: model, title: title, units: units, masks: taken, cells: cells,
                                  baselines: baselines, summaries: summaries, statistics: statistics)
        }
    }

    /// The fixed colour scale: Δ ∈ [−1, 1] with √|Δ| compression, so that a 1-point change is
    /// visible and the colours mean the same in every run.
    static func color(_ delta: Double) -> String { ColorScale.diverging.color(position(delta)) }

    /// Where `delta` sits on the scale, 0 (−1) to 1 (+1), √-compressed about 0.5.
    static func position(_ delta: Double) -> Double {
        0.5 + (delta < 0 ? -1.0 : 1.0) * min(abs(delta), 1).squareRoot() / 2
    }

    /// Marks of the calls, in the cell text and the legend.
    static let callMarks: [Statistics.Call: String] = [.trivial: "≈", .harmful: "▼", .helpful: "▲", .undecided: "?"]

    /// Mean Δ of the successful rows of a cell, and how many there were.
    func mean(_ unit: String, _ mask: String) -> (Double, Int)? {
        let ok = (cells[Self.key(unit, mask)] ?? []).compactMap { $0.status == .ok ? $0.deltaAccuracy : nil }
        return ok.isEmpty ? nil : (ok.reduce(0, +) / Double(ok.count), ok.count)
    }

    func svg(into m: inout Markup) {
        let (labelWidth, cellWidth, cellHeight, header) = (230.0, 124.0, 30.0, 36.0)
        // Wide enough for the legend and its caption even with one mask column.
        let width = max(labelWidth + cellWidth * Double(masks.count) + 10, labelWidth + 330)
        let height = header + cellHeight * Double(units.count) + 92
        m.element("svg", ["xmlns": "http://www.w3.org/2000/svg", "class": "heatmap", "width": Format.coordinate(width),
                          "height": Format.coordinate(height), "viewBox": "0 0 \(Format.coordinate(width)) \(Format.coordinate(height))",
                          "role": "img", "aria-label": "Δ accuracy heatmap of the \(title) of \(model) on \(dataset)"]) { m in
            m.element("style", text: FigureStyle.css)
            m.element("text", ["x": "4", "y": "14", "class": "colhead"], text: title)
            for (j, mask) in masks.enumerated() {
                m.element("text", ["x": Format.coordinate(labelWidth + cellWidth * (Double(j) + 0.5)), "y": "30",
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
                m.element("text", ["x": Format.coordinate(labelWidth - 6), "y": Format.coordinate(y + cellHeight / 2 + 4),
                                   "text-anchor": "end", "class": unit.isTransition ? "rowhead transition" : "rowhead"], text: label)
                for (j, mask) in masks.enumerated() {
                    cell(unit.name, mask, x: labelWidth + cellWidth * Double(j), y: y, width: cellWidth, height: cellHeight, into: &m)
                }
            }
            legend(into: &m, x: labelWidth, y: header + cellHeight * Double(units.count) + 14, width: 220)
        }
    }

    /// One cell: the mean Δ's colour, its value and call mark, and a dot per network on a
    /// −1…+1 strip along the bottom.
    private func cell(_ unit: String, _ mask: String, x: Double, y: Double, width: Double, height: Double, into m: inout Markup) {
        let rows = cells[Self.key(unit, mask)] ?? []
        let stats = mean(unit, mask)
        let summary = summaries[Self.key(unit, mask)]
        let fill = stats.map { Self.color($0.0) } ?? "#d9d9d9"
        let call = summary?.call
        let c = Format.coordinate
        m.element("g", ["class": "cell", "data-unit": unit, "data-mask": mask, "data-call": call?.rawValue ?? "none",
                        "data-rank-unstable": summary?.rankUnstable == true ? "yes" : "no", "data-delta": stats.map { Format.signed($0.0, 4) } ?? "none"]) { m in
            m.element("title", text: tooltip(unit, mask, rows, stats, summary))
            m.empty("rect", ["x": c(x + 1), "y": c(y + 1), "width": c(width - 2), "height": c(height - 2), "fill": fill])
            if call == .trivial {
                m.empty("rect", ["x": c(x + 2.5), "y": c(y + 2.5), "width": c(width - 5), "height": c(height - 5), "class": "trivial-mark"])
            }
            let ink = ColorScale.textColor(on: fill)
            m.element("text", ["x": c(x + width / 2), "y": c(y + 13), "text-anchor": "middle", "class": "value", "fill": ink],
                      text: cellText(stats, summary, status: rows.first?.status.rawValue))
            // Each network's Δ, on the strip from −1 (left) to +1 (right).
            let (stripLeft, stripWidth, stripY) = (x + 6, width - 12, y + height - 7)
            m.empty("line", ["x1": c(stripLeft), "x2": c(stripLeft + stripWidth), "y1": c(stripY), "y2": c(stripY), "class": "strip", "stroke": ink])
            for r in rows.sorted(by: { $0.seed < $1.seed }) {
                guard r.status == .ok, let d = r.deltaAccuracy, d.isFinite else { continue }
                m.empty("circle", ["cx": c(stripLeft + stripWidth * (0.5 + max(-1, min(1, d)) / 2)), "cy": c(stripY), "r": "2.6",
                                   "class": "seed-dot", "fill": ink])
            }
        }
    }

    /// "−0.352 ▼" (mean and call mark); "*" marks a unit whose rank moves between seeds.
    private func cellText(_ stats: (Double, Int)?, _ summary: UnitSummary?, status: String?) -> String {
        guard let stats else { return status ?? "—" }
        var text = Format.signed(stats.0, 3)
        if let call = summary?.call { text += " " + (Self.callMarks[call] ?? "") }
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
        let steps = 40
        for s in 0..<steps {
            let t = Double(s) / Double(steps - 1) * 2 - 1
            m.empty("rect", ["x": Format.coordinate(x + width * Double(s) / Double(steps)), "y": Format.coordinate(y),
                             "width": Format.coordinate(width / Double(steps) + 0.5), "height": "10",
                             "fill": ColorScale.diverging.color(0.5 + t / 2)])
        }
        for value in [-1.0, -0.25, 0, 0.25, 1] {
            let anchor = value == -1 ? "start" : value == 1 ? "end" : "middle"
            m.element("text", ["x": Format.coordinate(x + width * Self.position(value)), "y": Format.coordinate(y + 24), "text-anchor": anchor, "class": "tick"],
                      text: value == 0 ? "0" : abs(value) == 1 ? Format.signed(value, 0) : Format.signed(value, 2))
        }
        let lines = ["Δ test accuracy, fixed scale −1…+1 (√-compressed); red: the unit matters",
                     "▼ harmful  ▲ helpful  ≈ trivial (outlined)  ? undecided  (\(statistics.correction.rawValue) over the units and masks)",
                     "dots: each network's Δ on a −1…+1 strip  · *: rank moves between seeds"]
        for (i, line) in lines.enumerated() {
            m.element("text", ["x": Format.coordinate(x - 226), "y": Format.coordinate(y + 42 + 15 * Double(i)), "text-anchor": "start", "class": "axis"], text: line)
        }
    }
}

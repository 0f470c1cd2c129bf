import Foundation
import Rendering
import SweepCore
import SweepFile
import SweepPlan
import SweepRecords

/// Which task ran on which rank, and when: one lane per rank, one bar per task, coloured by
/// kind. Load balance (or its absence) is visible at a glance.
struct Timeline {
    let records: [TaskRecord]

    func svg(into m: inout Markup) {
        // In start order (records may come in any order: the figure is the same bytes each time).
        let ran = records.filter { $0.rank >= 0 }.sorted { ($0.started, $0.key) < ($1.started, $1.key) }
        guard let start = ran.map(\.started).min(), let end = ran.map(\.finished).max() else { return }
        let span = max(end.timeIntervalSince(start), 1e-3)
        let ranks = Array(Set(ran.map(\.rank))).sorted()
        let (left, laneHeight, width) = (70.0, 16.0, 880.0)
        let plotWidth = width - left - 10
        let height = 30 + laneHeight * Double(ranks.count) + 40
        let order = PlanningStudies.kindOrder
        let kinds = order.filter { k in ran.contains { $0.kind == k } }
        m.element("svg", ["xmlns": "http://www.w3.org/2000/svg", "class": "timeline", "width": Format.coordinate(width),
                          "height": Format.coordinate(height), "viewBox": "0 0 \(Format.coordinate(width)) \(Format.coordinate(height))",
                          "role": "img", "aria-label": "per-rank timeline"]) { m in
            m.element("style", text: FigureStyle.css)
            for (lane, rank) in ranks.enumerated() {
                let y = 10 + laneHeight * Double(lane)
                m.element("text", ["x": Format.coordinate(left - 6), "y": Format.coordinate(y + laneHeight - 4), "text-anchor": "end",
                                   "class": "rowhead"], text: "rank \(rank)")
                for r in ran where r.rank == rank {
                    let x0 = left + plotWidth * r.started.timeIntervalSince(start) / span
                    let w = max(plotWidth * r.finished.timeIntervalSince(r.started) / span, 0.8)
                    let color = ColorScale.categories[min(kinds.firstIndex(of: r.kind) ?? 7, 7)]
                    m.element("rect", ["x": Format.coordinate(x0), "y": Format.coordinate(y + 2), "width": Format.coordinate(w),
                                       "height": Format.coordinate(laneHeight - 4), "fill": r.outcome.status == .ok ? color : "#000000",
                                       "class": "task"]) { m in
                        m.element("title", text: "\(r.key)\n\(r.kind.rawValue), \(r.outcome.status.rawValue), \(Format.fixed(r.outcome.seconds, 2)) s on \(r.host)")
                    }
                }
            }
            let axisY = 10 + laneHeight * Double(ranks.count) + 4
            m.empty("line", ["x1": Format.coordinate(left), "x2": Format.coordinate(left + plotWidth), "y1": Format.coordinate(axisY),
                             "y2": Format.coordinate(axisY), "class": "axisline"])
            // Ticks at round times (1, 2, 5, 10, 15, 30 s, 1, 2, 5, 10, 15, 30 min, 1, 2, 6, 12 h, ...), at most 7.
            let steps: [Double] = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400]
            let step = steps.first { span / $0 <= 6 } ?? (span / 6).rounded(.up)
            var t = 0.0
            while t <= span + 1e-9 {
                let x = left + plotWidth * t / max(span, 1e-9)
                m.empty("line", ["x1": Format.coordinate(x), "x2": Format.coordinate(x), "y1": Format.coordinate(axisY),
                                 "y2": Format.coordinate(axisY + 3), "class": "axisline"])
                m.element("text", ["x": Format.coordinate(x), "y": Format.coordinate(axisY + 14),
                                   "text-anchor": x > left + plotWidth - 30 ? "end" : "middle", "class": "tick"], text: ProgressText.duration(t))
                t += step
            }
            var x = left
            for (i, kind) in kinds.enumerated() {
                m.empty("rect", ["x": Format.coordinate(x), "y": Format.coordinate(axisY + 22), "width": "10", "height": "10",
                                 "fill": ColorScale.categories[min(i, 7)]])
                m.element("text", ["x": Format.coordinate(x + 14), "y": Format.coordinate(axisY + 31), "class": "tick"], text: kind.rawValue)
                x += 24 + 7 * Double(kind.rawValue.count)
            }
            m.empty("rect", ["x": Format.coordinate(x), "y": Format.coordinate(axisY + 22), "width": "10", "height": "10", "fill": "#000000"])
            m.element("text", ["x": Format.coordinate(x + 14), "y": Format.coordinate(axisY + 31), "class": "tick"],
                      text: "failed or diverged · time since the first task started")
        }
    }
}

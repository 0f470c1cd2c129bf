import Foundation

/// Which task ran on which rank, and when: one lane per rank, one bar per task, coloured by
/// kind. Load balance (or its absence) is visible at a glance.
struct Timeline {
    let records: [TaskRecord]

    func svg(into m: inout Markup) {
        let ran = records.filter { $0.rank >= 0 }
        guard let start = ran.map(\.started).min(), let end = ran.map(\.finished).max() else { return }
        let span = max(end.timeIntervalSince(start), 1e-3)
        let ranks = Array(Set(ran.map(\.rank))).sorted()
        let (left, laneHeight, width) = (70.0, 16.0, 880.0)
        let plotWidth = width - left - 10
        let height = 30 + laneHeight * Double(ranks.count) + 40
        let order: [TaskKind] = [.train, .baseline, .mask, .prune, .oneShot, .logits, .student, .reuse, .noop]
        let kinds = order.filter { k in ran.contains { $0.kind == k } }
        m.element("svg", ["xmlns": "http://www.w3.org/2000/svg", "class": "timeline", "width": Format.coordinate(width),
                          "height": Format.coordinate(height), "viewBox": "0 0 \(Format.coordinate(width)) \(Format.coordinate(height))",
                          "role": "img", "aria-label": "per-rank timeline"]) { m in
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
            for i in 0...5 {
                let t = span * Double(i) / 5
                m.element("text", ["x": Format.coordinate(left + plotWidth * Double(i) / 5), "y": Format.coordinate(axisY + 14),
                                   "text-anchor": "middle", "class": "tick"], text: ProgressText.duration(t))
            }
            var x = left
            for (i, kind) in kinds.enumerated() {
                m.empty("rect", ["x": Format.coordinate(x), "y": Format.coordinate(axisY + 22), "width": "10", "height": "10",
                                 "fill": ColorScale.categories[min(i, 7)]])
                m.element("text", ["x": Format.coordinate(x + 14), "y": Format.coordinate(axisY + 31), "class": "tick"], text: kind.rawValue)
                x += 75
            }
            m.element("text", ["x": Format.coordinate(x + 10), "y": Format.coordinate(axisY + 31), "class": "tick"],
                      text: "black: failed or diverged · time since the first task started")
        }
    }
}

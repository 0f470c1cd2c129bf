import Foundation

/// An x-y chart in SVG: labelled axes with units, optional log-scale x, series drawn as lines
/// (solid or dashed) and/or markers, a legend, and a tooltip on every point.
public struct LineChart {
    public struct Point {
        public var x: Double
        public var y: Double
        /// Whisker half-height (e.g. the spread over seeds); 0 for none.
        public var spread: Double = 0
        public var tooltip: String

        public init(x: Double, y: Double, spread: Double = 0, tooltip: String) {
            (self.x, self.y, self.spread, self.tooltip) = (x, y, spread, tooltip)
        }
    }

    public struct Series {
        public var label: String
        public var color: String
        public var points: [Point]
        public var dashed = false
        public var lines = true
        /// "circle" or "square".
        public var marker = "circle"

        public init(label: String, color: String, points: [Point], dashed: Bool = false, lines: Bool = true, marker: String = "circle") {
            (self.label, self.color, self.points, self.dashed, self.lines, self.marker) = (label, color, points, dashed, lines, marker)
        }
    }

    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var series: [Series]
    public var logX = false
    /// Shown as a horizontal reference line (e.g. the teacher's accuracy), with its label.
    public var reference: (value: Double, label: String)?
    /// Fixed y range; nil: fitted to the data.
    public var yRange: ClosedRange<Double>?
    /// Whether the fitted y range makes room for the whiskers (else they are cut at the frame).
    public var fitWhiskers = true
    /// Unlabelled x ticks at these values (e.g. where points are plotted), besides the labelled ones.
    public var minorXTicks: [Double] = []
    /// Labelled x ticks at exactly these values (e.g. the sparsities tested) instead of round ones.
    public var xTickValues: [Double]?
    /// Spreads drawn as a shaded band around each line (clipped to the frame) instead of whiskers.
    public var bands = false
    /// The legend as a second column beside the plot instead of below it.
    public var legendBeside = false
    public var width = 430.0
    public var height = 300.0

    public init(title: String, xLabel: String, yLabel: String, series: [Series], logX: Bool = false,
                reference: (value: Double, label: String)? = nil, yRange: ClosedRange<Double>? = nil, fitWhiskers: Bool = true,
                minorXTicks: [Double] = [], xTickValues: [Double]? = nil, bands: Bool = false, legendBeside: Bool = false,
                width: Double = 430, height: Double = 300) {
        (self.title, self.xLabel, self.yLabel, self.series, self.logX) = (title, xLabel, yLabel, series, logX)
        (self.reference, self.yRange, self.fitWhiskers, self.minorXTicks, self.xTickValues) = (reference, yRange, fitWhiskers, minorXTicks, xTickValues)
        (self.bands, self.legendBeside, self.width, self.height) = (bands, legendBeside, width, height)
    }

    /// The plot area and the data ranges it shows: where a value lands on the page.
    private struct Frame {
        let left: Double, top: Double, width: Double, height: Double
        let x0: Double, x1: Double, y0: Double, y1: Double
        let logX: Bool

        /// A data x on the (log or linear) axis.
        func axis(_ x: Double) -> Double { logX ? log10(max(x, 1e-12)) : x }
        func px(_ x: Double) -> Double { left + (axis(x) - x0) / (x1 - x0) * width }
        func py(_ y: Double) -> Double { top + (1 - (y - y0) / (y1 - y0)) * height }
    }

    public func svg(into m: inout Markup) {
        let all = series.flatMap(\.points)
        guard !all.isEmpty else { return }
        let legendHeight = legendBeside ? 0 : 16.0 * Double(series.count + (reference == nil ? 0 : 1)) + 6
        let totalHeight = max(height + legendHeight, legendBeside ? 24 + 16 * Double(series.count + 1) : 0)
        let longest = (series.map(\.label) + [reference?.label ?? ""]).map(\.count).max() ?? 0
        let legendWidth = legendBeside ? 40 + 6.5 * Double(longest) : 0
        let frame = fittedFrame(all)
        let c = Format.coordinate
        let totalWidth = width + legendWidth
        m.element("svg", ["xmlns": "http://www.w3.org/2000/svg", "class": "chart", "width": c(totalWidth), "height": c(totalHeight),
                          "viewBox": "0 0 \(c(totalWidth)) \(c(totalHeight))", "role": "img", "aria-label": title]) { m in
            m.element("style", text: FigureStyle.css)
            m.element("text", ["x": c(frame.left), "y": "14", "class": "colhead"], text: title)
            drawAxes(frame, into: &m)
            drawSeries(frame, into: &m)
            drawLegend(frame, into: &m)
        }
    }

    /// The plot area (margins for the title, tick labels and axis labels) and the ranges: x padded
    /// by 4%, y fitted to the points (with their whiskers, if asked) and the reference, padded by 8%.
    private func fittedFrame(_ all: [Point]) -> Frame {
        let (left, right, top, bottom) = (58.0, 12.0, 24.0, 44.0)
        func tx(_ x: Double) -> Double { logX ? log10(max(x, 1e-12)) : x }
        let xs = all.map { tx($0.x) }
        var ys = all.flatMap { fitWhiskers ? [$0.y - $0.spread, $0.y + $0.spread] : [$0.y] }
        if let r = reference { ys.append(r.value) }
        var (x0, x1) = (xs.min()!, xs.max()!)
        if x1 - x0 < 1e-9 { x0 -= 0.5; x1 += 0.5 }
        let pad = (x1 - x0) * 0.04
        x0 -= pad; x1 += pad
        var (y0, y1) = yRange.map { ($0.lowerBound, $0.upperBound) } ?? (ys.min()!, ys.max()!)
        if yRange == nil {
            if y1 - y0 < 1e-9 { y0 -= 0.01; y1 += 0.01 }
            let ypad = (y1 - y0) * 0.08
            y0 -= ypad; y1 += ypad
        }
        return Frame(left: left, top: top, width: width - left - right, height: height - top - bottom,
                     x0: x0, x1: x1, y0: y0, y1: y1, logX: logX)
    }

    /// The frame, y grid lines with labels, x ticks (labelled and minor), the axis labels and the
    /// reference line.
    private func drawAxes(_ f: Frame, into m: inout Markup) {
        let c = Format.coordinate
        let (left, top, plotW, plotH) = (f.left, f.top, f.width, f.height)
        m.empty("rect", ["x": c(left), "y": c(top), "width": c(plotW), "height": c(plotH), "fill": "none", "class": "axisline"])
        for t in ticks(f.y0, f.y1) {
            m.empty("line", ["x1": c(left), "x2": c(left + plotW), "y1": c(f.py(t)), "y2": c(f.py(t)), "stroke": "#e6e6e6"])
            m.element("text", ["x": c(left - 4), "y": c(f.py(t) + 3), "text-anchor": "end", "class": "tick"], text: label(t))
        }
        for t in xTickValues.map({ $0.map { (f.axis($0), label($0)) } }) ?? xTicks(f.x0, f.x1) {
            let x = left + (t.position - f.x0) / (f.x1 - f.x0) * plotW
            m.empty("line", ["x1": c(x), "x2": c(x), "y1": c(top + plotH), "y2": c(top + plotH + 4), "class": "axisline"])
            m.element("text", ["x": c(x), "y": c(top + plotH + 15), "text-anchor": "middle", "class": "tick"], text: t.text)
        }
        for v in minorXTicks where (f.x0...f.x1).contains(f.axis(v)) {
            m.empty("line", ["x1": c(f.px(v)), "x2": c(f.px(v)), "y1": c(top + plotH), "y2": c(top + plotH + 2.5), "class": "axisline minor"])
        }
        m.element("text", ["x": c(left + plotW / 2), "y": c(top + plotH + 33), "text-anchor": "middle", "class": "axis"], text: xLabel)
        m.element("text", ["x": "12", "y": c(top + plotH / 2), "text-anchor": "middle", "class": "axis",
                           "transform": "rotate(-90 12 \(c(top + plotH / 2)))"], text: yLabel)
        if let r = reference {
            m.empty("line", ["x1": c(left), "x2": c(left + plotW), "y1": c(f.py(r.value)), "y2": c(f.py(r.value)), "stroke": "#555555",
                             "stroke-dasharray": "2 3", "class": "reference"])
        }
    }

    /// Each series: its band (if bands), its line, its whiskers and its markers with tooltips.
    private func drawSeries(_ f: Frame, into m: inout Markup) {
        let c = Format.coordinate
        if bands {
            for s in series {
                let pts = s.points.sorted { $0.x < $1.x }.filter { $0.spread > 0 }
                guard pts.count > 1 else { continue }
                let upper = pts.map { "\(c(f.px($0.x))),\(c(f.py(min($0.y + $0.spread, f.y1))))" }
                let lower = pts.reversed().map { "\(c(f.px($0.x))),\(c(f.py(max($0.y - $0.spread, f.y0))))" }
                m.empty("polygon", ["points": (upper + lower).joined(separator: " "), "fill": s.color, "class": "band"])
            }
        }
        for s in series {
            let pts = s.points.sorted { $0.x < $1.x }
            if s.lines, pts.count > 1 {
                m.empty("polyline", ["points": pts.map { "\(c(f.px($0.x))),\(c(f.py($0.y)))" }.joined(separator: " "), "fill": "none",
                                     "stroke": s.color, "stroke-width": "1.8", "stroke-dasharray": s.dashed ? "6 4" : "none",
                                     "class": s.dashed ? "series dashed" : "series"])
            }
            for p in pts {
                if p.spread > 0 && !bands {
                    m.empty("line", ["x1": c(f.px(p.x)), "x2": c(f.px(p.x)), "y1": c(f.py(max(p.y - p.spread, f.y0))),
                                     "y2": c(f.py(min(p.y + p.spread, f.y1))), "stroke": s.color, "stroke-width": "1", "stroke-opacity": "0.45"])
                }
                marker(s, at: (f.px(p.x), f.py(p.y)), into: &m) { m in m.element("title", text: p.tooltip) }
            }
        }
    }

    /// One line per series (its stroke and marker, then its label), then the reference's; below
    /// the plot or beside it.
    private func drawLegend(_ f: Frame, into m: inout Markup) {
        let c = Format.coordinate
        let legendX = legendBeside ? width + 4 : f.left
        var y = legendBeside ? f.top : height + 4
        for s in series {
            if s.lines {
                m.empty("line", ["x1": c(legendX), "x2": c(legendX + 22), "y1": c(y + 5), "y2": c(y + 5), "stroke": s.color,
                                 "stroke-width": "1.8", "stroke-dasharray": s.dashed ? "6 4" : "none"])
            }
            marker(s, at: (legendX + 11, y + 5), into: &m) { _ in }
            m.element("text", ["x": c(legendX + 28), "y": c(y + 9), "class": "tick legend"], text: s.label)
            y += 16
        }
        if let r = reference {
            m.empty("line", ["x1": c(legendX), "x2": c(legendX + 22), "y1": c(y + 5), "y2": c(y + 5), "stroke": "#555555", "stroke-dasharray": "2 3"])
            m.element("text", ["x": c(legendX + 28), "y": c(y + 9), "class": "tick legend"], text: r.label)
        }
    }

    private func marker(_ s: Series, at p: (Double, Double), into m: inout Markup, _ body: (inout Markup) -> Void) {
        let c = Format.coordinate
        if s.marker == "square" {
            m.element("rect", ["x": c(p.0 - 3.5), "y": c(p.1 - 3.5), "width": "7", "height": "7", "fill": s.dashed ? "#ffffff" : s.color,
                               "stroke": s.color, "class": "point"], body)
        } else {
            m.element("circle", ["cx": c(p.0), "cy": c(p.1), "r": "3.5", "fill": s.dashed ? "#ffffff" : s.color, "stroke": s.color,
                                 "class": "point"], body)
        }
    }

    /// About five round values between `a` and `b`.
    private func ticks(_ a: Double, _ b: Double) -> [Double] {
        let raw = (b - a) / 5
        let magnitude = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 2.5, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? raw
        // Multiples of the step, computed from integers: summing steps drifts (-5.55e-17 for 0).
        let first = ceil(a / step)
        var out: [Double] = []
        var i = 0.0
        while (first + i) * step <= b + step * 1e-6 {
            let t = (first + i) * step
            out.append(abs(t) < step * 1e-9 ? 0 : t)
            i += 1
        }
        return out
    }

    private func label(_ v: Double) -> String {
        let s = String(format: "%.3g", v)
        return s == "-0" ? "0" : s
    }

    /// Positions (in transformed units) and texts of x ticks: decades and 2, 5 multiples on log axes.
    private func xTicks(_ a: Double, _ b: Double) -> [(position: Double, text: String)] {
        guard logX else { return ticks(a, b).map { ($0, label($0)) } }
        var out: [(Double, String)] = []
        // Every decade; 2x and 5x as well while they fit (fewer than two decades shown).
        let multiples: [Double] = b - a < 2 ? [1, 2, 5] : [1]
        for e in Int(floor(a))...Int(ceil(b)) {
            for m in multiples {
                let v = m * pow(10, Double(e))
                let p = log10(v)
                if p >= a && p <= b { out.append((p, label(v))) }
            }
        }
        return out
    }
}

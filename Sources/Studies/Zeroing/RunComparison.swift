import Foundation
import Procedures
import Rendering
import SweepCore
import SweepFile
import SweepRecords
import SweepReport

/// Two zeroing runs side by side (`sweep compare RUN_A RUN_B`): the same (dataset, model, unit,
/// mask) in both, in network order, with their Δ, intervals and calls (each run's own
/// statistics settings), both runs' baselines, which calls differ, and a scatter plot of Δ_A
/// against Δ_B. For example networks trained by layersweep against imported ones, or 6 against 15 epochs.
public struct RunComparison: Sendable {
    public struct Line: Sendable, Equatable {
        public let dataset: String
        public let model: String
        public let layer: String
        public let mask: String
        public let a: UnitSummary
        public let b: UnitSummary
        /// The unit's position in its network (for ordering).
        public let index: Int
        public var callsDiffer: Bool { a.call != b.call }
        /// The runs make different calls and neither is undecided (say trivial against harmful):
        /// a contradiction, not one run's sharper interval.
        public var callsContradict: Bool { callsDiffer && a.call != .undecided && b.call != .undecided }
        /// "!" for a contradiction, "~" where only one run makes a call, "" where they agree.
        public var mark: String { callsContradict ? "!" : callsDiffer ? "~" : "" }
    }

    /// One run as compare reads it: its unit summaries, the units' positions and its baselines.
    public struct Side: Sendable {
        public let name: String
        public let units: [UnitSummary]
        /// (dataset, model) -> the unit's position in network order.
        public let order: [String: Int]
        /// (dataset, model) -> the baseline test accuracies of its networks.
        public let baselines: [String: [Double]]
        public let statistics: StatisticsSection
    }

    public let nameA: String
    public let nameB: String
    public let lines: [Line]
    public let baselinesA: [String: [Double]]
    public let baselinesB: [String: [Double]]
    public let statisticsA: StatisticsSection
    public let statisticsB: StatisticsSection
    /// Units with results in one run only.
    public let onlyA: Int
    public let onlyB: Int

    static func key(_ parts: String...) -> String { parts.joined(separator: "\u{1}") }

    /// A run directory's side, from its results.json (written at every refresh and at the end,
    /// so a run in progress compares too).
    public static func side(of run: RunDirectory) throws -> Side {
        struct Document: Decodable {
            struct Spec: Decodable { let study: StudyName; let statistics: StatisticsSection? }
            let spec: Spec
            let rows: [ResultRow]
        }
        guard let data = FileManager.default.contents(atPath: run.resultsJSON.path) else {
            throw RunError(path: run.resultsJSON.path, message: "no results yet (is this a run directory? `sweep report` rebuilds it from the journal)")
        }
        let document: Document
        do { document = try SweepJSON.decoder.decode(Document.self, from: data) } catch {
            throw RunError(path: run.resultsJSON.path, message: "is not a results file of layersweep (rebuild it from the journal with: sweep report \(run.url.path))")
        }
        guard document.spec.study == .zeroing else {
            throw RunError(path: run.url.path, message: "compare reads layer-zeroing runs; this one is a \(document.spec.study.rawValue) run")
        }
        let statistics = document.spec.statistics ?? StatisticsSection()
        let summaries = UnitSummary.summaries(document.rows, settings: statistics)
        guard !summaries.isEmpty else {
            throw RunError(path: run.url.path, message: "has no mask results yet (continue it with: sweep run --resume \(run.url.path))")
        }
        var order: [String: Int] = [:]
        for r in document.rows where r.kind == .mask {
            if let i = r.unitIndex { order[key(r.dataset, r.model, r.layer)] = min(order[key(r.dataset, r.model, r.layer)] ?? i, i) }
        }
        let baselines = Dictionary(grouping: document.rows.filter { $0.kind == .baseline && $0.status == .ok && $0.testAccuracy != nil }) {
            key($0.dataset, $0.model)
        }.mapValues { $0.map { $0.testAccuracy! } }
        return Side(name: run.url.lastPathComponent, units: summaries, order: order, baselines: baselines, statistics: statistics)
    }

    public init(_ runA: RunDirectory, _ runB: RunDirectory) throws {
        self.init(try RunComparison.side(of: runA), try RunComparison.side(of: runB))
    }

    public init(_ a: Side, _ b: Side) {
        func key(_ u: UnitSummary) -> String { RunComparison.key(u.dataset, u.model, u.layer, u.mask) }
        let inB = Dictionary(b.units.map { (key($0), $0) }, uniquingKeysWith: { x, _ in x })
        lines = a.units.compactMap { u in
            inB[key(u)].map {
                Line(dataset: u.dataset, model: u.model, layer: u.layer, mask: u.mask, a: u, b: $0,
                     index: a.order[RunComparison.key(u.dataset, u.model, u.layer)] ?? b.order[RunComparison.key(u.dataset, u.model, u.layer)] ?? Int.max)
            }
        }.sorted { ($0.dataset, $0.model, $0.index, $0.layer, $0.mask) < ($1.dataset, $1.model, $1.index, $1.layer, $1.mask) }
        onlyA = a.units.count - lines.count
        onlyB = b.units.count - lines.count
        (nameA, nameB) = (a.name, b.name)
        (baselinesA, baselinesB) = (a.baselines, b.baselines)
        (statisticsA, statisticsB) = (a.statistics, b.statistics)
    }

    /// "−0.352 [−0.401, −0.303] n=3 harmful".
    static func cell(_ u: UnitSummary) -> String {
        var text = Format.signed(u.deltaMean, 3)
        if let low = u.deltaLow, let high = u.deltaHigh { text += " [\(Format.signed(low, 3)), \(Format.signed(high, 3))]" }
        return text + " n=\(u.seeds) \(u.call.rawValue)"
    }

    /// "2 calls differ: 0 contradict (!), 2 made in one run only (~)".
    var differenceText: String {
        let differ = lines.filter(\.callsDiffer).count, contradict = lines.filter(\.callsContradict).count
        return "\(differ) call\(differ == 1 ? "" : "s") differ: \(contradict) contradict (!), \(differ - contradict) made in one run only (~)"
    }

    /// "0.9012 (mean of 3)" or "none".
    static func baseline(_ values: [Double]?) -> String {
        guard let values, !values.isEmpty else { return "none" }
        return "\(Format.fixed(values.reduce(0, +) / Double(values.count), 4)) (mean of \(values.count))"
    }

    /// The (dataset, model) pairs of the lines, in order.
    var networks: [(dataset: String, model: String)] {
        var seen: [String] = []
        var out: [(String, String)] = []
        for l in lines where !seen.contains(RunComparison.key(l.dataset, l.model)) {
            seen.append(RunComparison.key(l.dataset, l.model))
            out.append((l.dataset, l.model))
        }
        return out
    }

    /// The terminal table, one line per unit and mask in network order, columns aligned;
    /// `!` marks calls that differ. The baselines of both runs come first.
    public var table: [String] {
        let headers = ["", "unit", "mask", nameA, nameB]
        let body = lines.map { [$0.mark, "\($0.model) \($0.layer)", $0.mask, RunComparison.cell($0.a), RunComparison.cell($0.b)] }
        let widths = (0..<headers.count).map { c in ([headers] + body).map { $0[c].count }.max() ?? 0 }
        func line(_ fields: [String]) -> String {
            zip(fields, widths).map { $0.0.padding(toLength: $0.1, withPad: " ", startingAt: 0) }.joined(separator: "  ")
                .trimmingCharacters(in: .whitespaces)
        }
        var out = [line(headers)] + body.map(line)
        for n in networks {
            let k = RunComparison.key(n.dataset, n.model)
            out.append("baseline \(n.dataset) \(n.model): \(nameA) \(RunComparison.baseline(baselinesA[k])), \(nameB) \(RunComparison.baseline(baselinesB[k]))")
        }
        out.append("\(lines.count) units in both; \(differenceText)"
                   + (onlyA + onlyB > 0 ? "; \(onlyA) only in \(nameA), \(onlyB) only in \(nameB)" : ""))
        return out
    }

    /// The same as a self-contained page (no scripts, nothing fetched): baselines, the scatter
    /// plot and the table; the plot is also returned as a standalone figure.
    public var html: String { output.html }

    /// The page, and its figures (SVG, PDF) and tables (CSV, LaTeX) as named files
    /// ("scatter.svg", ...), drawn once.
    public var output: (html: String, files: [(name: String, data: Data)]) {
        let d = document
        func name(_ n: String, _ ext: String) -> String { "\(n.replacingOccurrences(of: "compare-", with: "")).\(ext)" }
        let files = d.figures.map { (name($0.name, "svg"), Data($0.svg.utf8)) } + d.pdfs.map { (name($0.name, "pdf"), $0.pdf) }
            + d.tables.flatMap { [(name($0.name, "csv"), Data($0.csv.utf8)), (name($0.name, "tex"), Data($0.latex.utf8))] }
        return (d.text, files)
    }

    var document: Markup {
        let css = ReportPage.css + """
        td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; } tr.differ td { background: #fff4e5; }
        tr.contradict td { background: #fde0dd; }
        td.harmful { color: #b2182b; } td.trivial { color: #1a7f37; } td.helpful { color: #2166ac; }
        """
        return Markup.document(title: "layersweep · \(nameA) vs \(nameB)", css: css) { m in
            m.element("h1", text: "\(nameA) vs \(nameB)")
            m.element("p", ["class": "answer"], text: "\(lines.count) units and masks in both runs; \(differenceText).")
            m.table(named: "compare-baselines", attributes: ["class": "facts"], header: ["dataset", "model", "baseline \(nameA)", "baseline \(nameB)"],
                    rows: networks.map { n in
                        let k = RunComparison.key(n.dataset, n.model)
                        return [n.dataset, n.model, RunComparison.baseline(baselinesA[k]), RunComparison.baseline(baselinesB[k])]
                    })
            m.element("p", ["class": "note"], text: "Δ test accuracy per unit and mask, in network order: mean over the trained networks, its interval (over the seeds and their test images, or over one network's test images), number of networks and the call (trivial, harmful, helpful or undecided). \(nameA): \(statisticsA.describe(tests: lines.count)). \(nameB): \(statisticsB.describe(tests: lines.count)). Highlighted rows: the two runs call the unit differently (red: contradicting calls; orange: a call made in one run only).")
            m.element("figure") { m in m.figure(named: "compare-scatter") { scatter(into: &$0) } }
            m.element("table") { m in
                m.element("tr") { m in for h in ["dataset", "model", "unit", "mask", nameA, nameB] { m.element("th", text: h) } }
                for l in lines {
                    m.element("tr", l.callsContradict ? ["class": "contradict"] : l.callsDiffer ? ["class": "differ"] : [:]) { m in
                        for t in [l.dataset, l.model, l.layer, l.mask] { m.element("td", text: t) }
                        m.element("td", ["class": "num " + l.a.call.rawValue], text: RunComparison.cell(l.a))
                        m.element("td", ["class": "num " + l.b.call.rawValue], text: RunComparison.cell(l.b))
                    }
                }
            }
        }
    }

    /// Δ in run A (x) against Δ in run B (y), each with its interval as a whisker, on the
    /// same −1…+1 axes, the diagonal where both runs agree; a point whose calls differ is drawn
    /// hollow and orange.
    func scatter(into m: inout Markup) {
        let (size, left, top) = (420.0, 62.0, 28.0)
        let deltas = lines.flatMap { [$0.a.deltaMean, $0.b.deltaMean] }
        let span = ColorScale.niceLimit(max(deltas.map(abs).max() ?? 0.01, 0.01) * 1.05)
        let (lo, hi) = (-span, min(span, 1))
        func p(_ v: Double) -> Double { (max(lo, min(hi, v)) - lo) / (hi - lo) * size }
        let c = Format.coordinate
        let (width, height) = (left + size + 20, top + size + 50)
        m.element("svg", ["xmlns": "http://www.w3.org/2000/svg", "class": "chart", "width": c(width), "height": c(height),
                          "viewBox": "0 0 \(c(width)) \(c(height))", "role": "img", "aria-label": "Δ in \(nameA) against Δ in \(nameB)"]) { m in
            m.element("style", text: FigureStyle.css)
            m.element("text", ["x": c(left), "y": "16", "class": "colhead"], text: "Δ test accuracy: \(nameA) (x) vs \(nameB) (y)")
            m.empty("rect", ["x": c(left), "y": c(top), "width": c(size), "height": c(size), "fill": "none", "class": "axisline"])
            for t in [lo, lo / 2, 0, hi / 2, hi] {
                m.empty("line", ["x1": c(left + p(t)), "x2": c(left + p(t)), "y1": c(top), "y2": c(top + size), "stroke": "#eeeeee"])
                m.empty("line", ["x1": c(left), "x2": c(left + size), "y1": c(top + size - p(t)), "y2": c(top + size - p(t)), "stroke": "#eeeeee"])
                m.element("text", ["x": c(left + p(t)), "y": c(top + size + 15), "text-anchor": "middle", "class": "tick"], text: Format.signed(t, 2))
                m.element("text", ["x": c(left - 4), "y": c(top + size - p(t) + 4), "text-anchor": "end", "class": "tick"], text: Format.signed(t, 2))
            }
            m.empty("line", ["x1": c(left), "y1": c(top + size), "x2": c(left + size), "y2": c(top), "stroke": "#777777", "stroke-dasharray": "4 3"])
            m.element("text", ["x": c(left + size / 2), "y": c(top + size + 34), "text-anchor": "middle", "class": "axis"], text: "Δ in \(nameA)")
            m.element("text", ["x": "14", "y": c(top + size / 2), "text-anchor": "middle", "class": "axis",
                               "transform": "rotate(-90 14 \(c(top + size / 2)))"], text: "Δ in \(nameB)")
            for l in lines {
                let (x, y) = (left + p(l.a.deltaMean), top + size - p(l.b.deltaMean))
                let color = l.callsDiffer ? "#e66101" : "#2166ac"
                if let low = l.a.deltaLow, let high = l.a.deltaHigh {
                    m.empty("line", ["x1": c(left + p(low)), "x2": c(left + p(high)), "y1": c(y), "y2": c(y), "stroke": color, "stroke-opacity": "0.45"])
                }
                if let low = l.b.deltaLow, let high = l.b.deltaHigh {
                    m.empty("line", ["x1": c(x), "x2": c(x), "y1": c(top + size - p(low)), "y2": c(top + size - p(high)), "stroke": color, "stroke-opacity": "0.45"])
                }
                m.element("circle", ["cx": c(x), "cy": c(y), "r": "3.5", "fill": l.callsDiffer ? "#ffffff" : color, "stroke": color, "class": "point"]) { m in
                    m.element("title", text: "\(l.model) \(l.layer) \(l.mask): \(nameA) \(RunComparison.cell(l.a)); \(nameB) \(RunComparison.cell(l.b))")
                }
            }
        }
    }
}

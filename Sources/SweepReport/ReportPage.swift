import Foundation
import Procedures
import Rendering
import SweepCore
import SweepFile
import SweepRecords
import SweepStore

/// report.html: one self-contained XHTML page (inline CSS and SVG, no scripts, nothing fetched)
/// that answers the sweep's question and shows how the run went.
public enum ReportPage {
    public static func html(_ input: ReportInput) -> String { document(input).text + "\n" }

    /// The page, with the figures and tables drawn on it.
    static func document(_ input: ReportInput) -> Markup {
        let spec = input.plan.spec
        return Markup.document(title: "layersweep · \(spec.name)", css: css) { m in
            m.element("h1", text: "Sweep \(spec.name)")
            if !input.complete {
                m.element("p", ["class": "partial"],
                          text: "Partial report: \(input.rows.count) of \(input.plan.tasks.count) tasks have finished (the sweep is running or was interrupted; `sweep run --resume` continues it).")
            }
            // The answer first: the study's own section leads, the facts of the run follow.
            (spec.studyType as? any ReportingStudy.Type)?.report(input, into: &m)
            header(input, into: &m)
            problems(input, into: &m)
            m.element("h2", text: "Timeline")
            m.element("p", ["class": "note"], text: "Each lane is one rank (worker); each bar one task, from start to end.")
            m.element("div", ["class": "scroll"]) { m in m.figure(named: "timeline") { Timeline(records: input.records).svg(into: &$0) } }
        }
    }

    /// Writes report.html into the run directory (temp file, then rename), and its figures
    /// (SVG and PDF) and tables (CSV, LaTeX) into `figures/`, replacing the ones an earlier report wrote.
    public static func write(_ input: ReportInput, to run: RunDirectory) throws {
        let page = document(input)
        try Data((page.text + "\n").utf8).write(to: run.reportURL, options: .atomic)
        let folder = run.figuresURL
        let fm = FileManager.default
        try fm.createDirectory(at: folder, withIntermediateDirectories: true)
        var written = Set<String>()
        for f in page.figures {
            try Data(f.svg.utf8).write(to: folder.appendingPathComponent(f.name + ".svg"), options: .atomic)
            written.insert(f.name + ".svg")
        }
        for f in page.pdfs {
            try f.pdf.write(to: folder.appendingPathComponent(f.name + ".pdf"), options: .atomic)
            written.insert(f.name + ".pdf")
        }
        for t in page.tables {
            try Data(t.csv.utf8).write(to: folder.appendingPathComponent(t.name + ".csv"), options: .atomic)
            try Data(t.latex.utf8).write(to: folder.appendingPathComponent(t.name + ".tex"), options: .atomic)
            written.formUnion([t.name + ".csv", t.name + ".tex"])
        }
        for stale in (try? fm.contentsOfDirectory(atPath: folder.path)) ?? []
        where !written.contains(stale) && [".svg", ".pdf", ".csv", ".tex"].contains(where: stale.hasSuffix) {
            try? fm.removeItem(at: folder.appendingPathComponent(stale))
        }
    }

    // MARK: - Sections

    private static func header(_ input: ReportInput, into m: inout Markup) {
        let spec = input.plan.spec
        let ran = input.records.filter { $0.rank >= 0 }
        let start = ran.map(\.started).min(), end = ran.map(\.finished).max()
        let counts = Dictionary(grouping: input.rows, by: \.status.rawValue).mapValues(\.count)
        let datasets = spec.datasets.map { d in
            d.name + (d.trainLimit.map { " (train \($0)" } ?? "") + (d.testLimit.map { ", test \($0))" } ?? (d.trainLimit == nil ? "" : ")"))
        }
        var rows: [(String, String)] = [("study", spec.study.rawValue), ("datasets", datasets.joined(separator: ", ")),
                                        ("models", spec.models.joined(separator: ", "))]
        // Networks trained elsewhere have neither seeds nor a training section of ours.
        if input.plan.tasks.contains(where: \.kind.trains) {
            let t = spec.training
            rows.append(("seeds", spec.seeds.map(String.init).joined(separator: ", ")))
            rows.append(("training", "\(t.epochs) epochs, batch \(t.batchSize), SGD lr \(t.learningRate) momentum \(t.momentum) weight decay \(t.weightDecay), \(t.schedule)"))
        }
        for (model, files) in spec.checkpoints.sorted(by: { $0.key < $1.key }) { rows.append(("imported", "\(model): \(files.joined(separator: ", "))")) }
        // Which trained networks a worker trained and which the training store gave (and where they were trained).
        let stored = input.rows.filter { $0.kind == .train && $0.cached != nil }
        if !stored.isEmpty {
            let trainings = input.rows.filter { $0.kind == .train }.count
            let origins = Set(stored.compactMap(\.cached).map(StoredTraining.runOf)).sorted()
            rows.append(("training store", "\(stored.count) of \(trainings) trained networks came from the training store, trained by "
                         + origins.prefix(3).joined(separator: "; ") + (origins.count > 3 ? "; …" : "") + " (results.csv's cached column)"))
        }
        rows.append(("tasks", "\(input.rows.count) of \(input.plan.tasks.count) finished: " + counts.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")))
        rows.append(("ranks", "\(Set(ran.map(\.rank)).count) on \(input.hosts.joined(separator: ", "))"))
        rows.append(("wall time", start.flatMap { s in end.map { ProgressText.duration($0.timeIntervalSince(s)) } } ?? "—"))
        rows.append(("started", start.map { ISO8601DateFormatter().string(from: $0) } ?? "—"))
        rows.append(("program", "layersweep \(layersweepVersion)"))
        m.element("table", ["class": "facts"]) { m in
            for (k, v) in rows {
                m.element("tr") { m in
                    m.element("th", text: k)
                    m.element("td", text: v)
                }
            }
        }
    }

    private static func problems(_ input: ReportInput, into m: inout Markup) {
        let bad = input.rows.filter { $0.status != .ok }
        guard !bad.isEmpty else { return }
        m.element("h2", text: "Failed, diverged and skipped tasks (\(bad.count))")
        m.element("table", ["class": "problems"]) { m in
            m.element("tr") { m in for h in ["task", "status", "error"] { m.element("th", text: h) } }
            for r in bad.prefix(200) {
                m.element("tr") { m in
                    m.element("td", text: r.key)
                    m.element("td", text: r.status.rawValue)
                    m.element("td", text: r.error ?? "")
                }
            }
        }
    }

    /// resnet20, plain20, resnet32, plain32, ..., then everything else by name.
    public static func modelOrder(_ a: String, _ b: String) -> Bool {
        func key(_ name: String) -> (Int, Int, String) {
            for (prefix, rank) in [("resnet", 0), ("plain", 1)] where name.hasPrefix(prefix) {
                if let depth = Int(name.dropFirst(prefix.count).prefix { $0.isNumber }) { return (depth, rank, name) }
            }
            return (Int.max, 0, name)
        }
        return key(a) < key(b)
    }

    public static let css = """
    body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2em; color: #111; max-width: 1400px; }
    h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ccc; } h3 { margin-bottom: 0.3em; }
    .partial { background: #fff3cd; border: 1px solid #e0c060; padding: 0.5em 1em; }
    .note { color: #333; max-width: 60em; }
    table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
    th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
    table.facts th { background: #f4f4f4; width: 8em; }
    .row { display: flex; flex-wrap: wrap; gap: 1.5em; align-items: flex-start; }
    figure { margin: 0; } figcaption { font-weight: 600; margin-bottom: 0.3em; }
    figure, .scroll { max-width: 100%; overflow-x: auto; } svg.heatmap, svg.timeline, svg.chart { max-width: none; }
    p.answer { font-size: 1.05em; font-weight: 600; max-width: 60em; }
    table.findings, table.problems { display: block; overflow-x: auto; max-width: 100%; }
    svg text { font-family: inherit; font-size: 11px; }
    svg .colhead { font-weight: 600; font-size: 12px; } svg .rowhead { font-size: 11px; } svg .transition { font-weight: 700; }
    svg .value { font-size: 11px; } svg .tick, svg .axis { font-size: 11px; fill: #333; }
    svg.maskgrid { display: block; margin-bottom: 0.5em; } figure.masks { display: inline-block; margin-right: 1.5em; vertical-align: top; }
    tr.reusable td { background: #eef5fb; }
    svg .stage-boundary { stroke: #222; stroke-width: 1.2; } svg .axisline { stroke: #444; }
    svg .trivial-mark { fill: none; stroke: #1a7f37; stroke-width: 1.5; stroke-dasharray: 3 2; }
    @media print { body { margin: 0.5cm; } .row { display: block; } figure { page-break-inside: avoid; margin-bottom: 1em; } }
    """
}

import Foundation

/// Two zeroing runs side by side (`sweep compare RUN_A RUN_B`): the same (dataset, model, unit,
/// mask) in both, with their Δ, intervals and calls, and which calls differ. For example networks
/// trained by layersweep against imported ones, or 6 against 15 epochs.
public struct RunComparison: Sendable {
    public struct Line: Sendable, Equatable {
        public let dataset: String
        public let model: String
        public let layer: String
        public let mask: String
        public let a: UnitSummary
        public let b: UnitSummary
        public var callsDiffer: Bool { a.call != b.call }
    }

    public let nameA: String
    public let nameB: String
    public let lines: [Line]
    /// Units with results in one run only.
    public let onlyA: Int
    public let onlyB: Int

    /// The per-unit summaries of a run directory, from its results.json (written at every
    /// refresh and at the end, so a run in progress compares too).
    public static func summaries(of run: RunDirectory) throws -> [UnitSummary] {
        struct Document: Decodable {
            struct Spec: Decodable { let study: StudyName; let statistics: StatisticsSection? }
            let spec: Spec
            let rows: [ResultRow]
        }
        guard let data = FileManager.default.contents(atPath: run.resultsJSON.path) else {
            throw RunError(path: run.resultsJSON.path, message: "no results yet (is this a run directory? `sweep report` rebuilds it from the journal)")
        }
        let document: Document
        do { document = try Journal.decoder.decode(Document.self, from: data) } catch {
            throw RunError(path: run.resultsJSON.path, message: "is not a results file of layersweep (rebuild it from the journal with: sweep report \(run.url.path))")
        }
        guard document.spec.study == .zeroing else {
            throw RunError(path: run.url.path, message: "compare reads layer-zeroing runs; this one is a \(document.spec.study.rawValue) run")
        }
        let summaries = UnitSummary.summaries(document.rows, settings: document.spec.statistics ?? StatisticsSection())
        guard !summaries.isEmpty else {
            throw RunError(path: run.url.path, message: "has no mask results yet (continue it with: sweep run --resume \(run.url.path))")
        }
        return summaries
    }

    public init(_ runA: RunDirectory, _ runB: RunDirectory) throws {
        let (a, b) = (try RunComparison.summaries(of: runA), try RunComparison.summaries(of: runB))
        func key(_ u: UnitSummary) -> String { [u.dataset, u.model, u.layer, u.mask].joined(separator: "\u{1}") }
        let inB = Dictionary(b.map { (key($0), $0) }, uniquingKeysWith: { x, _ in x })
        lines = a.compactMap { u in inB[key(u)].map { Line(dataset: u.dataset, model: u.model, layer: u.layer, mask: u.mask, a: u, b: $0) } }
        onlyA = a.count - lines.count
        onlyB = b.count - lines.count
        nameA = runA.url.lastPathComponent
        nameB = runB.url.lastPathComponent
    }

    /// "−0.352 [−0.401, −0.303] n=3 harmful".
    static func cell(_ u: UnitSummary) -> String {
        var text = Format.signed(u.deltaMean, 3)
        if let low = u.deltaLow, let high = u.deltaHigh { text += " [\(Format.signed(low, 3)), \(Format.signed(high, 3))]" }
        return text + " n=\(u.seeds) \(u.call.rawValue)"
    }

    /// The terminal table, one line per unit and mask; `!` marks calls that differ.
    public var table: [String] {
        let headers = ["", "unit", "mask", nameA, nameB]
        let body = lines.map { [$0.callsDiffer ? "!" : "", "\($0.model) \($0.layer)", $0.mask, RunComparison.cell($0.a), RunComparison.cell($0.b)] }
        let widths = (0..<headers.count).map { c in ([headers] + body).map { $0[c].count }.max() ?? 0 }
        func line(_ fields: [String]) -> String {
            zip(fields, widths).map { $0.0.padding(toLength: $0.1, withPad: " ", startingAt: 0) }.joined(separator: "  ")
                .trimmingCharacters(in: .whitespaces)
        }
        var out = [line(headers)] + body.map(line)
        let differ = lines.filter(\.callsDiffer).count
        out.append("\(lines.count) units in both; \(differ) call\(differ == 1 ? "" : "s") differ (!)"
                   + (onlyA + onlyB > 0 ? "; \(onlyA) only in \(nameA), \(onlyB) only in \(nameB)" : ""))
        return out
    }

    /// The same as a self-contained page (no scripts, nothing fetched).
    public var html: String {
        let css = """
        body { font-family: system-ui, sans-serif; margin: 1.5em; } table { border-collapse: collapse; font-size: 0.9em; }
        th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; } tr.differ td { background: #fff4e5; }
        td.harmful { color: #b2182b; } td.trivial { color: #1a7f37; }
        """
        return Markup.page(title: "layersweep · \(nameA) vs \(nameB)", css: css) { m in
            m.element("h1", text: "\(nameA) vs \(nameB)")
            m.element("p", text: "Δ test accuracy per unit and mask: mean over the trained networks, its interval (over the seeds and their test images, or over one network's test images), number of networks and the call (trivial, harmful, helpful or undecided, as each run's statistics: section sets them). Highlighted rows: the two runs call the unit differently.")
            m.element("table") { m in
                m.element("tr") { m in for h in ["dataset", "model", "unit", "mask", nameA, nameB] { m.element("th", text: h) } }
                for l in lines {
                    m.element("tr", l.callsDiffer ? ["class": "differ"] : [:]) { m in
                        for t in [l.dataset, l.model, l.layer, l.mask] { m.element("td", text: t) }
                        m.element("td", ["class": l.a.call.rawValue], text: RunComparison.cell(l.a))
                        m.element("td", ["class": l.b.call.rawValue], text: RunComparison.cell(l.b))
                    }
                }
            }
        }
    }
}

import Foundation
import Procedures
import Rendering
import SweepCore
import SweepFile
import SweepRecords

/// The answer to the pruning question for one (dataset, model): accuracy and locality per
/// round for IMP and for one-shot pruning to the same sparsity, averaged over seeds.
public struct PruningCurve: Sendable {
    public struct Point: Sendable {
        public let round: Int
        public let remaining: Double
        public let accuracy: [Double]
        public let locality: [Double]
    }

    public let dataset: String
    public let model: String
    public let imp: [Point]
    public let oneShot: [Point]

    public static func compute(_ rows: [ResultRow]) -> [PruningCurve] {
        let ok = rows.succeeded.filter { $0.study == .imp }
        let groups = Dictionary(grouping: ok) { [$0.dataset, $0.model] }
        return groups.keys.sorted { $0.joined() < $1.joined() }.map { g in
            let mine = groups[g]!
            func points(_ method: String) -> [Point] {
                // Rounds 0 (dense) and 1 (one round of pruning = one-shot to 70%) belong to both curves.
                let chosen = mine.filter { $0.mask == method || ($0.pruning?.round ?? 0) <= 1 && $0.mask == "imp" }
                let byRound = Dictionary(grouping: chosen) { $0.pruning?.round ?? 0 }
                return byRound.keys.sorted().map { k in
                    let r = byRound[k]!
                    return Point(round: k, remaining: SeedStatistics(r.compactMap { $0.pruning?.remainingFraction }).mean,
                                 accuracy: r.compactMap(\.testAccuracy), locality: r.compactMap { $0.pruning?.locality })
                }
            }
            return PruningCurve(dataset: g[0], model: g[1], imp: points("imp"), oneShot: points("oneshot"))
        }
    }

    /// Terminal lines: per round, accuracy and locality of IMP next to one-shot.
    /// The finding in one sentence: accuracy and locality at the last round, IMP against one-shot.
    public var answer: String {
        guard let last = imp.last else { return "\(dataset) \(model): no pruning rounds yet." }
        let shot = oneShot.first { $0.round == last.round }
        func acc(_ p: Point?) -> String { p.map { Format.fixed(SeedStatistics($0.accuracy).mean, 4) } ?? "—" }
        func loc(_ p: Point?) -> String { p.flatMap { $0.locality.isEmpty ? nil : Format.fixed(SeedStatistics($0.locality).mean, 3) } ?? "—" }
        return "\(dataset) \(model): with \(Format.fixed(last.remaining * 100, 1))% of the weights left, IMP reaches test accuracy \(acc(last)) "
            + "(one-shot \(acc(shot))) and a first-layer locality of \(loc(last)) (one-shot \(loc(shot)); dense \(loc(imp.first)))."
    }

    public var summary: [String] {
        var lines = ["  \(dataset) \(model): round, weights left, accuracy IMP / one-shot, locality IMP / one-shot"]
        let shots = Dictionary(oneShot.map { ($0.round, $0) }, uniquingKeysWith: { a, _ in a })
        for p in imp {
            let o = shots[p.round]
            func acc(_ q: Point?) -> String { q.map { Format.fixed(SeedStatistics($0.accuracy).mean, 4) } ?? "—" }
            func loc(_ q: Point?) -> String { q.flatMap { $0.locality.isEmpty ? nil : Format.fixed(SeedStatistics($0.locality).mean, 3) } ?? "—" }
            lines.append("    round \(p.round): \(Format.fixed(p.remaining * 100, 1))%  acc \(acc(p)) / \(p.round == 0 ? "—" : acc(o))  locality \(loc(p)) / \(p.round == 0 ? "—" : loc(o))")
        }
        return lines
    }
}

/// The IMP section of report.html.
enum IterativePruningReport {
    static let definition = """
        Locality of the first layer's surviving connections: for each hidden unit, the spread of the input pixels it \
        still sees (mean squared distance from their centroid), divided by the spread expected of the same number of \
        pixels drawn at random from the pixels that any unit still sees; locality = 1 − the mean of that ratio over \
        units. 0 means as scattered as random, values towards 1 mean compact, filter-like receptive fields. Measuring \
        against the pixels still in use keeps the border pixels every unit drops from counting as locality.
        """

    static func section(_ input: ReportInput, into m: inout Markup) {
        let spec = input.plan.spec
        m.element("h2", text: "Does pruning turn the FCN into a local, CNN-like network?")
        for curve in PruningCurve.compute(input.rows) { m.element("p", ["class": "answer"], text: curve.answer) }
        m.element("p", ["class": "note"]) { m in
            m.add("Iterative magnitude pruning (IMP): train, remove the \(Format.fixed(spec.pruning.rate * 100, 0))% smallest remaining weights of each layer ")
            m.add("(the readout is never pruned), rewind the survivors to their values at step \(spec.pruning.rewindStep), retrain; repeat. ")
            m.add("One-shot: prune the dense trained network to the same per-layer sparsity at once, rewind, retrain. ")
            m.add("Points are means over seeds, whiskers ± one standard deviation; the x axis is the fraction of prunable weights left (log scale). ")
            m.add(definition)
        }
        for curve in PruningCurve.compute(input.rows) {
            m.element("h3", text: "\(curve.dataset) · \(curve.model)")
            m.element("div", ["class": "row"]) { m in
                let dense = curve.imp.first { $0.round == 0 }.map { SeedStatistics($0.accuracy).mean }
                chart(curve, title: "Test accuracy", y: "test accuracy", value: \.accuracy,
                      reference: dense.map { ($0, "dense network (round 0): \(Format.fixed($0, 4))") }, into: &m)
                // Locality on its whole meaningful scale: 0 is a random mask, 1 a single compact patch.
                let values = (curve.imp + curve.oneShot).flatMap(\.locality)
                chart(curve, title: "First-layer locality", y: "locality (0 = random, 1 = compact)", value: \.locality,
                      reference: (0, "as random"), yRange: min(-0.2, (values.min() ?? 0) - 0.05)...max(1, (values.max() ?? 0) + 0.05), into: &m)
            }
            table(curve, into: &m)
            masks(input.rows.filter { $0.dataset == curve.dataset && $0.model == curve.model }, into: &m)
        }
    }

    private static func chart(_ curve: PruningCurve, title: String, y: String, value: KeyPath<PruningCurve.Point, [Double]>,
                              reference: (Double, String)? = nil, yRange: ClosedRange<Double>? = nil, into m: inout Markup) {
        func series(_ label: String, _ points: [PruningCurve.Point], color: String, dashed: Bool) -> LineChart.Series {
            LineChart.Series(label: label, color: color, points: points.compactMap { p in
                let v = p[keyPath: value]
                guard !v.isEmpty else { return nil }
                let s = SeedStatistics(v)
                return LineChart.Point(x: p.remaining, y: s.mean, spread: s.deviation,
                                       tooltip: "\(label) round \(p.round): \(Format.fixed(p.remaining * 100, 2))% of weights left, \(y) \(s.text)")
            }, dashed: dashed)
        }
        m.figure(named: "pruning-\(title)") { m in
        LineChart(title: title, xLabel: "fraction of prunable weights left", yLabel: y,
                  series: [series("IMP (iterative)", curve.imp, color: "#2166ac", dashed: false),
                           series("one-shot", curve.oneShot, color: "#b2182b", dashed: true)],
                  logX: true, reference: reference, yRange: yRange,
                  minorXTicks: (curve.imp + curve.oneShot).map(\.remaining)).svg(into: &m)
        }
    }

    private static func table(_ curve: PruningCurve, into m: inout Markup) {
        let shots = Dictionary(curve.oneShot.map { ($0.round, $0) }, uniquingKeysWith: { a, _ in a })
        m.table(named: "pruning-\(curve.dataset)-\(curve.model)", attributes: ["class": "pruning"],
                header: ["round", "weights left", "accuracy IMP", "accuracy one-shot", "locality IMP", "locality one-shot"],
                rows: curve.imp.map { p in
                    let o = p.round == 0 ? nil : shots[p.round]
                    return [String(p.round), "\(Format.fixed(p.remaining * 100, 2))%", SeedStatistics(p.accuracy).text,
                            o.map { SeedStatistics($0.accuracy).text } ?? "—", p.locality.isEmpty ? "—" : SeedStatistics(p.locality).text,
                            o.flatMap { $0.locality.isEmpty ? nil : SeedStatistics($0.locality).text } ?? "—"]
                })
    }

    /// The most-connected first-layer masks of the first seed, for the first, middle and last
    /// IMP rounds and the last one-shot round: black pixels are inputs the unit still sees.
    private static func masks(_ rows: [ResultRow], into m: inout Markup) {
        let withImages = rows.filter { !($0.pruning?.maskImages ?? []).isEmpty && $0.status == .ok }
        guard let seed = withImages.map(\.seed).min() else { return }
        let imp = withImages.filter { $0.seed == seed && $0.mask == "imp" }.sorted { ($0.pruning?.round ?? 0) < ($1.pruning?.round ?? 0) }
        var chosen: [ResultRow] = []
        for i in Set([0, imp.count / 2, imp.count - 1]).sorted() where i >= 0 && i < imp.count { chosen.append(imp[i]) }
        if let shot = withImages.filter({ $0.seed == seed && $0.mask == "oneshot" }).max(by: { ($0.pruning?.round ?? 0) < ($1.pruning?.round ?? 0) }) {
            chosen.append(shot)
        }
        guard !chosen.isEmpty else { return }
        m.element("p", ["class": "note"], text: "Most-connected first-layer units (seed \(seed)): each square is one hidden unit's input mask; black pixels are the inputs it still sees.")
        for row in chosen {
            m.element("figure", ["class": "masks"]) { m in
                m.element("figcaption", text: "\(row.mask == "imp" ? "IMP" : "one-shot") round \(row.pruning?.round ?? 0) · \(Format.fixed((row.pruning?.remainingFraction ?? 0) * 100, 2))% of weights left")
                grid(row.pruning?.maskImages ?? [], into: &m)
            }
        }
    }

    private static func grid(_ images: [MaskImage], into m: inout Markup) {
        guard let first = images.first else { return }
        let scale = 2.0, gap = 6.0, perRow = 8
        let (w, h) = (Double(first.width) * scale, Double(first.height) * scale)
        let rows = (images.count + perRow - 1) / perRow
        let width = Double(min(images.count, perRow)) * (w + gap), height = Double(rows) * (h + gap + 10)
        let c = Format.coordinate
        m.element("svg", ["xmlns": "http://www.w3.org/2000/svg", "class": "maskgrid", "width": c(width), "height": c(height),
                          "viewBox": "0 0 \(c(width)) \(c(height))", "role": "img", "aria-label": "first-layer masks"]) { m in
            for (i, image) in images.enumerated() {
                let (ox, oy) = (Double(i % perRow) * (w + gap), Double(i / perRow) * (h + gap + 10))
                m.element("g", ["class": "mask", "transform": "translate(\(c(ox)) \(c(oy)))"]) { m in
                    m.element("title", text: "unit \(image.unit): \(image.surviving) of \(image.width * image.height) pixels")
                    m.empty("rect", ["x": "0", "y": "0", "width": c(w), "height": c(h), "fill": "#ffffff", "stroke": "#999999", "stroke-width": "0.5"])
                    // One rectangle per horizontal run of surviving pixels keeps the page small.
                    var path = ""
                    let bits = image.bitmap
                    for y in 0..<image.height {
                        var x = 0
                        while x < image.width {
                            guard bits[y * image.width + x] else { x += 1; continue }
                            let start = x
                            while x < image.width && bits[y * image.width + x] { x += 1 }
                            path += "M\(Int(Double(start) * scale)) \(Int(Double(y) * scale))h\(Int(Double(x - start) * scale))v\(Int(scale))h-\(Int(Double(x - start) * scale))z"
                        }
                    }
                    if !path.isEmpty { m.empty("path", ["d": path, "fill": "#111111"]) }
                    m.element("text", ["x": "0", "y": c(h + 9), "class": "tick"], text: "\(image.surviving) px")
                }
            }
        }
    }
}

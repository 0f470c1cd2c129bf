import Foundation
import Models
import PairedStatistics
import Procedures
import Rendering
import SweepFile
import SweepPlan

/// One row of results.csv / results.json.
///
/// `mask` names the variant of the point: the zeroing mask, the reuse mode (frozen | finetuned),
/// the pruning method (imp | oneshot) or the distillation loss (logits | labels).
public struct ResultRow: Codable, Sendable {
    public var key: String
    public var study: StudyName
    public var kind: TaskKind
    public var dataset: String
    /// Reuse: the source dataset; distillation: the teacher model.
    public var source: String?
    public var model: String
    public var seed: Int
    public var layer: String
    /// The unit's position in network order (0 = the first layer), for sorting and plotting.
    public var unitIndex: Int?
    public var mask: String
    public var status: TaskStatus
    public var testAccuracy: Double?
    public var testLoss: Double?
    /// The reference's test accuracy: the unmasked network (zeroing), the scratch-trained
    /// target network (reuse), the dense network (IMP), the teacher ensemble (distillation).
    public var baselineAccuracy: Double?
    /// testAccuracy − baselineAccuracy: negative when the variant is worse than its reference.
    public var deltaAccuracy: Double?
    public var paramsMasked: Int?
    /// A compared variant (a mask, a pruned layer): the interval of this network's Δ on its
    /// paired test images, and the exact McNemar p-value of "the change changes nothing".
    public var deltaLow: Double?
    public var deltaHigh: Double?
    public var mcnemarP: Double?
    /// Of the paired test images: those the unmasked network got right and the masked one
    /// wrong, the reverse, and all of them (what the intervals over seeds are built from).
    public var imagesWorse: Int?
    public var imagesBetter: Int?
    public var testImages: Int?
    public var error: String?
    /// Content hash of the network the row measured (`checkpoints/<hash>.safetensors`).
    public var checkpoint: String?
    /// Where the training store's copy of this network was trained, when the store served it.
    public var cached: String?
    public var seconds: Double
    public var rank: Int
    public var host: String
    /// The study's own fields of the row (a round and its remaining fraction, a sparsity, a
    /// kernel RMSE ...), written as fields of the row.
    public var payload: (any TaskPayload)?

    enum CodingKeys: String, CodingKey {
        case key, study, kind, dataset, source, model, seed, layer, mask, status
        case error, cached, seconds, rank, host
        case testAccuracy = "test_accuracy", testLoss = "test_loss", baselineAccuracy = "baseline_accuracy"
        case deltaAccuracy = "delta_accuracy", paramsMasked = "params_masked"
        case deltaLow = "delta_low", deltaHigh = "delta_high", mcnemarP = "mcnemar_p", unitIndex = "unit_index", checkpoint
        case imagesWorse = "images_worse", imagesBetter = "images_better", testImages = "test_images"
    }

    /// Column names and values of results.csv for `study`: the point, the study's own columns
    /// where it places them, the shared measurements, and the run-dependent columns (seconds,
    /// rank, host) last so two runs diff cleanly.
    static func csvColumns(for study: any StudyRecords.Type, rows: [ResultRow]) -> [ResultColumn] {
        let own = study.columns(rows)
        let head = [ResultColumn("key", \.key), ResultColumn("study", \.study.rawValue), ResultColumn("kind", \.kind.rawValue), ResultColumn("dataset", \.dataset)]
        let point = [ResultColumn("model", \.model), ResultColumn("seed") { String($0.seed) }, ResultColumn("layer", \.layer),
                     ResultColumn("mask", \.mask)]
        let metrics = [ResultColumn("status", \.status.rawValue), .number("test_accuracy", \.testAccuracy), .number("test_loss", \.testLoss),
                       .number("baseline_accuracy", \.baselineAccuracy), .number("delta_accuracy", \.deltaAccuracy)]
        let tail = [ResultColumn("error") { $0.error ?? "" }, ResultColumn("cached") { $0.cached ?? "" }, ResultColumn("seconds") { FixedText.of($0.seconds, places: 3) },
                    ResultColumn("rank") { String($0.rank) }, ResultColumn("host", \.host)]
        return head + own.afterDataset + point + own.afterMask + metrics + own.afterMetrics + tail
    }
}

extension ResultRow {
    /// This network's Δ as an estimate on its paired test images: from the image counts, or,
    /// in results written before they were, from the row's own 95% interval.
    public var networkEstimate: DeltaEstimate? {
        if let w = imagesWorse, let b = imagesBetter, let n = testImages { return Statistics.network(worse: w, better: b, count: n) }
        guard let delta = deltaAccuracy, let low = deltaLow, let high = deltaHigh, high >= low, delta.isFinite, high.isFinite, low.isFinite else { return nil }
        let se = (high - low) / (2 * 1.959964)
        return DeltaEstimate(delta: delta, center: (low + high) / 2, variance: se * se, degreesOfFreedom: .infinity, networks: 1, sources: .testImages)
    }
}

/// Numbers as results files print them: 7 significant digits, so that a difference of two
/// accuracies reads -0.689, not -0.6890000000000001 (float32 results carry no more).
public func significant(_ v: Double?) -> Double? {
    guard let v, v.isFinite else { return v }
    return Double(String(format: "%.7g", v)) ?? v
}

extension ResultRow {
    /// The row with every measured number at 7 significant digits.
    func rounded() -> ResultRow {
        var r = self
        for path in [\ResultRow.testAccuracy, \.testLoss, \.baselineAccuracy, \.deltaAccuracy, \.deltaLow, \.deltaHigh, \.mcnemarP] {
            r[keyPath: path] = significant(r[keyPath: path])
        }
        r.payload = r.payload?.rounded()
        return r
    }
}

/// A row as results.json and results.jsonl write it: the shared fields and, in the same
/// object, its study's own (the task's payload).
struct RowJSON: Encodable {
    let row: ResultRow
    init(_ row: ResultRow) { self.row = row }

    func encode(to encoder: Encoder) throws {
        try row.encode(to: encoder)
        try row.payload?.encode(to: encoder)
    }
}

/// Builds result rows from journal records and writes results.csv and results.json.
public enum ResultTable {
    /// One row per journaled task of `plan`, sorted by key, with reference accuracies joined in.
    public static func rows(plan: Plan, records: [TaskRecord]) -> [ResultRow] {
        let latest = Dictionary(records.map { ($0.key, $0) }, uniquingKeysWith: { _, b in b })
        let study = plan.spec.recordedStudy
        return latest.values.compactMap { record -> ResultRow? in
            guard let task = plan[record.key] else { return nil }
            let o = record.outcome
            let baseline = task.baselineKey.flatMap { latest[$0]?.outcome.testAccuracy }
            let delta = task.kind.compared ? o.testAccuracy.flatMap { a in baseline.map { a - $0 } } : nil
            var row = ResultRow(key: task.key, study: plan.spec.study, kind: task.kind, dataset: task.dataset,
                                source: task.checkpointFile, model: task.model, seed: task.seedIndex, layer: task.unit ?? "",
                                mask: task.mask?.rawValue ?? (task.kind == .baseline ? "none" : ""),
                                status: o.status, testAccuracy: o.testAccuracy, testLoss: o.testLoss,
                                baselineAccuracy: baseline, deltaAccuracy: delta, paramsMasked: o.paramsMasked,
                                error: o.error, seconds: o.seconds, rank: record.rank, host: record.host)
            study.describe(&row, task: task, outcome: o, plan: plan)
            row.checkpoint = o.checkpoint ?? task.dependencies.first.flatMap { latest[$0]?.outcome.checkpoint }
            row.cached = o.cached
            if let d = o.discordant, d.count == 3, o.status == .ok {
                (row.deltaLow, row.deltaHigh) = Statistics.pairedInterval(worse: d[0], better: d[1], count: d[2])
                row.mcnemarP = Statistics.mcnemar(worse: d[0], better: d[1])
                (row.imagesWorse, row.imagesBetter, row.testImages) = (d[0], d[1], d[2])
            }
            return row.rounded()
        }.sorted { $0.key < $1.key }
    }

    /// RFC 4180 CSV, every field through `SafeText.csvField` (no cell a spreadsheet would run).
    public static func csv(_ rows: [ResultRow], study: any StudyRecords.Type) -> String {
        let columns = ResultRow.csvColumns(for: study, rows: rows)
        var out = columns.map(\.name).joined(separator: ",") + "\n"
        for row in rows { out += columns.map { SafeText.csvField($0.value(row)) }.joined(separator: ",") + "\n" }
        return out
    }

    /// The whole run as JSON: program, version, spec, times, ranks, hosts and rows.
    public struct Document: Encodable, Sendable {
        public var program = "layersweep"
        public var version: String
        public var spec: SweepSpec
        public var started: Date
        public var finished: Date
        public var complete: Bool
        public var ranks: Int
        public var hosts: [String]
        public var counts: [String: Int]
        public var rows: [ResultRow]
        /// One line per (dataset, model, unit, mask) over the trained networks, for a study that
        /// summarises its units (`StudyRecords.unitSummaries`).
        public var units: [UnitSummary]

        enum CodingKeys: String, CodingKey { case program, version, spec, started, finished, complete, ranks, hosts, counts, rows, units }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(program, forKey: .program)
            try c.encode(version, forKey: .version)
            try c.encode(spec, forKey: .spec)
            try c.encode(started, forKey: .started)
            try c.encode(finished, forKey: .finished)
            try c.encode(complete, forKey: .complete)
            try c.encode(ranks, forKey: .ranks)
            try c.encode(hosts, forKey: .hosts)
            try c.encode(counts, forKey: .counts)
            try c.encode(rows.map(RowJSON.init), forKey: .rows)
            try c.encode(units, forKey: .units)
        }

        public init(version: String, spec: SweepSpec, started: Date, finished: Date, complete: Bool, ranks: Int,
                    hosts: [String], counts: [String: Int], rows: [ResultRow]) {
            self.units = spec.recordedStudy.unitSummaries(rows, statistics: spec.statistics)
            self.version = version
            self.spec = spec
            self.started = started
            self.finished = finished
            self.complete = complete
            self.ranks = ranks
            self.hosts = hosts
            self.counts = counts
            self.rows = rows
        }
    }

    /// results.jsonl: one compact JSON object per row.
    public static func jsonLines(_ rows: [ResultRow]) throws -> Data {
        let e = SweepJSON.makeEncoder()
        var out = Data()
        for row in rows {
            out.append(try e.encode(RowJSON(row)))
            out.append(0x0A)
        }
        return out
    }

    public static func json(_ document: Document) throws -> Data {
        let e = SweepJSON.makeEncoder()
        e.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return try e.encode(document)
    }
}

/// A unit's position in its model's network order, for the `unit_index` column (the unit lists
/// are built once per model).
public enum UnitOrder {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var byModel: [String: [String: Int]] = [:]

    public static func index(of unit: String?, in model: String, spec: SweepSpec) -> Int? {
        guard let unit else { return nil }
        if let graph = spec.graphs[model] { return graph.units.firstIndex { $0.name == unit } }
        lock.lock()
        defer { lock.unlock() }
        if byModel[model] == nil {
            let units = (try? LayerMatcher.units(of: model)) ?? []
            byModel[model] = Dictionary(units.enumerated().map { ($0.element.name, $0.offset) }, uniquingKeysWith: { a, _ in a })
        }
        return byModel[model]?[unit]
    }
}

extension ResultRow: Equatable {
    /// Rows are equal when every field is (the study's payload included); a NaN equals a NaN,
    /// as both write the same JSON.
    public static func == (a: ResultRow, b: ResultRow) -> Bool {
        func same(_ x: Double?, _ y: Double?) -> Bool { x == y || (x?.isNaN == true && y?.isNaN == true) }
        let payloads = a.payload.map { p in b.payload.map { p.isEqual(to: $0) } ?? false } ?? (b.payload == nil)
        return a.key == b.key && a.study == b.study && a.kind == b.kind && a.dataset == b.dataset && a.source == b.source
            && a.model == b.model && a.seed == b.seed && a.layer == b.layer && a.unitIndex == b.unitIndex && a.mask == b.mask
            && a.status == b.status && same(a.testAccuracy, b.testAccuracy) && same(a.testLoss, b.testLoss)
            && same(a.baselineAccuracy, b.baselineAccuracy) && same(a.deltaAccuracy, b.deltaAccuracy) && a.paramsMasked == b.paramsMasked
            && same(a.deltaLow, b.deltaLow) && same(a.deltaHigh, b.deltaHigh) && same(a.mcnemarP, b.mcnemarP)
            && a.imagesWorse == b.imagesWorse && a.imagesBetter == b.imagesBetter && a.testImages == b.testImages
            && a.error == b.error && a.checkpoint == b.checkpoint && a.cached == b.cached && same(a.seconds, b.seconds)
            && a.rank == b.rank && a.host == b.host && payloads
    }
}

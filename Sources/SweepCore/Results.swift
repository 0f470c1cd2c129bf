import Foundation
import Models
import Studies

/// One row of results.csv / results.json.
///
/// `mask` names the variant of the point: the zeroing mask, the reuse mode (frozen | finetuned),
/// the pruning method (imp | oneshot) or the distillation loss (logits | labels).
public struct ResultRow: Codable, Equatable, Sendable {
    public var key: String
    public var study: String
    public var kind: String
    public var dataset: String
    /// Reuse: the source dataset; distillation: the teacher model.
    public var source: String?
    public var model: String
    public var seed: Int
    public var layer: String
    /// The unit's position in network order (0 = the first layer), for sorting and plotting.
    public var unitIndex: Int?
    public var mask: String
    /// IMP: the pruning round (0 = dense).
    public var round: Int?
    public var status: String
    public var testAccuracy: Double?
    public var testLoss: Double?
    /// The reference's test accuracy: the unmasked network (zeroing), the scratch-trained
    /// target network (reuse), the dense network (IMP), the teacher ensemble (distillation).
    public var baselineAccuracy: Double?
    /// testAccuracy − baselineAccuracy: negative when the variant is worse than its reference.
    public var deltaAccuracy: Double?
    public var paramsMasked: Int?
    /// Zeroing: the 95% interval of this network's Δ on its paired test images, and the exact
    /// McNemar p-value of "the mask changes nothing".
    public var deltaLow: Double?
    public var deltaHigh: Double?
    public var mcnemarP: Double?
    public var remainingFraction: Double?
    public var layerRemaining: [String: Double]?
    public var locality: Double?
    public var rmse: Double?
    public var parameters: Int?
    public var budget: Int?
    public var convLayers: Int?
    /// IMP: the most-connected first-layer masks (results.json only).
    public var maskImages: [MaskImage]?
    public var error: String?
    /// Content hash of the network the row measured (`checkpoints/<hash>.safetensors`).
    public var checkpoint: String?
    public var seconds: Double
    public var rank: Int
    public var host: String

    enum CodingKeys: String, CodingKey {
        case key, study, kind, dataset, source, model, seed, layer, mask, round, status, locality, rmse, parameters, budget
        case error, seconds, rank, host
        case testAccuracy = "test_accuracy", testLoss = "test_loss", baselineAccuracy = "baseline_accuracy"
        case deltaAccuracy = "delta_accuracy", paramsMasked = "params_masked", remainingFraction = "remaining_fraction"
        case deltaLow = "delta_low", deltaHigh = "delta_high", mcnemarP = "mcnemar_p", unitIndex = "unit_index", checkpoint
        case layerRemaining = "layer_remaining", convLayers = "conv_layers", maskImages = "mask_images"
    }

    /// Column names and values of results.csv for `study`; the run-dependent columns (seconds,
    /// rank, host) come last so two runs diff cleanly.
    static func csvColumns(for study: SweepSpec.Study) -> [(String, (ResultRow) -> String)] {
        func number(_ v: Double?) -> String { v.map { "\($0)" } ?? "" }
        func integer(_ v: Int?) -> String { v.map(String.init) ?? "" }
        let head: [(String, (ResultRow) -> String)] = [("key", \.key), ("study", \.study), ("kind", \.kind), ("dataset", \.dataset)]
        let source: [(String, (ResultRow) -> String)] = study == .reuse || study == .distill ? [("source", { $0.source ?? "" })] : []
        let point: [(String, (ResultRow) -> String)] = [("model", \.model), ("seed", { String($0.seed) }), ("layer", \.layer), ("mask", \.mask)]
        let round: [(String, (ResultRow) -> String)] = study == .imp ? [("round", { integer($0.round) })] : []
        let metrics: [(String, (ResultRow) -> String)] = [
            ("status", \.status), ("test_accuracy", { number($0.testAccuracy) }), ("test_loss", { number($0.testLoss) }),
            ("baseline_accuracy", { number($0.baselineAccuracy) }), ("delta_accuracy", { number($0.deltaAccuracy) }),
        ]
        let extra: [(String, (ResultRow) -> String)]
        switch study {
        case .zeroing, .noop: extra = [("delta_low", { number($0.deltaLow) }), ("delta_high", { number($0.deltaHigh) }),
                                       ("mcnemar_p", { number($0.mcnemarP) }), ("params_masked", { integer($0.paramsMasked) }),
                                       ("unit_index", { integer($0.unitIndex) }), ("checkpoint", { $0.checkpoint ?? "" })]
        case .imp:
            // One remaining_<layer> column per layer: `ResultTable.csv` adds them from the rows.
            extra = [("remaining_fraction", { number($0.remainingFraction) }), ("locality", { number($0.locality) })]
        case .reuse: extra = [("rmse", { number($0.rmse) }), ("parameters", { integer($0.parameters) })]
        case .distill: extra = [("conv_layers", { integer($0.convLayers) }), ("budget", { integer($0.budget) }),
                                ("parameters", { integer($0.parameters) })]
        }
        let tail: [(String, (ResultRow) -> String)] = [("error", { $0.error ?? "" }), ("seconds", { String(format: "%.3f", $0.seconds) }),
                                                        ("rank", { String($0.rank) }), ("host", \.host)]
        return head + source + point + round + metrics + extra + tail
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
        for path in [\ResultRow.testAccuracy, \.testLoss, \.baselineAccuracy, \.deltaAccuracy, \.deltaLow, \.deltaHigh, \.mcnemarP,
                     \.remainingFraction, \.locality, \.rmse] {
            r[keyPath: path] = significant(r[keyPath: path])
        }
        r.layerRemaining = r.layerRemaining?.mapValues { significant($0) ?? $0 }
        return r
    }
}

/// Builds result rows from journal records and writes results.csv and results.json.
public enum ResultTable {
    /// One row per journaled task of `plan`, sorted by key, with reference accuracies joined in.
    public static func rows(plan: Plan, records: [TaskRecord]) -> [ResultRow] {
        let latest = Dictionary(records.map { ($0.key, $0) }, uniquingKeysWith: { _, b in b })
        var unitOrder: [String: [String: Int]] = [:]
        func index(of unit: String?, in model: String) -> Int? {
            guard let unit else { return nil }
            if unitOrder[model] == nil {
                let units = (try? LayerMatcher.units(of: model)) ?? []
                unitOrder[model] = Dictionary(units.enumerated().map { ($0.element.name, $0.offset) }, uniquingKeysWith: { a, _ in a })
            }
            return unitOrder[model]?[unit]
        }
        return latest.values.compactMap { record -> ResultRow? in
            guard let task = plan[record.key] else { return nil }
            let o = record.outcome
            let baseline = task.baselineKey.flatMap { latest[$0]?.outcome.testAccuracy }
            let compared = ![TaskKind.train, .load, .baseline, .logits, .noop].contains(task.kind)
            let delta = compared ? o.testAccuracy.flatMap { a in baseline.map { a - $0 } } : nil
            var row = ResultRow(key: task.key, study: plan.spec.study.rawValue, kind: task.kind.rawValue, dataset: task.dataset,
                                source: task.source, model: task.model, seed: task.seedIndex, layer: task.unit ?? "",
                                mask: task.mask?.rawValue ?? task.variant ?? (task.kind == .baseline ? "none" : ""),
                                round: task.round, status: o.status.rawValue, testAccuracy: o.testAccuracy, testLoss: o.testLoss,
                                baselineAccuracy: baseline, deltaAccuracy: delta, paramsMasked: o.paramsMasked,
                                remainingFraction: o.remainingFraction, layerRemaining: o.layerRemaining, locality: o.locality,
                                rmse: o.rmse, parameters: o.parameters, budget: task.budget, convLayers: nil, maskImages: o.maskImages,
                                error: o.error, seconds: o.seconds, rank: record.rank, host: record.host)
            if task.kind == .student, let spec = try? ModelSpec.parse(task.model), case let .student(conv, _) = spec { row.convLayers = conv }
            if task.kind == .mask { row.unitIndex = index(of: task.unit, in: task.model) }
            row.checkpoint = o.checkpoint ?? task.dependencies.first.flatMap { latest[$0]?.outcome.checkpoint }
            if let d = o.discordant, d.count == 3, o.status == .ok {
                (row.deltaLow, row.deltaHigh) = Statistics.pairedInterval(worse: d[0], better: d[1], count: d[2])
                row.mcnemarP = Statistics.mcnemar(worse: d[0], better: d[1])
            }
            return row.rounded()
        }.sorted { $0.key < $1.key }
    }

    /// An RFC 4180 field: quoted when it holds commas, quotes or line breaks, quotes doubled.
    static func quote(_ field: String) -> String {
        guard field.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return field }
        return "\"" + field.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// RFC 4180 CSV: fields with commas, quotes or line breaks are quoted, quotes doubled.
    public static func csv(_ rows: [ResultRow], study: SweepSpec.Study) -> String {
        var columns = ResultRow.csvColumns(for: study)
        // IMP: each layer's remaining fraction in a column of its own, after remaining_fraction.
        let layers = Set(rows.flatMap { $0.layerRemaining?.keys.map { $0 } ?? [] }).sorted()
        if let at = columns.firstIndex(where: { $0.0 == "remaining_fraction" }) {
            columns.insert(contentsOf: layers.map { layer in
                ("remaining_\(layer)", { (r: ResultRow) in r.layerRemaining?[layer].map { "\($0)" } ?? "" })
            }, at: at + 1)
        }
        var out = columns.map(\.0).joined(separator: ",") + "\n"
        for row in rows { out += columns.map { quote($0.1(row)) }.joined(separator: ",") + "\n" }
        return out
    }

    /// The whole run as JSON: program, version, spec, times, ranks, hosts and rows.
    public struct Document: Codable, Sendable {
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
        /// Zeroing: one line per (dataset, model, unit, mask) over the trained networks.
        public var units: [UnitSummary]

        public init(version: String, spec: SweepSpec, started: Date, finished: Date, complete: Bool, ranks: Int,
                    hosts: [String], counts: [String: Int], rows: [ResultRow]) {
            self.units = spec.study == .zeroing ? UnitSummary.summaries(rows) : []
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
        let e = Journal.makeEncoder()
        var out = Data()
        for row in rows {
            out.append(try e.encode(row))
            out.append(0x0A)
        }
        return out
    }

    public static func json(_ document: Document) throws -> Data {
        let e = Journal.makeEncoder()
        e.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return try e.encode(document)
    }
}

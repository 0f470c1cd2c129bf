import Foundation

/// One row of results.csv / results.json.
public struct ResultRow: Codable, Equatable, Sendable {
    public var key: String
    public var study: String
    public var kind: String
    public var dataset: String
    public var model: String
    public var seed: Int
    public var layer: String
    public var mask: String
    public var status: String
    public var testAccuracy: Double?
    public var testLoss: Double?
    /// The unmasked network's test accuracy (from its baseline task).
    public var baselineAccuracy: Double?
    /// testAccuracy − baselineAccuracy: negative when the mask hurts.
    public var deltaAccuracy: Double?
    public var paramsMasked: Int?
    public var error: String?
    public var seconds: Double
    public var rank: Int
    public var host: String

    /// Column order of results.csv: the run-dependent columns (seconds, rank, host) come last.
    public static let columns = ["key", "study", "kind", "dataset", "model", "seed", "layer", "mask", "status",
                                 "test_accuracy", "test_loss", "baseline_accuracy", "delta_accuracy", "params_masked",
                                 "error", "seconds", "rank", "host"]

    enum CodingKeys: String, CodingKey {
        case key, study, kind, dataset, model, seed, layer, mask, status, error, seconds, rank, host
        case testAccuracy = "test_accuracy", testLoss = "test_loss", baselineAccuracy = "baseline_accuracy"
        case deltaAccuracy = "delta_accuracy", paramsMasked = "params_masked"
    }

    var csvFields: [String] {
        func number(_ v: Double?) -> String { v.map { "\($0)" } ?? "" }
        return [key, study, kind, dataset, model, String(seed), layer, mask, status, number(testAccuracy), number(testLoss),
                number(baselineAccuracy), number(deltaAccuracy), paramsMasked.map(String.init) ?? "", error ?? "",
                String(format: "%.3f", seconds), String(rank), host]
    }
}

/// Builds result rows from journal records and writes results.csv and results.json.
public enum ResultTable {
    /// One row per journaled task of `plan`, sorted by key, with baselines joined in.
    public static func rows(plan: Plan, records: [TaskRecord]) -> [ResultRow] {
        let latest = Dictionary(records.map { ($0.key, $0) }, uniquingKeysWith: { _, b in b })
        var baselines: [String: Double] = [:]
        for r in latest.values where r.kind == .baseline {
            if let t = plan[r.key], let acc = r.outcome.testAccuracy { baselines[t.trainKey] = acc }
        }
        return latest.values.compactMap { record -> ResultRow? in
            guard let task = plan[record.key] else { return nil }
            let o = record.outcome
            let baseline = task.kind == .noop ? nil : baselines[task.trainKey]
            let delta = (o.testAccuracy != nil && baseline != nil && task.kind == .mask) ? o.testAccuracy! - baseline! : nil
            return ResultRow(key: task.key, study: plan.spec.study.rawValue, kind: task.kind.rawValue, dataset: task.dataset,
                             model: task.model, seed: task.seedIndex, layer: task.unit ?? "",
                             mask: task.mask?.rawValue ?? (task.kind == .baseline ? "none" : ""), status: o.status.rawValue,
                             testAccuracy: o.testAccuracy, testLoss: o.testLoss, baselineAccuracy: baseline, deltaAccuracy: delta,
                             paramsMasked: o.paramsMasked, error: o.error, seconds: o.seconds, rank: record.rank, host: record.host)
        }.sorted { $0.key < $1.key }
    }

    /// RFC 4180 CSV: fields with commas, quotes or line breaks are quoted, quotes doubled.
    public static func csv(_ rows: [ResultRow]) -> String {
        func quote(_ field: String) -> String {
            guard field.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return field }
            return "\"" + field.replacingOccurrences(of: "\"", with: "\"\"") + "\""
        }
        var out = ResultRow.columns.joined(separator: ",") + "\n"
        for row in rows { out += row.csvFields.map(quote).joined(separator: ",") + "\n" }
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

        public init(version: String, spec: SweepSpec, started: Date, finished: Date, complete: Bool, ranks: Int,
                    hosts: [String], counts: [String: Int], rows: [ResultRow]) {
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

    public static func json(_ document: Document) throws -> Data {
        let e = Journal.makeEncoder()
        e.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return try e.encode(document)
    }
}

import Foundation
import Models
import ONNX
import Procedures
import SweepFile
import SweepRecords

/// Imported ONNX graphs in a run directory.
extension ImportedGraphs {
    /// The summaries a run recorded when it started.
    public static func recorded(in run: RunDirectory) -> [String: GraphSummary] {
        guard let data = FileManager.default.contents(atPath: run.graphsURL.path),
              let graphs = try? JSONDecoder().decode([String: GraphSummary].self, from: data) else { return [:] }
        return graphs
    }

    /// Records the summaries of `spec` in `run` (nothing when it imports no graph).
    public static func record(_ spec: SweepSpec, in run: RunDirectory) throws {
        guard !spec.graphs.isEmpty else { return }
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        try e.encode(spec.graphs).write(to: run.graphsURL, options: .atomic)
    }
}

extension RunDirectory {
    /// The imported graphs' summaries (`ImportedGraphs`).
    public var graphsURL: URL { url.appendingPathComponent("graphs.json") }
}

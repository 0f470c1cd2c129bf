import Foundation
import Models
import ONNX
import Procedures

/// What planning needs to know of an imported ONNX graph without the file: its units (names,
/// kinds, parameters), its multiply-adds per image and each unit's share of them from the unit
/// to the end (the part of a pass a mask evaluation recomputes). Rank 0 reads the files and
/// sends the summaries to the workers with the spec; a run records them (`graphs.json`), so a
/// resume or a report plans the same tasks even if the files have moved.
public struct GraphSummary: Codable, Equatable, Sendable {
    public struct Unit: Codable, Equatable, Sendable {
        public let name: String
        public let kind: UnitKind
        public let parameters: Int
        public let suffixShare: Double

        public init(name: String, kind: UnitKind, parameters: Int, suffixShare: Double) {
            (self.name, self.kind, self.parameters, self.suffixShare) = (name, kind, parameters, suffixShare)
        }
    }

    public var units: [Unit]
    public var multiplyAdds: Double
    /// BatchNormalization nodes with constant statistics (nil: a run recorded before this was).
    public var batchNorms: Int?

    /// The summary of `program` measured on images of shape `image` (C, H, W).
    public init(_ program: ONNXProgram, image: [Int]) throws {
        let macs = try program.multiplyAdds(image: image)
        let total = max(macs.values.reduce(0, +), 1)
        multiplyAdds = total
        batchNorms = program.batchNormNodes.count
        units = program.units.map { unit in
            let first = unit.nodes.min() ?? 0
            let suffix = macs.filter { $0.key >= first }.values.reduce(0, +)
            return Unit(name: unit.name, kind: GraphMasking.kind(of: unit), parameters: unit.parameters, suffixShare: suffix / total)
        }
    }

    /// The units as a built network's (for layer selection and ordering).
    public var maskableUnits: [MaskableUnit] { units.map { MaskableUnit(name: $0.name, kind: $0.kind, parameterCount: $0.parameters) } }
}

/// Imported ONNX graphs in a sweep: models whose `checkpoints:` are `.onnx` files.
public enum ImportedGraphs {
    /// Whether `files` are ONNX models (by their extension).
    public static func areGraphs(_ files: [String]) -> Bool { !files.isEmpty && files.allSatisfy { $0.lowercased().hasSuffix(".onnx") } }
}

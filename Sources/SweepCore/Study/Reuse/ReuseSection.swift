import Foundation

/// Parameter reuse (`study: reuse`).
public struct ReuseSection: StudySection, Equatable {
    public static let key = "reuse"
    public static var keys: [String] { CodingKeys.allCases.map(\.rawValue) }

    /// Source → target dataset pairs (names from `datasets`).
    public var pairs: [ReusePair] = []
    /// First-k prefixes of the conv layers to reuse together (single layers come from `layers`).
    public var prefixes: [Int] = []
    /// Reused kernels kept fixed (`frozen`) or trained further (`finetuned`).
    public var modes: [ReuseMode] = [.frozen, .finetuned]

    public init() {}

    enum CodingKeys: String, CodingKey, CaseIterable { case pairs, prefixes, modes }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        pairs = try c.decodeIfPresent([ReusePair].self, forKey: .pairs) ?? pairs
        prefixes = try c.decodeIfPresent([Int].self, forKey: .prefixes) ?? prefixes
        modes = try c.decodeIfPresent([ReuseMode].self, forKey: .modes) ?? modes
    }
}

public struct ReusePair: Codable, Equatable, Sendable {
    public var source: String
    public var target: String

    public init(source: String, target: String) {
        self.source = source
        self.target = target
    }
}

public enum ReuseMode: String, Codable, CaseIterable, Sendable {
    case frozen, finetuned
}

import Foundation
import Procedures
import SweepCore
import SweepFile

/// Parameter reuse (`study: reuse`).
public struct ReuseSection: StudySection, SettingsSection, Equatable {
    public static let key = "reuse"

    /// Source → target dataset pairs (names from `datasets`).
    public var pairs: [ReusePair] = []
    /// First-k prefixes of the conv layers to reuse together (single layers come from `layers`).
    public var prefixes: [Int] = []
    /// Reused kernels kept fixed (`frozen`) or trained further (`finetuned`).
    public var modes: [ReuseMode] = [.frozen, .finetuned]

    public init() {}

    public static let settings: [Setting<ReuseSection>] = [Setting("pairs", \.pairs), Setting("prefixes", \.prefixes), Setting("modes", \.modes)]
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

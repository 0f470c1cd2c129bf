import Foundation

/// What the sweep file knows of a study: its name, its sections and their checks. The rest of a
/// study refines this: `StudyPlanning` (its plan), `StudyRecords` (its results), `SweepStudy`
/// (its tasks) and `ReportingStudy` (its report section). The studies themselves are in the
/// `Studies` module and reach this module only through `DeclaredStudies.install`.
public protocol StudyDeclaration {
    /// The `study:` value of a sweep file.
    static var name: StudyName { get }
    /// The optional top-level sections it reads (`training`, `layers`, `masks`, `evaluation` or
    /// its own), besides the fields every sweep has.
    static var sections: Set<String> { get }
    /// Its own section of the sweep file, decoded with the rest of it.
    static var section: (any StudySection.Type)? { get }
    /// Fields of its section whose values come from a fixed set, for "valid: ..." errors.
    static var choices: [String: (what: String, valid: [String])] { get }
    /// Whether `models:` entries may list networks trained elsewhere (`checkpoints:`).
    static var importsNetworks: Bool { get }
    /// Whether those networks may be ONNX graphs (its masks and evaluation run on a graph).
    static var importsGraphs: Bool { get }
    /// Whether its sweeps name datasets and models (false: tasks that do no work, for measuring
    /// the runner).
    static var needsData: Bool { get }

    /// Unknown keys in its section's nested mappings (the section's own keys are checked for it).
    static func checkKeys(_ tree: NodeTree) throws
    /// What its spec needs beyond the common checks, each error pointing at its line.
    static func validate(_ spec: SweepSpec, tree: NodeTree) throws
}

extension StudyDeclaration {
    public static var section: (any StudySection.Type)? { nil }
    public static var choices: [String: (what: String, valid: [String])] { [:] }
    public static var importsNetworks: Bool { false }
    public static var importsGraphs: Bool { false }
    public static var needsData: Bool { true }
    public static func checkKeys(_ tree: NodeTree) throws {}
    public static func validate(_ spec: SweepSpec, tree: NodeTree) throws {}
}

/// The studies sweep files can name, installed at start-up (by SweepCore's `StudyRegistry`).
public enum DeclaredStudies {
    /// The first is the default `study:`.
    public private(set) nonisolated(unsafe) static var all: [any StudyDeclaration.Type] = []
    /// Every study's own section type, by its key.
    nonisolated(unsafe) static var sections: [String: any StudySection.Type] = [:]

    public static func install(_ studies: [any StudyDeclaration.Type]) {
        all = studies
        sections = Dictionary(studies.compactMap { s in s.section.map { ($0.key, $0) } }, uniquingKeysWith: { a, _ in a })
    }

    public static func study(named name: String) -> (any StudyDeclaration.Type)? {
        all.first { $0.name.rawValue == name }
    }

    /// The names, in the installed order (for error messages and help).
    public static var names: [String] { all.map { $0.name.rawValue } }
}

/// What a name no installed study answers to declares: no sections, nothing to check.
enum UndeclaredStudy: StudyDeclaration {
    static let name = StudyName(rawValue: "")
    static let sections: Set<String> = []
}

extension SweepSpec {
    /// What this sweep's study declares of its sweep file.
    public var declaredStudy: any StudyDeclaration.Type { DeclaredStudies.study(named: study.rawValue) ?? UndeclaredStudy.self }
}

/// The `study:` value: a name `DeclaredStudies` knows. Each study's folder declares its constant
/// (`StudyName.zeroing`), so adding a study adds no case to a shared enumeration.
public struct StudyName: RawRepresentable, Hashable, Codable, Sendable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        let text = try c.decode(String.self)
        guard DeclaredStudies.study(named: text) != nil else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "unknown study '\(text)'")
        }
        rawValue = text
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(rawValue)
    }
}

/// A study's own section of the sweep file (`pruning:`, `sensitivity:` ...): decoded with the
/// file, defaults when absent, embedded in results.json.
public protocol StudySection: Codable, Sendable {
    /// Its top-level key.
    static var key: String { get }
    /// The keys it accepts (unknown ones are errors with a did-you-mean).
    static var keys: [String] { get }
    init()
    func isEqual(to other: any StudySection) -> Bool
}

extension StudySection where Self: Equatable {
    public func isEqual(to other: any StudySection) -> Bool { (other as? Self) == self }
}

import Foundation

/// The studies a sweep file can name. A new study is a folder next to this file and one entry here.
public enum StudyRegistry {
    public static let all: [any SweepStudy.Type] = [
        ZeroingStudy.self, ReuseStudy.self, IterativePruningStudy.self, DistillationStudy.self, SensitivityStudy.self, NoopStudy.self,
    ]

    public static func study(named name: String) -> (any SweepStudy.Type)? {
        all.first { $0.name.rawValue == name }
    }

    /// The study of a decoded name (a decoded `StudyName` is always registered; one made in
    /// code and never registered gets the study that does nothing).
    public static func study(of name: StudyName) -> any SweepStudy.Type { study(named: name.rawValue) ?? NoopStudy.self }

    /// The outcome measures type of the study named `name`.
    static func measures(of name: String) -> (any OutcomeMeasures.Type)? { study(named: name)?.measures }

    /// The names, in the registry's order (for error messages and help).
    public static var names: [String] { all.map { $0.name.rawValue } }

    /// Every study's own section type, by its key.
    static let sections: [String: any StudySection.Type] = Dictionary(
        all.compactMap { s in s.section.map { ($0.key, $0) } }, uniquingKeysWith: { a, _ in a })

    /// The traits of every kind: the shared ones, then each study's.
    static let kinds: [TaskKind: TaskKindInfo] = Dictionary(
        (TaskKind.shared + all.flatMap { $0.kinds }).map { ($0.kind, $0) }, uniquingKeysWith: { a, _ in a })

    /// Kinds in a stable order for listings (shared first, then by study).
    public static var kindOrder: [TaskKind] {
        var seen = Set<TaskKind>()
        return (TaskKind.shared + all.flatMap { $0.kinds }).map(\.kind).filter { seen.insert($0).inserted }
    }
}

extension SweepSpec {
    /// The study type this sweep runs.
    public var studyType: any SweepStudy.Type { StudyRegistry.study(of: study) }
}

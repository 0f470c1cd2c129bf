import Foundation
import SweepFile

/// The studies a sweep file can name. SweepCore knows studies only through this list, which the
/// program fills once at start-up (`StudyCatalog.install()` in the `Studies` module, where each
/// study has its folder), before any sweep file is read.
public enum StudyRegistry {
    /// The installed studies; the first is the default `study:`.
    public private(set) nonisolated(unsafe) static var all: [any SweepStudy.Type] = []
    nonisolated(unsafe) static var kinds: [TaskKind: TaskKindInfo] = [:]

    /// Makes `studies` the ones sweep files can name (start-up, once; again with the same list is harmless).
    public static func install(_ studies: [any SweepStudy.Type]) {
        all = studies
        DeclaredStudies.install(studies)
        // The traits of every kind: the shared ones, then each study's.
        kinds = Dictionary((TaskKind.shared + studies.flatMap { $0.kinds }).map { ($0.kind, $0) }, uniquingKeysWith: { a, _ in a })
    }

    public static func study(named name: String) -> (any SweepStudy.Type)? {
        all.first { $0.name.rawValue == name }
    }

    /// The study of a decoded name (a decoded `StudyName` is always installed; one made in code
    /// and never installed gets `UnknownStudy`, which plans nothing).
    public static func study(of name: StudyName) -> any SweepStudy.Type { study(named: name.rawValue) ?? UnknownStudy.self }

    /// The outcome measures type of the study named `name`.
    static func measures(of name: String) -> (any OutcomeMeasures.Type)? { study(named: name)?.measures }

    /// The names, in the registry's order (for error messages and help).
    public static var names: [String] { all.map { $0.name.rawValue } }

    /// Kinds in a stable order for listings (shared first, then by study).
    public static var kindOrder: [TaskKind] {
        var seen = Set<TaskKind>()
        return (TaskKind.shared + all.flatMap { $0.kinds }).map(\.kind).filter { seen.insert($0).inserted }
    }
}

/// What a name no installed study answers to gets: no sections, no tasks, the shared columns.
enum UnknownStudy: SweepStudy {
    static let name = StudyName(rawValue: "")
    static let sections: Set<String> = []
    static func expand(_ spec: SweepSpec) throws -> [PlannedTask] { [] }
    static func execute(_ task: PlannedTask, on worker: TaskExecutor, inputs: TaskInputs) throws -> (TaskOutcome, Data?) {
        throw RunError(path: task.key, message: "no installed study runs this task")
    }
}

extension SweepSpec {
    /// The study type this sweep runs.
    public var studyType: any SweepStudy.Type { StudyRegistry.study(of: study) }
}

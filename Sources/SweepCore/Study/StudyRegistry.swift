import Foundation
import SweepFile
import SweepPlan
import SweepRecords

/// The studies a sweep file can name. The sweep modules know studies only through this list, which the
/// program fills once at start-up (`StudyCatalog.install()` in the `Studies` module, where each
/// study has its folder), before any sweep file is read.
public enum StudyRegistry {
    /// Makes `studies` the ones sweep files can name (start-up, once; again with the same list
    /// is harmless). The list is kept once, as SweepFile's `DeclaredStudies`; each module
    /// below asks it for what that module needs of a study.
    public static func install(_ studies: [any SweepStudy.Type]) {
        DeclaredStudies.install(studies)
        PlanningStudies.install(studies)
    }

    /// The study of a decoded name (a decoded `StudyName` is always installed; one made in code
    /// and never installed gets `UnknownStudy`, which plans nothing).
    public static func study(of name: StudyName) -> any SweepStudy.Type {
        (DeclaredStudies.study(named: name.rawValue) as? any SweepStudy.Type) ?? UnknownStudy.self
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

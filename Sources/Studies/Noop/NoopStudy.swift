import Foundation
import Procedures
import SweepCore
import SweepFile
import SweepPlan
import SweepRecords
import SweepReport

extension StudyName {
    /// Empty tasks, for measuring the runner itself.
    public static let noop = StudyName(rawValue: "noop")
}

extension TaskKind {
    /// Do nothing (measures the runner's own overhead).
    public static let noop = TaskKind("noop")
}

/// `noop_tasks: N`, the study's one field: a number, not a mapping.
public struct NoopSection: StudySection, Equatable {
    public static let key = "noop_tasks"
    public static let keys: [String] = []
    /// How many empty tasks to plan.
    public var tasks = 0
    /// Bounds the plan's size.
    public static let maxTasks = 10_000_000

    public init() {}
    public init(from decoder: Decoder) throws { tasks = try decoder.singleValueContainer().decode(Int.self) }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(tasks)
    }
}

/// `study: noop`: `noop_tasks` tasks that do nothing, so that the wall time over the task count
/// is the coordinator's own cost per task.
public enum NoopStudy: SweepStudy {
    public static let name = StudyName.noop
    public static let sections: Set<String> = [NoopSection.key]
    public static let section: (any StudySection.Type)? = NoopSection.self
    public static let needsData = false
    public static let kinds = [TaskKindInfo(.noop, trains: false, compared: false)]

    public static func validate(_ spec: SweepSpec, tree: NodeTree) throws {
        guard (1...NoopSection.maxTasks).contains(spec.section(NoopSection.self).tasks) else {
            throw tree.error([.key(NoopSection.key)], "study noop needs noop_tasks between 1 and \(NoopSection.maxTasks)")
        }
    }

    public static func expand(_ spec: SweepSpec) throws -> [PlannedTask] {
        let count = spec.section(NoopSection.self).tasks
        let width = String(count - 1).count
        return (0..<count).map { i in
            let key = "noop/task" + String(repeating: "0", count: width - String(i).count) + String(i)
            return PlannedTask(key: key, kind: .noop, dataset: "", model: "", seedIndex: 0, unit: nil, mask: nil,
                               dependencies: [], cost: 1 + Double(i % 7), seed: Plan.seed(spec, key))
        }
    }

    public static func execute(_ task: PlannedTask, on worker: TaskExecutor, inputs: TaskInputs) throws -> (TaskOutcome, Data?) {
        (TaskOutcome(status: .ok), nil)
    }

    public static func label(_ task: PlannedTask) -> String? { task.key }

    public static func trainingRecipe(_ task: PlannedTask, spec: SweepSpec) -> (training: TrainingSection, extra: String)? { nil }
}

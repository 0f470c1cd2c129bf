import Foundation

extension StudyName {
    /// Empty tasks, for measuring the runner itself.
    public static let noop = StudyName(rawValue: "noop")
}

/// `study: noop`: `noop_tasks` tasks that do nothing, so that the wall time over the task count
/// is the coordinator's own cost per task.
public enum NoopStudy: SweepStudy {
    public static let name = StudyName.noop
    public static let sections: Set<String> = ["noop_tasks"]
    public static let needsData = false

    public static func validate(_ spec: SweepSpec, tree: NodeTree) throws {
        guard (1...SweepSpec.maxNoopTasks).contains(spec.noopTasks) else {
            throw tree.error([.key("noop_tasks")], "study noop needs noop_tasks between 1 and \(SweepSpec.maxNoopTasks)")
        }
    }

    public static func expand(_ spec: SweepSpec) throws -> [PlannedTask] {
        let width = String(spec.noopTasks - 1).count
        return (0..<spec.noopTasks).map { i in
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

import Foundation

extension StudyName {
    /// Layer-wise pruning sensitivity: how much of each layer can be pruned before accuracy drops.
    public static let sensitivity = StudyName(rawValue: "sensitivity")
}

public enum SensitivityStudy: SweepStudy {
    public static let name = StudyName.sensitivity
    public static let sections: Set<String> = ["training", "layers", "evaluation"]
    public static func expand(_ spec: SweepSpec) throws -> [PlannedTask] { [] }
    public static func execute(_ task: PlannedTask, on worker: TaskExecutor, inputs: TaskInputs) throws -> (TaskOutcome, Data?) {
        throw RunError(path: task.key, message: "todo")
    }
}

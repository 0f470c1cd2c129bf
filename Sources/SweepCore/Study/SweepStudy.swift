import Foundation
import ONNX
import Models
import Procedures
import Rendering
import SweepFile
import SweepPlan
import SweepRecords

/// One study: everything that makes a sweep of one study differ from a sweep of another. What
/// its sweep file holds is its `StudyDeclaration` (SweepFile), its plan its `StudyPlanning`
/// (SweepPlan), its results its `StudyRecords` (SweepRecords); this adds how its tasks run and
/// how the terminal shows them. Each
/// study lives in a folder of its own next to this file and is listed once in `StudyRegistry`;
/// the planner, the workers, the results files, the terminal and the report ask the sweep's
/// study instead of branching on its name. The defaults below are what a study without an
/// opinion gets.
public protocol SweepStudy: StudyPlanning, StudyRecords {
    /// Text for a finished task's progress line after its accuracy (` left 0.3430`).
    static func measuredText(_ outcome: TaskOutcome, task: PlannedTask) -> String?
    /// Runs one of the sweep's tasks on a worker (any kind but `load`).
    static func execute(_ task: PlannedTask, on worker: TaskExecutor, inputs: TaskInputs) throws -> (TaskOutcome, Data?)
    /// The settings a `.train` task of this study trains with, and the study's own settings that
    /// change what it produces ("" for none): with the dataset, model, seed and key, what names
    /// it in the training store. Nil: its trainings are not stored.
    static func trainingRecipe(_ task: PlannedTask, spec: SweepSpec) -> (training: TrainingSection, extra: String)?
    /// How progress lines name one of its tasks (nil: the shared wording).
    static func label(_ task: PlannedTask) -> String?

    /// The few terminal lines that answer the study's question.
    static func summary(_ rows: [ResultRow], statistics: StatisticsSection) -> [String]
    /// Whether the sweep re-estimates BN statistics (an imported graph must then keep its BN nodes).
    static func recalibrates(_ spec: SweepSpec) -> Bool
}

extension SweepStudy {
    public static func measuredText(_ outcome: TaskOutcome, task: PlannedTask) -> String? { nil }
    public static func trainingRecipe(_ task: PlannedTask, spec: SweepSpec) -> (training: TrainingSection, extra: String)? { (spec.training, "") }
    public static func label(_ task: PlannedTask) -> String? { nil }
    public static func summary(_ rows: [ResultRow], statistics: StatisticsSection) -> [String] { [] }
    public static func recalibrates(_ spec: SweepSpec) -> Bool { false }
}

/// An error a study throws to end a task as `stopped` (its own stopping rule was met, as when
/// IMP would leave a layer too few connected units), not `failed`.
public protocol StoppingRule: Error, CustomStringConvertible {}

/// The artifacts a task's dependencies produced, by dependency key.
public struct TaskInputs {
    let task: PlannedTask
    let hashes: [String: String]
    let lookup: (String) -> SafeTensorsFile?
    var graphLookup: (String) -> ONNXProgram? = { _ in nil }

    /// The artifact of dependency `key` (held by the worker already).
    public func file(_ key: String) throws -> SafeTensorsFile {
        guard let hash = hashes[key], let file = lookup(hash) else {
            throw RunError(path: task.key, message: "the output of \(key) did not arrive")
        }
        return file
    }

    /// The imported graph dependency `key` loaded (held by the worker already).
    public func graph(_ key: String) throws -> ONNXProgram {
        guard let hash = hashes[key], let graph = graphLookup(hash) else {
            throw RunError(path: task.key, message: "the imported graph of \(key) did not arrive")
        }
        return graph
    }

    /// The artifact's content hash.
    public func hash(_ key: String) throws -> String {
        guard let hash = hashes[key] else { throw RunError(path: task.key, message: "the output of \(key) did not arrive") }
        return hash
    }
}


import Foundation
import ONNX
import Models
import Procedures
import Rendering
import SweepFile

/// One study: everything that makes a sweep of one study differ from a sweep of another (what its
/// sweep file holds is its `StudyDeclaration`, in the SweepFile module). Each
/// study lives in a folder of its own next to this file and is listed once in `StudyRegistry`;
/// the planner, the workers, the results files, the terminal and the report ask the sweep's
/// study instead of branching on its name. The defaults below are what a study without an
/// opinion gets.
public protocol SweepStudy: StudyDeclaration {
    /// What its tasks measure beyond the shared outcome fields.
    static var measures: (any OutcomeMeasures.Type)? { get }
    /// The type of its tasks' own parameters (`PlannedTask.payload`), for the worker that
    /// receives one.
    static var payload: (any DecodableTaskPayload.Type)? { get }
    /// Text for a finished task's progress line after its accuracy (` left 0.3430`).
    static func measuredText(_ outcome: TaskOutcome, task: PlannedTask) -> String?
    /// The task graph: trainings first, then what depends on them.
    static func expand(_ spec: SweepSpec) throws -> [PlannedTask]

    /// Its own task kinds (the shared ones are `TaskKind.shared`).
    static var kinds: [TaskKindInfo] { get }
    /// Runs one of the sweep's tasks on a worker (any kind but `load`).
    static func execute(_ task: PlannedTask, on worker: TaskExecutor, inputs: TaskInputs) throws -> (TaskOutcome, Data?)
    /// Whether a training of this study may run on a gang of ranks.
    static func gangable(_ task: PlannedTask) -> Bool
    /// The settings a `.train` task of this study trains with, and the study's own settings that
    /// change what it produces ("" for none): with the dataset, model, seed and key, what names
    /// it in the training store. Nil: its trainings are not stored.
    static func trainingRecipe(_ task: PlannedTask, spec: SweepSpec) -> (training: TrainingSection, extra: String)?
    /// How progress lines name one of its tasks (nil: the shared wording).
    static func label(_ task: PlannedTask) -> String?

    /// Its results.csv columns, placed among the shared ones.
    static func columns(_ rows: [ResultRow]) -> StudyColumns
    /// Fills a result row's study-specific fields from its task and outcome.
    static func describe(_ row: inout ResultRow, task: PlannedTask, outcome: TaskOutcome, plan: Plan)
    /// The few terminal lines that answer the study's question.
    static func summary(_ rows: [ResultRow], statistics: StatisticsSection) -> [String]
    /// Per-unit summaries over the networks, for results.json's `units`.
    static func unitSummaries(_ rows: [ResultRow], statistics: StatisticsSection) -> [UnitSummary]
    /// Files the study writes next to results.csv (name and bytes).
    static func extraFiles(_ rows: [ResultRow], statistics: StatisticsSection) -> [(name: String, data: Data)]
    /// Whether the sweep re-estimates BN statistics (an imported graph must then keep its BN nodes).
    static func recalibrates(_ spec: SweepSpec) -> Bool
}

extension SweepStudy {
    public static var measures: (any OutcomeMeasures.Type)? { nil }
    public static var payload: (any DecodableTaskPayload.Type)? { nil }
    public static func measuredText(_ outcome: TaskOutcome, task: PlannedTask) -> String? { nil }
    public static func unitSummaries(_ rows: [ResultRow], statistics: StatisticsSection) -> [UnitSummary] { [] }
    public static var kinds: [TaskKindInfo] { [] }
    public static func gangable(_ task: PlannedTask) -> Bool { task.kind.trains }
    public static func trainingRecipe(_ task: PlannedTask, spec: SweepSpec) -> (training: TrainingSection, extra: String)? { (spec.training, "") }
    public static func label(_ task: PlannedTask) -> String? { nil }
    public static func columns(_ rows: [ResultRow]) -> StudyColumns { StudyColumns() }
    public static func describe(_ row: inout ResultRow, task: PlannedTask, outcome: TaskOutcome, plan: Plan) {}
    public static func summary(_ rows: [ResultRow], statistics: StatisticsSection) -> [String] { [] }
    public static func extraFiles(_ rows: [ResultRow], statistics: StatisticsSection) -> [(name: String, data: Data)] { [] }
    public static func recalibrates(_ spec: SweepSpec) -> Bool { false }
}

/// A task kind's traits, declared by the study that runs it.
public struct TaskKindInfo: Sendable {
    public let kind: TaskKind
    /// It trains a network (its progress lines, epoch snapshots and gangs).
    public let trains: Bool
    /// Its accuracy is compared with a reference task (`delta_accuracy`).
    public let compared: Bool

    public init(_ kind: TaskKind, trains: Bool, compared: Bool) {
        self.kind = kind
        self.trains = trains
        self.compared = compared
    }
}

/// What a study's task measured beyond the shared fields (a remaining fraction, a kernel RMSE
/// ...), typed by the study. Written into the outcome's JSON as fields of its own, with a
/// `measures` field naming the study, so journal lines read back into the same type.
public protocol OutcomeMeasures: Codable, Sendable {
    /// The study whose type this is (the `measures` field).
    static var study: StudyName { get }
    /// True when nothing was measured (an outcome decoded without any of the type's fields).
    var isEmpty: Bool { get }
    func isEqual(to other: any OutcomeMeasures) -> Bool
    /// A value no task could have measured (read back from a journal), or nil.
    var problem: String? { get }
}

extension OutcomeMeasures where Self: Equatable {
    public func isEqual(to other: any OutcomeMeasures) -> Bool { (other as? Self) == self }
}

/// A study's own fields of a task (a sparsity, a pruning round ...) or of its result row (a
/// remaining fraction, a kernel RMSE ...): typed by the study; a row's are written into results
/// files as fields of their own.
public protocol TaskPayload: Encodable, Sendable {
    func isEqual(to other: any TaskPayload) -> Bool
    /// With its measured numbers at results files' precision (`significant`).
    func rounded() -> any TaskPayload
}

extension TaskPayload {
    public func rounded() -> any TaskPayload { self }
}

/// A task's payload that travels to a worker and back into its type.
public protocol DecodableTaskPayload: TaskPayload, Decodable {}

extension TaskPayload where Self: Equatable {
    public func isEqual(to other: any TaskPayload) -> Bool { (other as? Self) == self }
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

/// A study's results.csv columns: after `dataset` (what the point comes from), after `mask` (where
/// on the study's axis) and after the shared measurements (status ... delta_accuracy). The run's
/// seconds, rank and host always come last, so two runs diff cleanly.
public struct StudyColumns {
    public var afterDataset: [ResultColumn] = []
    public var afterMask: [ResultColumn] = []
    public var afterMetrics: [ResultColumn] = []

    public init(afterDataset: [ResultColumn] = [], afterMask: [ResultColumn] = [], afterMetrics: [ResultColumn] = []) {
        self.afterDataset = afterDataset
        self.afterMask = afterMask
        self.afterMetrics = afterMetrics
    }
}

/// One results.csv column: its name and how a row shows it.
public struct ResultColumn {
    public let name: String
    public let value: (ResultRow) -> String

    public init(_ name: String, _ value: @escaping (ResultRow) -> String) {
        self.name = name
        self.value = value
    }

    public static func number(_ name: String, _ value: @escaping (ResultRow) -> Double?) -> ResultColumn {
        ResultColumn(name) { value($0).map { "\($0)" } ?? "" }
    }

    public static func integer(_ name: String, _ value: @escaping (ResultRow) -> Int?) -> ResultColumn {
        ResultColumn(name) { value($0).map(String.init) ?? "" }
    }
}

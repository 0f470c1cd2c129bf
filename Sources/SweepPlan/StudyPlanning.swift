import Foundation
import SweepFile

/// What planning asks of a study: its task graph, its own task kinds, the type of its tasks'
/// parameters and which of its trainings may run on a gang of ranks.
public protocol StudyPlanning: StudyDeclaration {
    /// The type of its tasks' own parameters (`PlannedTask.payload`), for the worker that
    /// receives one.
    static var payload: (any DecodableTaskPayload.Type)? { get }
    /// The task graph: trainings first, then what depends on them.
    static func expand(_ spec: SweepSpec) throws -> [PlannedTask]
    /// Its own task kinds (the shared ones are `TaskKind.shared`).
    static var kinds: [TaskKindInfo] { get }
    /// Whether a training of this study may run on a gang of ranks.
    static func gangable(_ task: PlannedTask) -> Bool
}

extension StudyPlanning {
    public static var payload: (any DecodableTaskPayload.Type)? { nil }
    public static var kinds: [TaskKindInfo] { [] }
    public static func gangable(_ task: PlannedTask) -> Bool { task.kind.trains }
}

/// The task kinds of the installed studies, looked up for every task (`TaskKind.trains`), so
/// kept as a table made when the studies are installed.
public enum PlanningStudies {
    /// The traits of every kind: the shared ones, then each study's.
    nonisolated(unsafe) static var kinds: [TaskKind: TaskKindInfo] = [:]

    public static func install(_ studies: [any StudyPlanning.Type]) {
        kinds = Dictionary((TaskKind.shared + studies.flatMap { $0.kinds }).map { ($0.kind, $0) }, uniquingKeysWith: { a, _ in a })
    }

    /// Kinds in a stable order for listings (shared first, then by study).
    public static var kindOrder: [TaskKind] {
        var seen = Set<TaskKind>()
        let studies = DeclaredStudies.all.compactMap { $0 as? any StudyPlanning.Type }
        return (TaskKind.shared + studies.flatMap { $0.kinds }).map(\.kind).filter { seen.insert($0).inserted }
    }
}

/// What a name no installed study answers to plans: nothing.
enum UnplannedStudy: StudyPlanning {
    static let name = StudyName(rawValue: "")
    static let sections: Set<String> = []
    static func expand(_ spec: SweepSpec) throws -> [PlannedTask] { [] }
}

extension SweepSpec {
    /// What this sweep's study plans.
    public var plannedStudy: any StudyPlanning.Type { (declaredStudy as? any StudyPlanning.Type) ?? UnplannedStudy.self }
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

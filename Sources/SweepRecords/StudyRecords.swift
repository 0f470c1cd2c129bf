import Foundation
import SweepFile
import SweepPlan

/// What a run's records ask of a study: what its tasks measured, its results.csv columns and
/// row fields, its per-unit summaries and the files it writes beside the results.
public protocol StudyRecords: StudyDeclaration {
    /// What its tasks measure beyond the shared outcome fields.
    static var measures: (any OutcomeMeasures.Type)? { get }
    /// Its results.csv columns, placed among the shared ones.
    static func columns(_ rows: [ResultRow]) -> StudyColumns
    /// Fills a result row's study-specific fields from its task and outcome.
    static func describe(_ row: inout ResultRow, task: PlannedTask, outcome: TaskOutcome, plan: Plan)
    /// Per-unit summaries over the networks, for results.json's `units`.
    static func unitSummaries(_ rows: [ResultRow], statistics: StatisticsSection) -> [UnitSummary]
    /// Files the study writes next to results.csv (name and bytes).
    static func extraFiles(_ rows: [ResultRow], statistics: StatisticsSection) -> [(name: String, data: Data)]
}

extension StudyRecords {
    public static var measures: (any OutcomeMeasures.Type)? { nil }
    public static func columns(_ rows: [ResultRow]) -> StudyColumns { StudyColumns() }
    public static func describe(_ row: inout ResultRow, task: PlannedTask, outcome: TaskOutcome, plan: Plan) {}
    public static func unitSummaries(_ rows: [ResultRow], statistics: StatisticsSection) -> [UnitSummary] { [] }
    public static func extraFiles(_ rows: [ResultRow], statistics: StatisticsSection) -> [(name: String, data: Data)] { [] }
}

extension DeclaredStudies {
    /// The outcome measures type of the installed study named `name`.
    static func measures(of name: String) -> (any OutcomeMeasures.Type)? {
        (study(named: name) as? any StudyRecords.Type)?.measures
    }
}

/// What a name no installed study answers to records: the shared columns only.
enum UnrecordedStudy: StudyRecords {
    static let name = StudyName(rawValue: "")
    static let sections: Set<String> = []
}

extension SweepSpec {
    /// What this sweep's study records.
    public var recordedStudy: any StudyRecords.Type { (declaredStudy as? any StudyRecords.Type) ?? UnrecordedStudy.self }
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

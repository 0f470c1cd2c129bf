import Datasets
import Foundation
import Models
import Procedures
import Rendering
import SweepFile
import SweepPlan
import SweepRecords
import SweepReport
import TensorEngine
import SweepCore

extension StudyName {
    /// Distillation into shallow students (Urban et al. 2017): do deep nets need to be deep?
    public static let distill = StudyName(rawValue: "distill")
}

extension TaskKind {
    /// Evaluate the teacher ensemble and compute its logits on the train split (shipped to students).
    public static let logits = TaskKind("logits")
    /// Train a student, on the teacher's logits or on the labels.
    public static let student = TaskKind("student")
}

/// What a student learns from, and its size: its task's payload.
public struct StudentPoint: DecodableTaskPayload, Equatable {
    public let loss: DistillationLoss
    public let budget: Int
    /// The teacher model whose logits it regresses (nil: the labels).
    public let teacher: String?
}

/// A trained student's size.
public struct StudentMeasures: OutcomeMeasures, Equatable {
    public static let study = StudyName.distill
    /// Parameters the student has (its width is chosen to come closest to the budget).
    public var parameters: Int?
    public var isEmpty: Bool { parameters == nil }
    public var problem: String? { (parameters ?? 0) < 0 ? "parameters \(parameters!) is negative" : nil }
}

/// A student row's own fields.
public struct StudentRow: TaskPayload, Equatable {
    public var convLayers: Int?
    public var budget: Int
    public var parameters: Int?

    enum CodingKeys: String, CodingKey {
        case budget, parameters
        case convLayers = "conv_layers"
    }
}

extension ResultRow {
    /// A student row's own fields.
    public var student: StudentRow? { payload as? StudentRow }
}

extension SweepSpec {
    /// The `distillation:` section (defaults when the file has none).
    public var distillation: DistillationSection { section(DistillationSection.self) }
}

/// `study: distill`: teachers trained per (dataset, model), their logits, and students of each
/// depth and parameter budget trained on the logits or, as the control, on the labels.
public enum DistillationStudy: ReportingStudy {
    public static let name = StudyName.distill
    public static let sections: Set<String> = ["training", "distillation", "evaluation"]
    public static let section: (any StudySection.Type)? = DistillationSection.self
    public static let choices: [String: (what: String, valid: [String])] = ["losses": ("distillation loss", DistillationLoss.allCases.map(\.rawValue))]
    public static let kinds = [TaskKindInfo(.logits, trains: false, compared: false), TaskKindInfo(.student, trains: true, compared: true)]
    public static let measures: (any OutcomeMeasures.Type)? = StudentMeasures.self
    public static let payload: (any DecodableTaskPayload.Type)? = StudentPoint.self

    public static func checkKeys(_ tree: NodeTree) throws {
        try tree.checkKeys([.key("distillation"), .key("teacher_training")], allowed: TrainingSection.keys)
    }

    public static func validate(_ spec: SweepSpec, tree: NodeTree) throws {
        func fail(_ path: [PathComponent], _ message: String) -> SpecError { tree.error(path, message) }
        let d = spec.distillation, at = { (key: String) -> [PathComponent] in [.key("distillation"), .key(key)] }
        guard (1...100).contains(d.teachers) else { throw fail(at("teachers"), "teachers must be between 1 and 100") }
        guard !d.convLayers.isEmpty, d.convLayers.allSatisfy({ (0...4).contains($0) }) else {
            throw fail(at("conv_layers"), "conv_layers lists student conv-layer counts, each 0...4")
        }
        guard !d.budgets.isEmpty, d.budgets.allSatisfy({ (1000...100_000_000).contains($0) }) else {
            throw fail(at("budgets"), "budgets lists student parameter counts, each between 1000 and 100000000")
        }
        guard !d.losses.isEmpty else { throw fail(at("losses"), "list at least one of: logits, labels") }
        for (values, key) in [(d.convLayers.map(String.init), "conv_layers"), (d.budgets.map(String.init), "budgets"),
                              (d.losses.map(\.rawValue), "losses")] where Set(values).count != values.count {
            throw fail(at(key), "\(key) lists a value twice: task keys would collide")
        }
        if let problem = d.teacherTraining?.problems.first {
            throw fail([.key("distillation"), .key("teacher_training"), .key(problem.field)], "\(problem.field) \(problem.requirement)")
        }
    }

    /// Per (dataset, teacher model): `teachers` teacher trainings, one logits task over all of
    /// them, and students per (conv layers, budget, seed, loss); label-trained students do not
    /// wait for any teacher.
    public static func expand(_ spec: SweepSpec) throws -> [PlannedTask] {
        var tasks: [PlannedTask] = []
        let dist = spec.distillation
        let teacherEpochs = (dist.teacherTraining ?? spec.training).epochs
        for dataset in spec.datasets {
            let d = dataset.description
            var logitsKeys: [String] = []
            for model in spec.models {
                let (macs, _) = try Plan.measure(model, on: dataset)
                let teacherKeys = (0..<dist.teachers).map { "\(dataset.keyName)/\(model)/teacher\($0)/train" }
                for (t, key) in teacherKeys.enumerated() {
                    tasks.append(PlannedTask(key: key, kind: .train, dataset: dataset.name, model: model, seedIndex: t, unit: nil, mask: nil,
                                             dependencies: [], cost: Plan.trainingCost(macs: macs, on: d, epochs: teacherEpochs),
                                             seed: Plan.seed(spec, key)))
                }
                let logitsKey = "\(dataset.keyName)/\(model)/teacher-logits"
                var logits = PlannedTask(key: logitsKey, kind: .logits, dataset: dataset.name, model: model, seedIndex: 0, unit: nil,
                                         mask: nil, dependencies: teacherKeys,
                                         cost: Plan.evaluationCost(macs: macs, images: (d.train + d.test) * dist.teachers), seed: Plan.seed(spec, logitsKey))
                logits.baselineKey = logitsKey
                tasks.append(logits)
                logitsKeys.append(logitsKey)
            }
            for conv in dist.convLayers {
                for budget in dist.budgets {
                    let student = Distillation.student(convLayers: conv, budget: budget, inputShape: d.shape, classes: d.classes)
                    let (macs, _) = try Plan.measure(student.name, on: dataset)
                    let cost = Plan.trainingCost(macs: macs, on: d, epochs: spec.training.epochs)
                    for s in spec.seeds {
                        let prefix = "\(dataset.keyName)/c\(conv)-b\(budget)/seed\(s)"
                        func task(_ key: String, loss: DistillationLoss, teacher: String?, logitsKey: String) -> PlannedTask {
                            var t = PlannedTask(key: key, kind: .student, dataset: dataset.name, model: student.name, seedIndex: s,
                                                unit: nil, mask: nil, dependencies: teacher == nil ? [] : [logitsKey], cost: cost,
                                                seed: Plan.seed(spec, key))
                            t.payload = StudentPoint(loss: loss, budget: budget, teacher: teacher)
                            t.baselineKey = logitsKey
                            return t
                        }
                        for loss in dist.losses {
                            switch loss {
                            case .labels:
                                tasks.append(task("\(prefix)/labels", loss: .labels, teacher: nil, logitsKey: logitsKeys[0]))
                            case .logits:
                                for (model, logitsKey) in zip(spec.models, logitsKeys) {
                                    tasks.append(task("\(prefix)/logits-\(model)", loss: .logits, teacher: model, logitsKey: logitsKey))
                                }
                            }
                        }
                    }
                }
            }
        }
        return tasks
    }

    public static func execute(_ task: PlannedTask, on worker: TaskExecutor, inputs: TaskInputs) throws -> (TaskOutcome, Data?) {
        let spec = worker.spec
        switch task.kind {
        case .train:
            return try worker.trainTask(task, section: spec.distillation.teacherTraining ?? spec.training)
        case .logits:
            return try worker.teacherLogits(task, teachers: try task.dependencies.map(inputs.file))
        case .student:
            let data = try worker.splits(task.dataset, model: task.model)
            let network = try worker.build(task.model, for: data, seed: task.seed)
            var loss: Training.LossFunction?
            if (task.payload as? StudentPoint)?.loss == .logits, let dep = task.dependencies.first {
                guard let logits = try inputs.file(dep)["logits"], logits.shape == [data.train.count, data.train.classes] else {
                    throw RunError(path: task.key, message: "teacher logits do not match the training split")
                }
                loss = Distillation.logitLoss(teacher: logits)
            }
            var outcome = try worker.train(network, data: data, section: spec.training, seed: task.seed, loss: loss)
            outcome.measures = StudentMeasures(parameters: network.parameterCount)
            return (outcome, nil)
        default:
            throw RunError(path: task.key, message: "study distill has no task kind \(task.kind)")
        }
    }

    /// Teachers train with `teacher_training` when the file gives one.
    public static func trainingRecipe(_ task: PlannedTask, spec: SweepSpec) -> (training: TrainingSection, extra: String)? {
        (spec.distillation.teacherTraining ?? spec.training, "")
    }

    public static func label(_ task: PlannedTask) -> String? {
        switch task.kind {
        case .logits: return "\(task.dataset)/\(task.model) teacher logits"
        case .student: return "\(task.dataset) \(task.model) seed\(task.seedIndex) \((task.payload as? StudentPoint)?.loss.rawValue ?? "")"
        default: return nil
        }
    }

    public static func columns(_ rows: [ResultRow]) -> StudyColumns {
        StudyColumns(afterDataset: [ResultColumn("source") { $0.source ?? "" }],
                     afterMetrics: [.integer("conv_layers") { $0.student?.convLayers }, .integer("budget") { $0.student?.budget },
                                    .integer("parameters") { $0.student?.parameters }])
    }

    /// Teachers and their logits are the `teacher` variant; a student's row names its loss,
    /// budget, teacher and conv layers.
    public static func describe(_ row: inout ResultRow, task: PlannedTask, outcome: TaskOutcome, plan: Plan) {
        if task.kind == .train || task.kind == .logits { row.mask = "teacher" }
        guard task.kind == .student, let point = task.payload as? StudentPoint else { return }
        row.mask = point.loss.rawValue
        row.source = point.teacher
        var conv: Int?
        if let spec = try? ModelSpec.parse(task.model), case let .student(c, _) = spec { conv = c }
        row.payload = StudentRow(convLayers: conv, budget: point.budget, parameters: outcome.measures(StudentMeasures.self)?.parameters)
    }

    public static func summary(_ rows: [ResultRow], statistics: StatisticsSection) -> [String] { DistillationTable.compute(rows).flatMap(\.summary) }

    public static func report(_ input: ReportInput, into m: inout Markup) { DistillationReport.section(input, into: &m) }
}

extension TaskExecutor {

    func teacherLogits(_ task: PlannedTask, teachers files: [SafeTensorsFile]) throws -> (TaskOutcome, Data?) {
        let data = try splits(task.dataset, model: task.model)
        let teachers = try files.enumerated().map { try Checkpoint.network(from: $0.element, path: task.dependencies[$0.offset]) }
        let batch = spec.evaluation.batchSize
        let test = Distillation.ensembleLogits(teachers, on: data.test, batchSize: batch)
        let train = Distillation.ensembleLogits(teachers, on: data.train, batchSize: batch)
        var outcome = TaskOutcome(status: .ok)
        let onTest = Loss.softmaxCrossEntropy(test, labels: data.test.labels)
        outcome.testAccuracy = Double(onTest.correct) / Double(max(data.test.count, 1))
        outcome.testLoss = Double(onTest.loss)
        outcome.trainAccuracy = Double(Loss.softmaxCrossEntropy(train, labels: data.train.labels).correct) / Double(max(data.train.count, 1))
        guard train.isFinite else { throw RunError(path: task.key, message: "teacher logits are not finite") }
        return try finish(&outcome, artifact: SafeTensorsFile(tensors: [("logits", train)], metadata: metadata(task)))
    }
}

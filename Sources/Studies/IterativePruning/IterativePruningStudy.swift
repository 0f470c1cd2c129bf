import Datasets
import Foundation
import Models
import Procedures
import Rendering
import SweepCore
import SweepFile
import SweepPlan
import SweepRecords
import SweepReport

extension StudyName {
    /// Iterative magnitude pruning (Pellegrini & Biroli 2021): what the surviving connections of a
    /// pruned fully connected network look like.
    public static let imp = StudyName(rawValue: "imp")
}

extension TaskKind {
    /// IMP round k ≥ 1: prune the previous round's network, rewind, retrain; produces the round.
    public static let prune = TaskKind("prune")
    /// One-shot control: prune the dense network to round k's sparsity at once, rewind, retrain.
    /// Spelt like the `oneshot` keys and variant (journals of 0.1.0 wrote `oneShot`; `TaskKind`
    /// reads that as this).
    public static let oneShot = TaskKind("oneshot")
}

/// Where an IMP task sits: its round, and whether it got there iteratively (`imp`) or at once
/// (`oneshot`, the control).
public struct PruningPoint: DecodableTaskPayload, Equatable {
    public let round: Int
    public let method: String
}

/// What an IMP round measured.
public struct PruningMeasures: OutcomeMeasures, Equatable {
    public static let study = StudyName.imp
    /// Surviving fraction of all pruned weights, and of each layer's.
    public var remainingFraction: Double?
    public var layerRemaining: [String: Double]?
    /// Locality of the first layer's surviving connections (see `Locality.score`).
    public var locality: Double?
    /// The most-connected first-layer masks.
    public var maskImages: [MaskImage]?

    public init(remainingFraction: Double? = nil, layerRemaining: [String: Double]? = nil, locality: Double? = nil,
                maskImages: [MaskImage]? = nil) {
        self.remainingFraction = remainingFraction
        self.layerRemaining = layerRemaining
        self.locality = locality
        self.maskImages = maskImages
    }

    public var isEmpty: Bool { remainingFraction == nil && layerRemaining == nil && locality == nil && maskImages == nil }

    public var problem: String? {
        for (name, value) in [("remainingFraction", remainingFraction)] + (layerRemaining ?? [:]).sorted(by: { $0.key < $1.key }).map({ ($0.key, Optional($0.value)) }) {
            if let value, !(0...1).contains(value) { return "\(name) \(value) is not a fraction in [0, 1]" }
        }
        if let locality, !locality.isFinite { return "locality \(locality) is not a number" }
        return maskImages?.lazy.compactMap(\.problem).first
    }
}

/// An IMP row's own fields: its round and what the round measured.
public struct PruningRow: TaskPayload, Equatable {
    /// The pruning round (0 = dense).
    public var round: Int
    public var remainingFraction: Double?
    public var layerRemaining: [String: Double]?
    public var locality: Double?
    /// The most-connected first-layer masks (results.json only).
    public var maskImages: [MaskImage]?

    enum CodingKeys: String, CodingKey {
        case round, locality
        case remainingFraction = "remaining_fraction", layerRemaining = "layer_remaining", maskImages = "mask_images"
    }

    public func rounded() -> any TaskPayload {
        var r = self
        r.remainingFraction = significant(remainingFraction)
        r.locality = significant(locality)
        r.layerRemaining = layerRemaining?.mapValues { significant($0) ?? $0 }
        return r
    }
}

extension ResultRow {
    /// An IMP row's own fields.
    public var pruning: PruningRow? { payload as? PruningRow }
}

extension SweepSpec {
    /// The `pruning:` section (defaults when the file has none).
    public var pruning: PruningSection { section(PruningSection.self) }
}

/// `study: imp`: per seed a chain of IMP rounds from the dense network, and one-shot controls
/// pruned straight to each round's sparsity.
public enum IterativePruningStudy: ReportingStudy {
    public static let name = StudyName.imp
    public static let sections: Set<String> = ["training", "pruning", "evaluation"]
    public static let section: (any StudySection.Type)? = PruningSection.self
    public static let kinds = [TaskKindInfo(.prune, trains: true, compared: true), TaskKindInfo(.oneShot, trains: true, compared: true)]
    public static let measures: (any OutcomeMeasures.Type)? = PruningMeasures.self
    public static let payload: (any DecodableTaskPayload.Type)? = PruningPoint.self

    public static func validate(_ spec: SweepSpec, tree: NodeTree) throws {
        func fail(_ path: [PathComponent], _ message: String) -> SpecError { tree.error(path, message) }
        for (i, model) in spec.models.enumerated() {
            guard case .fcn = try ModelSpec.parse(model) else {
                throw fail([.key("models"), .index(i)], "study imp prunes fully connected networks (e.g. fcn-1024x3-bn); \(model) is not one")
            }
        }
        let p = spec.pruning, at = { (key: String) -> [PathComponent] in [.key("pruning"), .key(key)] }
        guard p.rate > 0, p.rate < 1 else { throw fail(at("rate"), "rate is the fraction pruned per round, between 0 and 1 (e.g. 0.3)") }
        guard (1...100).contains(p.rounds) else { throw fail(at("rounds"), "rounds must be between 1 and 100") }
        guard p.rewindStep >= 0 else { throw fail(at("rewind_step"), "rewind_step must be 0 (the initialisation) or a later step") }
        guard p.minConnectedUnits >= 1 else { throw fail(at("min_connected_units"), "min_connected_units must be at least 1") }
        guard (0...1024).contains(p.maskImages) else { throw fail(at("mask_images"), "mask_images must be between 0 and 1024") }
        for dataset in spec.datasets {
            let d = dataset.description
            let steps = spec.training.epochs * ((d.train + spec.training.batchSize - 1) / spec.training.batchSize)
            guard p.rewindStep < steps else {
                throw fail(at("rewind_step"), "rewind_step \(p.rewindStep) is not before the end of training on \(dataset.name) (\(steps) steps)")
            }
        }
    }

    /// Per (dataset, model, seed): the dense training (round 0), a chain of IMP rounds each
    /// depending on the one before, and one-shot controls (rounds 2...) that depend on round 0 only, so
    /// chains of different seeds, widths and the controls all run in parallel.
    public static func expand(_ spec: SweepSpec) throws -> [PlannedTask] {
        var tasks: [PlannedTask] = []
        let p = spec.pruning
        let digits = String(p.rounds).count
        func roundName(_ k: Int) -> String { String(repeating: "0", count: digits - String(k).count) + String(k) }
        for dataset in spec.datasets {
            let d = dataset.description
            for model in spec.models {
                let (macs, _) = try Plan.measure(model, on: dataset)
                let steps = Double(spec.training.epochs * ((d.train + spec.training.batchSize - 1) / spec.training.batchSize))
                let trainCost = Plan.trainingCost(macs: macs, on: d, epochs: spec.training.epochs)
                let retrainCost = trainCost * max(0.05, 1 - Double(p.rewindStep) / max(steps, 1))
                for s in spec.seeds {
                    let prefix = "\(dataset.keyName)/\(model)/seed\(s)"
                    let dense = "\(prefix)/round\(roundName(0))"
                    let chainSeed = Plan.seed(spec, dense)
                    func task(_ key: String, _ kind: TaskKind, round: Int, variant: String, after: [String], cost: Double) -> PlannedTask {
                        var t = PlannedTask(key: key, kind: kind, dataset: dataset.name, model: model, seedIndex: s, unit: nil, mask: nil,
                                            dependencies: after, cost: cost, seed: chainSeed)
                        t.payload = PruningPoint(round: round, method: variant)
                        t.baselineKey = dense
                        return t
                    }
                    tasks.append(task(dense, .train, round: 0, variant: "imp", after: [], cost: trainCost))
                    for k in 1...max(p.rounds, 1) where p.rounds > 0 {
                        tasks.append(task("\(prefix)/round\(roundName(k))", .prune, round: k, variant: "imp",
                                          after: ["\(prefix)/round\(roundName(k - 1))"], cost: retrainCost))
                        // One-shot to round 1's sparsity is IMP round 1 itself: not run twice.
                        if p.oneShot && k >= 2 {
                            tasks.append(task("\(prefix)/oneshot\(roundName(k))", .oneShot, round: k, variant: "oneshot",
                                              after: [dense], cost: retrainCost))
                        }
                    }
                }
            }
        }
        return tasks
    }

    public static func execute(_ task: PlannedTask, on worker: TaskExecutor, inputs: TaskInputs) throws -> (TaskOutcome, Data?) {
        switch task.kind {
        case .train: return try worker.trainDense(task)
        case .prune, .oneShot: return try worker.prune(task, previous: try inputs.file(task.dependencies[0]))
        default: throw RunError(path: task.key, message: "study imp has no task kind \(task.kind)")
        }
    }

    /// The dense round keeps its rewind point beside the trained weights (another artifact than
    /// a plain training's).
    public static func trainingRecipe(_ task: PlannedTask, spec: SweepSpec) -> (training: TrainingSection, extra: String)? {
        (spec.training, "imp dense round, rewind step \(spec.pruning.rewindStep)")
    }

    /// The rewinding and the masks live in one process: IMP trainings run on one rank.
    public static func gangable(_ task: PlannedTask) -> Bool { false }

    public static func label(_ task: PlannedTask) -> String? {
        guard task.kind != .train else { return nil }
        let point = task.payload as? PruningPoint
        return "\(task.dataset)/\(task.model)/seed\(task.seedIndex) \(point?.method ?? "") round \(point?.round ?? 0)"
    }

    /// The round after `mask`; remaining_fraction, then one remaining_<layer> column per layer,
    /// then locality after the measurements.
    public static func columns(_ rows: [ResultRow]) -> StudyColumns {
        let layers = Set(rows.flatMap { $0.pruning?.layerRemaining?.keys.map { $0 } ?? [] }).sorted()
        return StudyColumns(afterMask: [.integer("round") { $0.pruning?.round }],
                            afterMetrics: [.number("remaining_fraction") { $0.pruning?.remainingFraction }]
                                + layers.map { layer in .number("remaining_\(layer)") { $0.pruning?.layerRemaining?[layer] } }
                                + [.number("locality") { $0.pruning?.locality }])
    }

    public static func describe(_ row: inout ResultRow, task: PlannedTask, outcome: TaskOutcome, plan: Plan) {
        guard let point = task.payload as? PruningPoint else { return }
        let m = outcome.measures(PruningMeasures.self)
        row.payload = PruningRow(round: point.round, remainingFraction: m?.remainingFraction, layerRemaining: m?.layerRemaining,
                                 locality: m?.locality, maskImages: m?.maskImages)
        row.mask = point.method
    }

    /// How much of the network a pruned round keeps.
    public static func measuredText(_ outcome: TaskOutcome, task: PlannedTask) -> String? {
        guard task.kind != .train, let left = outcome.measures(PruningMeasures.self)?.remainingFraction else { return nil }
        return " left " + FixedText.of(left, places: 4)
    }

    public static func summary(_ rows: [ResultRow], statistics: StatisticsSection) -> [String] { PruningCurve.compute(rows).flatMap(\.summary) }

    public static func report(_ input: ReportInput, into m: inout Markup) { IterativePruningReport.section(input, into: &m) }
}

extension TaskExecutor {

    func trainDense(_ task: PlannedTask) throws -> (TaskOutcome, Data?) {
        let data = try splits(task.dataset, model: task.model)
        let network = try build(task.model, for: data, seed: task.seed)
        let (round, reports) = try IterativePruning.trainDense(network, on: data.train, config: try config(spec.training, seed: task.seed),
                                                               rewindStep: spec.pruning.rewindStep)
        var outcome = try evaluate(network, data: data, reports: reports)
        describe(round, data: data, into: &outcome, images: false)
        return try finish(&outcome, artifact: round.file(metadata: metadata(task)))
    }

    /// IMP round k (prune the previous round's survivors by `rate`) or the one-shot control
    /// (prune the dense network straight to round k's survivor counts).
    func prune(_ task: PlannedTask, previous file: SafeTensorsFile) throws -> (TaskOutcome, Data?) {
        let data = try splits(task.dataset, model: task.model)
        let previous = try PruningRound(file: file, path: task.dependencies[0])
        var keep: [String: Int] = [:]
        for (name, mask) in previous.masks {
            keep[name] = task.kind == .prune
                ? Pruning.survivors(pruning: spec.pruning.rate, of: Pruning.survivingCount(mask))
                : Pruning.survivorSchedule(total: mask.count, rate: spec.pruning.rate, rounds: (task.payload as? PruningPoint)?.round ?? 1).last ?? mask.count
        }
        let masks = try IterativePruning.nextMasks(after: previous, keep: keep, minConnectedUnits: spec.pruning.minConnectedUnits)
        let (round, reports) = try IterativePruning.retrain(from: previous, masks: masks, on: data.train,
                                                            config: try config(spec.training, seed: task.seed),
                                                            rewindStep: spec.pruning.rewindStep)
        var outcome = try evaluate(round.network, data: data, reports: reports)
        describe(round, data: data, into: &outcome, images: true)
        return try finish(&outcome, artifact: round.file(metadata: metadata(task)))
    }

    func describe(_ round: PruningRound, data: DatasetSplits, into outcome: inout TaskOutcome, images: Bool) {
        var m = PruningMeasures(remainingFraction: round.remainingFraction,
                                layerRemaining: Dictionary(round.remainingFractions, uniquingKeysWith: { a, _ in a }))
        defer { outcome.measures = m }
        guard let first = round.masks.first?.1 else { return }
        m.locality = Locality.score(mask: first, inputShape: data.train.shape)
        if images, spec.pruning.maskImages > 0 {
            m.maskImages = Locality.mostConnected(mask: first, inputShape: data.train.shape, count: spec.pruning.maskImages)
        }
    }
}

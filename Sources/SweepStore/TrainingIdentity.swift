import Datasets
import Foundation
import SweepCore
import SweepFile
import SweepPlan
import TensorEngine

/// Everything that decides the bits of a training task's checkpoint and of the outcome it
/// reports, in canonical form: its hash is the task's key in the training store. A sweep file
/// reordered, or another study training the same network, gives the same identity; a changed
/// setting, seed, dataset byte or engine gives another.
public struct TrainingIdentity: Codable, Equatable, Sendable {
    /// Raised whenever the engine's arithmetic changes the bits a training produces, so that a
    /// store never serves a network the current engine would not train. `TrainingBitsTests`
    /// trains a tiny network and fails, telling to raise this, when its checkpoint's hash moves.
    public static let bitsVersion = 1
    /// The kind of arithmetic this machine does (`ArithmeticKind`).
    public static var engine: String { ArithmeticKind.current }

    public var bits = TrainingIdentity.bitsVersion
    public var engine = TrainingIdentity.engine
    /// The task's key: it is written into the checkpoint and draws the seed.
    public var task: String
    public var seed: UInt64
    public var model: String
    /// The training and test splits as a worker sees them (every pixel after preprocessing,
    /// derivation, limits and normalisation; every label; the augmentation).
    public var data: String
    public var training: TrainingSection
    /// The study's own settings that change the training (IMP's rewind step ...), or "".
    public var recipe: String
    /// The test split's batch size: the test loss a training reports depends on it.
    public var evaluationBatch: Int

    /// The store key: 32 hex digits of the identity's canonical JSON.
    public var key: String {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        var f = Fingerprint()
        f.add(String(decoding: (try? e.encode(self)) ?? Data(), as: UTF8.self))
        return f.hex
    }

    /// The identities of `plan`'s trainings that are not in `done`, by task key: every `.train`
    /// task whose study stores its trainings. Reads each dataset once (on this process).
    public static func of(_ plan: Plan, except done: Set<String> = []) throws -> [String: TrainingIdentity] {
        let spec = plan.spec
        let reader = TaskExecutor(spec: spec)
        var fingerprints: [String: String] = [:]
        var identities: [String: TrainingIdentity] = [:]
        for task in plan.tasks where task.kind == .train && !done.contains(task.key) {
            guard let recipe = spec.studyType.trainingRecipe(task, spec: spec) else { continue }
            let normalisation = spec.normalizations[task.model].map { "\($0.mean) \($0.std)" } ?? ""
            let dataKey = "\(task.dataset) \(normalisation)"
            if fingerprints[dataKey] == nil {
                let splits = try reader.splits(task.dataset, model: task.model)
                var f = Fingerprint()
                f.add(splits.train.fingerprint.hex)
                f.add(splits.test.fingerprint.hex)
                f.add(String(describing: splits.train.augmentation))
                fingerprints[dataKey] = f.hex
            }
            identities[task.key] = TrainingIdentity(task: task.key, seed: task.seed, model: task.model, data: fingerprints[dataKey]!,
                                                    training: recipe.training, recipe: recipe.extra, evaluationBatch: spec.evaluation.batchSize)
        }
        return identities
    }
}

import Foundation
import SweepCore
import SweepFile
import SweepPlan

/// What `sweep plan` says of the training store: how many of the plan's trainings it holds,
/// their share of the plan's cost, and how long they took when they were trained.
public struct StoreForecast: Encodable, Sendable {
    public let path: String
    public let trainings: Int
    public let stored: Int
    /// The stored trainings' share of the plan's cost model.
    public let savedCostShare: Double
    /// What the stored trainings took to train (their recorded seconds).
    public let storedSeconds: Double
    /// Why the store could not be asked (a dataset this machine cannot read), if so.
    public var problem: String?

    enum CodingKeys: String, CodingKey {
        case path, trainings, stored, problem
        case savedCostShare = "saved_cost_share", storedSeconds = "stored_seconds"
    }

    /// The forecast for `plan` (nil: the store is off, or the plan trains nothing). A dataset
    /// that cannot be read here leaves the forecast with its problem: a plan never fails for it.
    public static func of(_ plan: Plan, disabled: Bool) -> StoreForecast? {
        guard let store = TrainingStore.resolve(disabled: disabled, setting: plan.spec.cache),
              plan.tasks.contains(where: { $0.kind == .train }) else { return nil }
        let identities: [String: TrainingIdentity]
        do { identities = try TrainingIdentity.of(plan) } catch {
            var unknown = StoreForecast(path: store.root.path, trainings: 0, stored: 0, savedCostShare: 0, storedSeconds: 0)
            unknown.problem = "\(error)"
            return unknown
        }
        guard !identities.isEmpty else { return nil }
        var stored = 0, cost = 0.0, seconds = 0.0
        for (key, identity) in identities {
            guard let record = store.record(identity.key) else { continue }
            stored += 1
            cost += plan[key]?.cost ?? 0
            seconds += record.outcome.seconds
        }
        return StoreForecast(path: store.root.path, trainings: identities.count, stored: stored,
                             savedCostShare: cost / max(plan.totalCost, 1), storedSeconds: seconds)
    }

    /// The plan's lines.
    public var lines: [String] {
        if let problem { return ["training store \(path): cannot tell which trainings it holds (\(problem))"] }
        let n = trainings == 1 ? "training" : "trainings"
        guard stored > 0 else { return ["training store \(path): holds none of the \(trainings) \(n) yet (each is added when it finishes)"] }
        return ["training store \(path): holds \(stored) of the \(trainings) \(n), "
                + String(format: "%.1f%%", 100 * savedCostShare) + " of the cost (they took \(ProgressText.duration(storedSeconds)) to train); "
                + "sweep run takes them from there (--no-cache: trains them again)"]
    }
}

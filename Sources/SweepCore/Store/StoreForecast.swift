import Foundation

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

    enum CodingKeys: String, CodingKey {
        case path, trainings, stored
        case savedCostShare = "saved_cost_share", storedSeconds = "stored_seconds"
    }

    /// The forecast for `plan` (nil: the store is off, or the plan trains nothing).
    public static func of(_ plan: Plan, disabled: Bool) throws -> StoreForecast? {
        guard let store = TrainingStore.resolve(disabled: disabled, setting: plan.spec.cache) else { return nil }
        let identities = try TrainingIdentity.of(plan)
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
        let n = trainings == 1 ? "training" : "trainings"
        guard stored > 0 else { return ["training store \(path): holds none of the \(trainings) \(n) yet (each is added when it finishes)"] }
        return ["training store \(path): holds \(stored) of the \(trainings) \(n), "
                + String(format: "%.1f%%", 100 * savedCostShare) + " of the cost (they took \(ProgressText.duration(storedSeconds)) to train); "
                + "sweep run takes them from there (--no-cache: trains them again)"]
    }
}

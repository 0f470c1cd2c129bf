import TensorEngine

/// The training hyperparameters' defaults, defined once: the engine's `TrainingConfig`, a sweep
/// file's `training:` section and `sweep train`'s flags all take theirs from here.
public enum TrainingDefaults {
    public static let epochs = 15
    public static let batchSize = 128
    public static let learningRate: Float = 0.1
    public static let momentum: Float = 0.9
    public static let weightDecay: Float = 5e-4
    public static let nesterov = false
    /// In the sweep file's spelling (`LearningRateSchedule(text:)`).
    public static let schedule = "cosine"
}

/// Hyper-parameters of one training run (SGD), as a typed record.
public struct TrainingConfig: Equatable, Sendable {
    public var epochs: Int
    public var batchSize: Int
    public var learningRate: Float
    public var momentum: Float
    public var weightDecay: Float
    public var nesterov: Bool
    public var schedule: LearningRateSchedule
    /// Seeds the batch order (weights are seeded when the network is built).
    public var seed: UInt64

    public init(epochs: Int = TrainingDefaults.epochs, batchSize: Int = TrainingDefaults.batchSize,
                learningRate: Float = TrainingDefaults.learningRate, momentum: Float = TrainingDefaults.momentum,
                weightDecay: Float = TrainingDefaults.weightDecay, nesterov: Bool = TrainingDefaults.nesterov,
                schedule: LearningRateSchedule = LearningRateSchedule(text: TrainingDefaults.schedule)!, seed: UInt64 = 0) {
        self.epochs = epochs
        self.batchSize = batchSize
        self.learningRate = learningRate
        self.momentum = momentum
        self.weightDecay = weightDecay
        self.nesterov = nesterov
        self.schedule = schedule
        self.seed = seed
    }
}

extension TrainingConfig {
    /// Every field, exactly (floats by their bits): equal fingerprints, the same training.
    public var fingerprint: String {
        [String(epochs), String(batchSize), String(learningRate.bitPattern, radix: 16), String(momentum.bitPattern, radix: 16),
         String(weightDecay.bitPattern, radix: 16), String(nesterov), schedule.text, String(seed)].joined(separator: ",")
    }
}

extension LearningRateSchedule {
    /// Parses `constant`, `cosine`, `step:EVERY:GAMMA` or `multistep:E1,E2,...:GAMMA`.
    public init?(text: String) {
        let parts = text.lowercased().split(separator: ":").map(String.init)
        switch parts.first {
        case "constant" where parts.count == 1: self = .constant
        case "cosine" where parts.count == 1: self = .cosine(minimum: 0)
        case "step" where parts.count == 3:
            guard let every = Int(parts[1]), every > 0, let gamma = Float(parts[2]) else { return nil }
            self = .step(every: every, gamma: gamma)
        case "multistep" where parts.count == 3:
            let milestones = parts[1].split(separator: ",").compactMap { Int($0) }
            guard !milestones.isEmpty, let gamma = Float(parts[2]) else { return nil }
            self = .multiStep(milestones: milestones, gamma: gamma)
        default: return nil
        }
    }

    public var text: String {
        switch self {
        case .constant: return "constant"
        case .cosine: return "cosine"
        case let .step(every, gamma): return "step:\(every):\(gamma)"
        case let .multiStep(milestones, gamma): return "multistep:\(milestones.map(String.init).joined(separator: ",")):\(gamma)"
        }
    }
}

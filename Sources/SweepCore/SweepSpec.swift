import Foundation
import Studies

/// A sweep file: which networks to train, on what, and which masks to evaluate layer by layer.
///
/// Keys are snake_case in YAML. Every section but `name`, `datasets` and `models` has defaults,
/// so a minimal file is three lines.
public struct SweepSpec: Codable, Equatable, Sendable {
    public var name: String
    /// The study the sweep runs; `zeroing` (layer zeroing, Wang et al. 2020) or `noop`
    /// (empty tasks, for measuring the runner itself).
    public var study: Study
    /// Mixed into every task's seed, so a whole sweep can be re-drawn.
    public var seed: UInt64
    public var datasets: [DatasetEntry]
    public var models: [String]
    /// Training repetitions (seed0, seed1, ...): a count or an explicit list.
    public var seeds: [Int]
    public var training: TrainingSection
    public var layers: LayerSelection
    public var masks: [MaskKind]
    public var evaluation: EvaluationSection
    /// The run directory; `sweep run --output` overrides it.
    public var output: String
    /// For `study: noop`: how many empty tasks to plan.
    public var noopTasks: Int

    public enum Study: String, Codable, CaseIterable, Sendable {
        case zeroing, noop
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, study, seed, datasets, models, seeds, training, layers, masks, evaluation, output
        case noopTasks = "noop_tasks"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        study = try c.decodeIfPresent(Study.self, forKey: .study) ?? .zeroing
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? 0
        noopTasks = try c.decodeIfPresent(Int.self, forKey: .noopTasks) ?? 0
        datasets = try c.decodeIfPresent([DatasetEntry].self, forKey: .datasets) ?? []
        models = try c.decodeIfPresent([String].self, forKey: .models) ?? []
        if let count = try? c.decode(Int.self, forKey: .seeds) {
            seeds = Array(0..<count)
        } else {
            seeds = try c.decodeIfPresent([Int].self, forKey: .seeds) ?? [0]
        }
        training = try c.decodeIfPresent(TrainingSection.self, forKey: .training) ?? TrainingSection()
        layers = try c.decodeIfPresent(LayerSelection.self, forKey: .layers) ?? .all
        masks = try c.decodeIfPresent([MaskKind].self, forKey: .masks) ?? [.zeroKernel, .zeroBranch]
        evaluation = try c.decodeIfPresent(EvaluationSection.self, forKey: .evaluation) ?? EvaluationSection()
        output = try c.decodeIfPresent(String.self, forKey: .output) ?? "runs/\(name)"
    }
}

/// One dataset of the sweep: a name (`fashion-mnist`) or a mapping with a directory and limits.
public struct DatasetEntry: Codable, Equatable, Sendable {
    public var name: String
    public var dataDir: String?
    public var trainLimit: Int?
    public var testLimit: Int?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name
        case dataDir = "data_dir"
        case trainLimit = "train_limit"
        case testLimit = "test_limit"
    }

    public init(name: String, dataDir: String? = nil, trainLimit: Int? = nil, testLimit: Int? = nil) {
        self.name = name
        self.dataDir = dataDir
        self.trainLimit = trainLimit
        self.testLimit = testLimit
    }

    public init(from decoder: Decoder) throws {
        if let name = try? decoder.singleValueContainer().decode(String.self) {
            self.init(name: name)
            return
        }
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(name: try c.decode(String.self, forKey: .name),
                  dataDir: try c.decodeIfPresent(String.self, forKey: .dataDir),
                  trainLimit: try c.decodeIfPresent(Int.self, forKey: .trainLimit),
                  testLimit: try c.decodeIfPresent(Int.self, forKey: .testLimit))
    }
}

/// SGD settings shared by every training task of the sweep.
public struct TrainingSection: Codable, Equatable, Sendable {
    public var epochs = 15
    public var batchSize = 128
    public var learningRate: Float = 0.1
    public var momentum: Float = 0.9
    public var weightDecay: Float = 5e-4
    public var nesterov = false
    public var schedule = "cosine"

    public init() {}

    enum CodingKeys: String, CodingKey, CaseIterable {
        case epochs, momentum, nesterov, schedule
        case batchSize = "batch_size"
        case learningRate = "learning_rate"
        case weightDecay = "weight_decay"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        epochs = try c.decodeIfPresent(Int.self, forKey: .epochs) ?? epochs
        batchSize = try c.decodeIfPresent(Int.self, forKey: .batchSize) ?? batchSize
        learningRate = try c.decodeIfPresent(Float.self, forKey: .learningRate) ?? learningRate
        momentum = try c.decodeIfPresent(Float.self, forKey: .momentum) ?? momentum
        weightDecay = try c.decodeIfPresent(Float.self, forKey: .weightDecay) ?? weightDecay
        nesterov = try c.decodeIfPresent(Bool.self, forKey: .nesterov) ?? nesterov
        schedule = try c.decodeIfPresent(String.self, forKey: .schedule) ?? schedule
    }
}

/// How masked networks are evaluated.
public struct EvaluationSection: Codable, Equatable, Sendable {
    public var batchSize = 256
    /// Training batches used to re-estimate BN statistics for `zeroKernelRecalibrated`.
    public var recalibrationBatches = 20
    /// Memory per worker for reusing the activations of unmasked layers across mask
    /// evaluations of the same network (0: evaluate every mask with a full forward pass).
    public var prefixCacheMB = 512

    public init() {}

    enum CodingKeys: String, CodingKey, CaseIterable {
        case batchSize = "batch_size"
        case recalibrationBatches = "recalibration_batches"
        case prefixCacheMB = "prefix_cache_mb"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        batchSize = try c.decodeIfPresent(Int.self, forKey: .batchSize) ?? batchSize
        recalibrationBatches = try c.decodeIfPresent(Int.self, forKey: .recalibrationBatches) ?? recalibrationBatches
        prefixCacheMB = try c.decodeIfPresent(Int.self, forKey: .prefixCacheMB) ?? prefixCacheMB
    }
}

/// Which units to mask: `all`, or a list of unit names and glob patterns (`stage*.block*.conv1`).
public enum LayerSelection: Codable, Equatable, Sendable {
    case all
    case patterns([String])

    public init(from decoder: Decoder) throws {
        let single = try decoder.singleValueContainer()
        if let text = try? single.decode(String.self) {
            self = text == "all" ? .all : .patterns([text])
        } else {
            self = .patterns(try single.decode([String].self))
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .all: try c.encode("all")
        case let .patterns(p): try c.encode(p)
        }
    }
}

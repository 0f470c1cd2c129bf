import Datasets
import Foundation
import Studies
import TensorEngine

/// A sweep file: which networks to train, on what, and which masks to evaluate layer by layer.
///
/// Keys are snake_case in YAML. Every section but `name`, `datasets` and `models` has defaults,
/// so a minimal file is three lines.
public struct SweepSpec: Codable, Equatable, Sendable {
    public var name: String
    /// The study the sweep runs (the README's study table): `zeroing` (Wang et al. 2020), `reuse`
    /// (Wang, Cheng et al. 2020), `imp` (Pellegrini & Biroli 2021), `distill` (Urban et al.
    /// 2017), or `noop` (empty tasks, for measuring the runner itself).
    public var study: Study
    /// Mixed into every task's seed, so a whole sweep can be re-drawn.
    public var seed: UInt64
    public var datasets: [DatasetEntry]
    public var models: [String]
    /// Networks trained elsewhere, by model name: safetensors files (PyTorch state_dicts or ours),
    /// each taking a seed's place (`models: [{name: resnet20, checkpoints: [a.safetensors]}]`).
    public var checkpoints: [String: [String]] = [:]
    /// Input normalisation a model's networks expect (pixels / 255), instead of the training
    /// split's mean and standard deviation.
    public var normalizations: [String: Normalisation] = [:]
    /// Content hashes of the checkpoint files, by path, once the coordinator has read them
    /// (`ImportedNetworks.hashFiles`); they name the networks in task keys.
    public var checkpointHashes: [String: String] = [:]
    /// Sections the file gives that its study does not read (told to the user, not an error).
    public var ignoredSections: [String] = []

    /// The top-level sections each study reads (besides name, study, seed, datasets, models, seeds, output).
    public static let sections: [Study: Set<String>] = [
        .zeroing: ["training", "layers", "masks", "evaluation"],
        .reuse: ["training", "layers", "reuse", "evaluation"],
        .imp: ["training", "pruning", "evaluation"],
        .distill: ["training", "distillation", "evaluation"],
        .noop: ["noop_tasks"],
    ]
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
    public var pruning: PruningSection
    public var reuse: ReuseSection
    public var distillation: DistillationSection

    /// Bounds on counts that multiply into the plan's size.
    public static let maxSeeds = 10_000
    public static let maxNoopTasks = 10_000_000

    public enum Study: String, Codable, CaseIterable, Sendable {
        case zeroing, reuse, imp, distill, noop
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, study, seed, datasets, models, seeds, training, layers, masks, evaluation, output, pruning, reuse, distillation
        case noopTasks = "noop_tasks"
    }

    /// The spec as results.json embeds it: the common fields and only the sections its study reads.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(study, forKey: .study)
        try c.encode(seed, forKey: .seed)
        try c.encode(output, forKey: .output)
        if study == .noop { try c.encode(noopTasks, forKey: .noopTasks); return }
        try c.encode(datasets, forKey: .datasets)
        try c.encode(models, forKey: .models)
        try c.encode(seeds, forKey: .seeds)
        let used = SweepSpec.sections[study] ?? []
        if used.contains("training") { try c.encode(training, forKey: .training) }
        if used.contains("layers") { try c.encode(layers, forKey: .layers) }
        if used.contains("masks") { try c.encode(masks, forKey: .masks) }
        if used.contains("evaluation") { try c.encode(evaluation, forKey: .evaluation) }
        if used.contains("pruning") { try c.encode(pruning, forKey: .pruning) }
        if used.contains("reuse") { try c.encode(reuse, forKey: .reuse) }
        if used.contains("distillation") { try c.encode(distillation, forKey: .distillation) }
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        study = try c.decodeIfPresent(Study.self, forKey: .study) ?? .zeroing
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? 0
        noopTasks = try c.decodeIfPresent(Int.self, forKey: .noopTasks) ?? 0
        datasets = try c.decodeIfPresent([DatasetEntry].self, forKey: .datasets) ?? []
        let entries = try c.decodeIfPresent([ModelEntry].self, forKey: .models) ?? []
        models = entries.map(\.name)
        for e in entries {
            if let files = e.checkpoints { checkpoints[e.name] = files }
            if let n = e.normalization { normalizations[e.name] = Normalisation(mean: n.mean, std: n.std) }
        }
        if let count = try? c.decode(Int.self, forKey: .seeds) {
            guard (1...SweepSpec.maxSeeds).contains(count) else {
                throw DecodingError.dataCorruptedError(forKey: .seeds, in: c, debugDescription:
                    "seeds is a count (1...\(SweepSpec.maxSeeds)) or a list of non-negative integers; got \(count)")
            }
            seeds = Array(0..<count)
        } else if let list = try? c.decodeIfPresent([Int].self, forKey: .seeds) {
            seeds = list
        } else if !c.contains(.seeds) {
            seeds = [0]
        } else {
            throw DecodingError.dataCorruptedError(forKey: .seeds, in: c, debugDescription:
                "seeds is a count (e.g. 3) or a list of non-negative integers (e.g. [0, 4])")
        }
        training = try c.decodeIfPresent(TrainingSection.self, forKey: .training) ?? TrainingSection()
        layers = try c.decodeIfPresent(LayerSelection.self, forKey: .layers) ?? .all
        masks = try c.decodeIfPresent([MaskKind].self, forKey: .masks) ?? [.zeroKernel, .zeroBranch]
        evaluation = try c.decodeIfPresent(EvaluationSection.self, forKey: .evaluation) ?? EvaluationSection()
        output = try c.decodeIfPresent(String.self, forKey: .output) ?? "runs/\(name)"
        pruning = try c.decodeIfPresent(PruningSection.self, forKey: .pruning) ?? PruningSection()
        reuse = try c.decodeIfPresent(ReuseSection.self, forKey: .reuse) ?? ReuseSection()
        distillation = try c.decodeIfPresent(DistillationSection.self, forKey: .distillation) ?? DistillationSection()
    }
}

/// One model of the sweep: a name (`resnet20`), or a mapping naming networks trained elsewhere
/// and the input normalisation they expect.
public struct ModelEntry: Decodable, Equatable, Sendable {
    public var name: String
    public var checkpoints: [String]?
    public var normalization: NormalizationEntry?

    public struct NormalizationEntry: Codable, Equatable, Sendable {
        public var mean: [Float]
        public var std: [Float]
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case name, checkpoints, normalization }

    public init(from decoder: Decoder) throws {
        if let name = try? decoder.singleValueContainer().decode(String.self) {
            self.name = name
            return
        }
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        checkpoints = try c.decodeIfPresent([String].self, forKey: .checkpoints)
        normalization = try c.decodeIfPresent(NormalizationEntry.self, forKey: .normalization)
    }
}

/// One dataset of the sweep: a name (`fashion-mnist`) or a mapping with a directory and limits.
/// A mapping with `base` makes a new domain from another dataset: some of its classes
/// (relabelled 0..k-1) and/or a pixel transform (`rotate90`, `rotate180`, `flip`, `invert`).
public struct DatasetEntry: Codable, Equatable, Sendable {
    public var name: String
    public var dataDir: String?
    public var trainLimit: Int?
    public var testLimit: Int?
    public var base: String?
    public var classes: [Int]?
    public var transform: ImageTransform?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, base, classes, transform
        case dataDir = "data_dir"
        case trainLimit = "train_limit"
        case testLimit = "test_limit"
    }

    public init(name: String, dataDir: String? = nil, trainLimit: Int? = nil, testLimit: Int? = nil,
                base: String? = nil, classes: [Int]? = nil, transform: ImageTransform? = nil) {
        self.name = name
        self.dataDir = dataDir
        self.trainLimit = trainLimit
        self.testLimit = testLimit
        self.base = base
        self.classes = classes
        self.transform = transform
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
                  testLimit: try c.decodeIfPresent(Int.self, forKey: .testLimit),
                  base: try c.decodeIfPresent(String.self, forKey: .base),
                  classes: try c.decodeIfPresent([Int].self, forKey: .classes),
                  transform: try c.decodeIfPresent(ImageTransform.self, forKey: .transform))
    }

    /// The dataset files are read from: `base` for a derived domain, else the name itself.
    public var source: String { base ?? name }
    public var derivation: Derivation { Derivation(classes: classes, transform: transform) }

    /// Shape, classes and split sizes without reading the data (for costs and checks).
    public var description: (shape: [Int], classes: Int, train: Int, test: Int) {
        var d = DatasetCatalog.describe(source)
        if let classes {
            d.train = d.train * classes.count / max(d.classes, 1)
            d.test = d.test * classes.count / max(d.classes, 1)
            d.classes = classes.count
        }
        if transform == .rotate90 { d.shape = [d.shape[0], d.shape[2], d.shape[1]] }
        d.train = min(trainLimit ?? d.train, d.train)
        d.test = min(testLimit ?? d.test, d.test)
        return d
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

extension TrainingSection {
    /// What is wrong with these settings, as (field, requirement) pairs such as ("epochs", "must
    /// be between 1 and 100000"): the one definition of valid training hyperparameters, used by
    /// sweep files (`training.epochs must ...`) and `sweep train` (`--epochs must ...`) alike.
    public var problems: [(field: String, requirement: String)] {
        var out: [(String, String)] = []
        if !(1...100_000).contains(epochs) { out.append(("epochs", "must be between 1 and 100000")) }
        if !(2...65536).contains(batchSize) { out.append(("batch_size", "must be between 2 and 65536")) }
        if !(learningRate.isFinite && learningRate > 0) { out.append(("learning_rate", "must be a positive number")) }
        if !(momentum.isFinite && momentum >= 0 && momentum < 1) { out.append(("momentum", "must be at least 0 and below 1")) }
        if !(weightDecay.isFinite && weightDecay >= 0) { out.append(("weight_decay", "must be 0 or a positive number")) }
        if LearningRateSchedule(text: schedule) == nil {
            out.append(("schedule", "'\(schedule)' is not cosine, constant, step:EVERY:GAMMA or multistep:E1,E2:GAMMA"))
        }
        return out
    }
}

/// Iterative magnitude pruning (`study: imp`).
public struct PruningSection: Codable, Equatable, Sendable {
    /// Fraction of each layer's remaining weights removed per round (the readout is never pruned).
    public var rate = 0.3
    /// Pruning rounds after the dense training (round 0); 0.7^k of the weights remain after k.
    public var rounds = 5
    /// Optimiser step whose weights survivors are rewound to (0: the initialisation).
    public var rewindStep = 100
    /// IMP stops when a layer would keep fewer connected units than this.
    public var minConnectedUnits = 4
    /// Also prune the dense network once to each round's sparsity (the control).
    public var oneShot = true
    /// First-layer masks kept per round for the report's pictures (most-connected units).
    public var maskImages = 16

    public init() {}

    enum CodingKeys: String, CodingKey, CaseIterable {
        case rate, rounds
        case rewindStep = "rewind_step"
        case minConnectedUnits = "min_connected_units"
        case oneShot = "one_shot"
        case maskImages = "mask_images"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        rate = try c.decodeIfPresent(Double.self, forKey: .rate) ?? rate
        rounds = try c.decodeIfPresent(Int.self, forKey: .rounds) ?? rounds
        rewindStep = try c.decodeIfPresent(Int.self, forKey: .rewindStep) ?? rewindStep
        minConnectedUnits = try c.decodeIfPresent(Int.self, forKey: .minConnectedUnits) ?? minConnectedUnits
        oneShot = try c.decodeIfPresent(Bool.self, forKey: .oneShot) ?? oneShot
        maskImages = try c.decodeIfPresent(Int.self, forKey: .maskImages) ?? maskImages
    }
}

/// Parameter reuse (`study: reuse`).
public struct ReuseSection: Codable, Equatable, Sendable {
    /// Source → target dataset pairs (names from `datasets`).
    public var pairs: [ReusePair] = []
    /// First-k prefixes of the conv layers to reuse together (single layers come from `layers`).
    public var prefixes: [Int] = []
    /// Reused kernels kept fixed (`frozen`) or trained further (`finetuned`).
    public var modes: [ReuseMode] = [.frozen, .finetuned]

    public init() {}

    enum CodingKeys: String, CodingKey, CaseIterable { case pairs, prefixes, modes }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        pairs = try c.decodeIfPresent([ReusePair].self, forKey: .pairs) ?? pairs
        prefixes = try c.decodeIfPresent([Int].self, forKey: .prefixes) ?? prefixes
        modes = try c.decodeIfPresent([ReuseMode].self, forKey: .modes) ?? modes
    }
}

public struct ReusePair: Codable, Equatable, Sendable {
    public var source: String
    public var target: String

    public init(source: String, target: String) {
        self.source = source
        self.target = target
    }
}

public enum ReuseMode: String, Codable, CaseIterable, Sendable {
    case frozen, finetuned
}

/// Students distilled from a teacher (`study: distill`); `models` are the teachers.
public struct DistillationSection: Codable, Equatable, Sendable {
    /// Teachers trained per (dataset, model); their logits are averaged (an ensemble when > 1).
    public var teachers = 1
    public var convLayers = [0, 1, 2, 3, 4]
    /// Student parameter budgets; each student's width is chosen to come closest.
    public var budgets = [100_000, 400_000]
    public var losses: [DistillationLoss] = [.logits, .labels]
    /// Teacher training; defaults to `training` (which the students use).
    public var teacherTraining: TrainingSection?

    public init() {}

    enum CodingKeys: String, CodingKey, CaseIterable {
        case teachers, budgets, losses
        case convLayers = "conv_layers"
        case teacherTraining = "teacher_training"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        teachers = try c.decodeIfPresent(Int.self, forKey: .teachers) ?? teachers
        convLayers = try c.decodeIfPresent([Int].self, forKey: .convLayers) ?? convLayers
        budgets = try c.decodeIfPresent([Int].self, forKey: .budgets) ?? budgets
        losses = try c.decodeIfPresent([DistillationLoss].self, forKey: .losses) ?? losses
        teacherTraining = try c.decodeIfPresent(TrainingSection.self, forKey: .teacherTraining)
    }
}

/// What a student learns from: the teacher's logits (L2) or, as the control, the labels.
public enum DistillationLoss: String, Codable, CaseIterable, Sendable {
    case logits, labels
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

import Datasets
import Foundation
import Procedures
import Rendering
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
    /// Summaries of the imported ONNX graphs, by model, once the coordinator has read them
    /// (`ImportedNetworks.hashFiles`).
    public var graphs: [String: GraphSummary] = [:]

    /// What the coordinator found in the own-data entries' files, by dataset name (each entry's
    /// `summary`; `ImportedDatasets`).
    public var datasetSummaries: [String: DatasetSummary] {
        get { Dictionary(datasets.compactMap { e in e.summary.map { (e.name, $0) } }, uniquingKeysWith: { a, _ in a }) }
        set { for i in datasets.indices { datasets[i].summary = newValue[datasets[i].name] } }
    }

    /// Whether `model` is an imported ONNX graph (its checkpoints are .onnx files).
    public func isGraph(_ model: String) -> Bool { checkpoints[model].map(ImportedGraphs.areGraphs) ?? false }
    /// Sections the file gives that its study does not read (told to the user, not an error).
    public var ignoredSections: [String] = []

    /// Training repetitions (seed0, seed1, ...): a count or an explicit list.
    public var seeds: [Int]
    public var training: TrainingSection
    public var layers: LayerSelection
    public var masks: [MaskKind]
    public var evaluation: EvaluationSection
    /// Interval level, trivial threshold and multiple-testing correction of the calls.
    public var statistics: StatisticsSection
    /// The run directory; `sweep run --output` overrides it.
    public var output: String
    /// Where trained networks are kept for later sweeps (`TrainingStore`): a directory, or
    /// "off"; nil: `LAYERSWEEP_CACHE`, else `~/.cache/layersweep`.
    public var cache: String?
    /// The study's own section (`pruning:`, `reuse:`, ...), decoded by the study's type.
    public var studySection: StudySectionValue?

    /// Bounds on counts that multiply into the plan's size.
    public static let maxSeeds = 10_000

    public typealias Study = StudyName

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, study, seed, datasets, models, seeds, training, layers, masks, evaluation, statistics, output, cache
    }

    /// Every top-level key a sweep file may have: the common ones and each study's section.
    static var allKeys: [String] { CodingKeys.allCases.map(\.rawValue) + DeclaredStudies.sections.keys.sorted() }

    /// The sweep's own section of type `S`, or its defaults.
    public func section<S: StudySection>(_ type: S.Type) -> S { studySection?.value as? S ?? S() }

    /// The spec as results.json embeds it: the common fields and only the sections its study reads.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(study, forKey: .study)
        try c.encode(seed, forKey: .seed)
        try c.encode(output, forKey: .output)
        if declaredStudy.needsData { try encodeData(into: &c) }
        if let studySection {
            var own = encoder.container(keyedBy: SettingKey.self)
            try own.encode(StudySectionValue.Box(studySection.value), forKey: SettingKey(type(of: studySection.value).key))
        }
    }

    /// The fields of a study that trains and evaluates networks.
    private func encodeData(into c: inout KeyedEncodingContainer<CodingKeys>) throws {
        try c.encode(datasets, forKey: .datasets)
        try c.encode(models, forKey: .models)
        try c.encode(seeds, forKey: .seeds)
        let used = declaredStudy.sections
        if used.contains("training") { try c.encode(training, forKey: .training) }
        if used.contains("layers") { try c.encode(layers, forKey: .layers) }
        if used.contains("masks") { try c.encode(masks, forKey: .masks) }
        if used.contains("evaluation") { try c.encode(evaluation, forKey: .evaluation) }
        if used.contains("statistics") { try c.encode(statistics, forKey: .statistics) }
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        study = try c.decodeIfPresent(Study.self, forKey: .study) ?? DeclaredStudies.all[0].name
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? 0
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
        statistics = try c.decodeIfPresent(StatisticsSection.self, forKey: .statistics) ?? StatisticsSection()
        output = try c.decodeIfPresent(String.self, forKey: .output) ?? "runs/\(name)"
        // `cache: false` (or YAML 1.1's `off`, read as a boolean) turns the store off.
        if let on = try? c.decodeIfPresent(Bool.self, forKey: .cache) {
            cache = on ? nil : "off"
        } else if let path = try c.decodeIfPresent(String.self, forKey: .cache) {
            guard !path.isEmpty else { throw DecodingError.dataCorruptedError(forKey: .cache, in: c, debugDescription: "cache is a directory or false") }
            cache = ["off", "false", "no"].contains(path.lowercased()) ? "off" : path
        }
        if let type = declaredStudy.section {
            let own = try decoder.container(keyedBy: SettingKey.self)
            studySection = StudySectionValue(try own.decodeIfPresent(type, forKey: SettingKey(type.key)) ?? type.init())
        }
    }
}

/// A study's section, compared and encoded through its own type.
public struct StudySectionValue: Equatable, Sendable {
    public let value: any StudySection
    public init(_ value: any StudySection) { self.value = value }
    public static func == (a: StudySectionValue, b: StudySectionValue) -> Bool { a.value.isEqual(to: b.value) }

    struct Box: Encodable {
        let value: any StudySection
        init(_ value: any StudySection) { self.value = value }
        func encode(to encoder: Encoder) throws { try value.encode(to: encoder) }
    }
}

/// One model of the sweep: a name (`resnet20`), or a mapping naming networks trained elsewhere
/// and the input normalisation they expect.
public struct ModelEntry: SettingsSection, Equatable, Sendable {
    public var name = ""
    /// Files of networks trained elsewhere, each taking a seed's place.
    public var checkpoints: [String]?
    /// The input normalisation those networks expect.
    public var normalization: NormalizationEntry?

    public struct NormalizationEntry: Codable, Equatable, Sendable {
        public var mean: [Float]
        public var std: [Float]
    }

    public static let settings: [Setting<ModelEntry>] = [
        Setting("name", \.name), Setting("checkpoints", \.checkpoints), Setting("normalization", \.normalization),
    ]

    public init() {}

    /// A name alone (`- resnet20`), or a mapping that names the model and sets any of `settings`.
    public init(from decoder: Decoder) throws {
        if let name = try? decoder.singleValueContainer().decode(String.self) {
            self.name = name
            return
        }
        let c = try decoder.container(keyedBy: SettingKey.self)
        name = try c.decode(String.self, forKey: SettingKey("name"))
        for setting in Self.settings { try setting.decode(&self, c) }
    }
}

/// One dataset of the sweep: a name (`fashion-mnist`) or a mapping with a directory and limits.
/// A mapping with `base` makes a new domain from another dataset: some of its classes
/// (relabelled 0..k-1) and/or a pixel transform (`rotate90`, `rotate180`, `flip`, `invert`).
/// A mapping with `format` reads the user's own files (`imagefolder`, `npz`, `npy`, `cifar100`,
/// or `idx` / `cifar10` at a path of one's own), with torchvision-style `resize` / `center_crop`.
public struct DatasetEntry: SettingsSection, Equatable, Sendable {
    public var name: String
    public var dataDir: String?
    public var trainLimit: Int?
    public var testLimit: Int?
    public var base: String?
    public var classes: [Int]?
    public var transform: ImageTransform?
    public var format: DatasetSource.Format?
    public var train: [String]?
    public var test: [String]?
    public var labels: CIFAR100.Labels?
    public var channels: Int?
    public var layout: NumPyDataset.Layout?
    public var xKey: String?
    public var yKey: String?
    public var resize: [Int]?
    public var centerCrop: [Int]?
    /// Mean and std (pixels / 255) the networks expect; a model's own `normalization` wins.
    public var normalization: ModelEntry.NormalizationEntry?
    /// Training-time augmentation for networks layersweep trains on this dataset.
    public var augment: Augmentation?
    /// What the coordinator found when it read the files of a `format:` entry (or of the entry
    /// its `base` names): not part of the sweep file, shipped to workers with it.
    public var summary: DatasetSummary?

    public static let settings: [Setting<DatasetEntry>] = [
        Setting("name", \.name), Setting("base", \.base), Setting("classes", \.classes), Setting("transform", \.transform),
        Setting("format", \.format), Setting("train", oneOrMany: \.train), Setting("test", oneOrMany: \.test),
        Setting("labels", \.labels), Setting("channels", \.channels), Setting("layout", \.layout),
        Setting("resize", oneOrMany: \.resize), Setting("normalization", \.normalization), Setting("augment", \.augment),
        Setting("data_dir", \.dataDir), Setting("train_limit", \.trainLimit), Setting("test_limit", \.testLimit),
        Setting("x_key", \.xKey), Setting("y_key", \.yKey), Setting("center_crop", oneOrMany: \.centerCrop),
    ]

    public init() { name = "" }

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

    /// A name alone (`- fashion-mnist`), or a mapping that names the dataset and sets any of
    /// `settings`.
    public init(from decoder: Decoder) throws {
        if let name = try? decoder.singleValueContainer().decode(String.self) {
            self.init(name: name)
            return
        }
        let c = try decoder.container(keyedBy: SettingKey.self)
        self.init(name: try c.decode(String.self, forKey: SettingKey("name")))
        for setting in Self.settings { try setting.decode(&self, c) }
    }

    /// How this entry's own files are read (nil: a built-in name, or derived from `base`).
    public var declaredSource: DatasetSource? {
        guard let format else { return nil }
        let single = [.idx, .cifar10, .cifar100].contains(format)
        return DatasetSource(format: format, train: single ? (dataDir.map { [$0] } ?? train ?? []) : (train ?? []),
                             test: single ? nil : test, labels: labels, channels: channels, layout: layout,
                             imagesKey: xKey, labelsKey: yKey, preprocessing: preprocessing)
    }

    public var preprocessing: Preprocessing { Preprocessing(resize: resize, centerCrop: centerCrop) }

    /// The dataset's segment of task keys: its name, and for data read from the user's files the
    /// start of their fingerprint, so results of changed files are never taken for the new ones.
    public var keyName: String { summary.map { "\(name)@\($0.fingerprint.prefix(12))" } ?? name }

    /// The dataset files are read from: `base` for a derived domain, else the name itself.
    public var source: String { base ?? name }
    public var derivation: Derivation { Derivation(classes: classes, transform: transform) }

    /// Shape, classes and split sizes without reading the data (for costs and checks).
    public var description: (shape: [Int], classes: Int, train: Int, test: Int) {
        var d = summary.map { (shape: $0.shape, classes: $0.classes, train: $0.train, test: $0.test) } ?? DatasetCatalog.describe(source)
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

/// A dataset read from the user's files, as the coordinator found it: the fingerprint of the
/// preprocessed images and labels of both splits, and their shape and sizes (for costs).
public struct DatasetSummary: Codable, Equatable, Sendable {
    public var fingerprint: String
    public var shape: [Int]
    public var classes: Int
    public var train: Int
    public var test: Int

    public init(fingerprint: String, shape: [Int], classes: Int, train: Int, test: Int) {
        (self.fingerprint, self.shape, self.classes, self.train, self.test) = (fingerprint, shape, classes, train, test)
    }
}

/// SGD settings shared by every training task of the sweep.
public struct TrainingSection: SettingsSection, Equatable, Sendable {
    public var epochs = TrainingDefaults.epochs
    public var batchSize = TrainingDefaults.batchSize
    public var learningRate = TrainingDefaults.learningRate
    public var momentum = TrainingDefaults.momentum
    public var weightDecay = TrainingDefaults.weightDecay
    public var nesterov = TrainingDefaults.nesterov
    public var schedule = TrainingDefaults.schedule

    public init() {}

    public static let settings: [Setting<TrainingSection>] = [
        Setting("epochs", \.epochs), Setting("batch_size", \.batchSize), Setting("learning_rate", \.learningRate),
        Setting("momentum", \.momentum), Setting("weight_decay", \.weightDecay), Setting("nesterov", \.nesterov),
        Setting("schedule", \.schedule),
    ]
}

extension TrainingSection {
    /// The settings as a sweep file's `training:` writes them, on one line.
    public var settingsText: String {
        "epochs: \(epochs), batch_size: \(batchSize), learning_rate: \(learningRate), momentum: \(momentum), "
            + "weight_decay: \(weightDecay), nesterov: \(nesterov), schedule: \(schedule)"
    }

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

/// How masked networks are evaluated.
public struct EvaluationSection: SettingsSection, Equatable, Sendable {
    public var batchSize = 256
    /// Training batches used to re-estimate BN statistics for `zeroKernelRecalibrated`.
    public var recalibrationBatches = 20
    /// Memory per worker for reusing the activations of unmasked layers across mask
    /// evaluations of the same network (0: evaluate every mask with a full forward pass). Kept
    /// compact, 256 MB holds what 380 MB of plain activations would, and a zeroing sweep of a
    /// ResNet-20 on 10,000 images ran as fast with it as with 512 MB.
    public var prefixCacheMB = 256

    public init() {}

    public static let settings: [Setting<EvaluationSection>] = [
        Setting("batch_size", \.batchSize), Setting("recalibration_batches", \.recalibrationBatches),
        Setting("prefix_cache_mb", \.prefixCacheMB),
    ]
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

extension SweepSpec {
    /// The entry whose files `entry` is read from: itself, or the sweep entry its `base` names.
    public func sourceEntry(of entry: DatasetEntry) -> DatasetEntry? {
        if entry.format != nil { return entry }
        guard let base = entry.base, let named = datasets.first(where: { $0.name == base && $0.format != nil }) else { return nil }
        return named
    }
}

extension SweepSpec {
    /// The task-key segment of the `index`th network listed under a model's `checkpoints:`,
    /// in `seedN`'s place: `ckpt-` and the file's hash, once known.
    public func checkpointSegment(file: String, index: Int) -> String {
        checkpointHashes[file].map { "ckpt-" + $0.prefix(12) } ?? "ckpt\(index)"
    }
}

import Datasets
import Foundation
import Models
import Procedures
import Rendering
import TensorEngine
import Yams

/// A sweep file that cannot be run: the file, the line, the field, and what to change.
public struct SpecError: Error, CustomStringConvertible, Equatable {
    public let file: String
    public let line: Int?
    public let field: String?
    public let message: String

    public var description: String {
        var where_ = file
        if let line { where_ += ":\(line)" }
        if let field, !field.isEmpty { where_ += ": \(field)" }
        return "\(where_): \(message)"
    }
}

/// Reads and checks sweep files: YAML through Yams into `SweepSpec`, then every name checked
/// against what exists, each error pointing at its line.
public enum SpecLoader {
    /// Loads, decodes and validates a sweep file.
    /// `overrides` are `key=value` command-line changes to the file's fields (`SpecOverrides`);
    /// the text returned has them applied.
    public static func load(_ path: String, overrides: [String] = []) throws -> (spec: SweepSpec, text: String) {
        let data: Data
        do { data = try RegularFile.read(path, what: "sweep file") } catch let error as FileProblem {
            throw SpecError(file: path, line: nil, field: nil, message: error.problem)
        }
        let original = String(decoding: data, as: UTF8.self)
        let text = try SpecOverrides.apply(overrides, to: original, file: path)
        do {
            return (try parse(text, file: path), text)
        } catch let error as SpecError {
            let explained = SpecOverrides.explain(error, overrides: overrides)
            guard !overrides.isEmpty, explained == error else { throw explained }
            // Not an overridden field, but its line is one of the re-serialised text: the file's
            // own error at the file's line, or the field without a line.
            var own: SpecError?
            do { _ = try parse(original, file: path) } catch { own = error as? SpecError }
            if let own, own.field == error.field { throw own }
            throw SpecError(file: path, line: nil, field: error.field, message: error.message)
        }
    }

    /// Decodes and validates sweep-file text; `file` is only used in messages.
    public static func parse(_ text: String, file: String) throws -> SweepSpec {
        let root: Node
        do {
            guard let node = try Yams.compose(yaml: text) else {
                throw SpecError(file: file, line: nil, field: nil, message: "the sweep file is empty")
            }
            root = node
        } catch let error as YamlError {
            throw yamlError(error, file: file)
        }
        let tree = NodeTree(root: root, file: file)
        guard root.mapping != nil else { throw tree.error([], "a sweep file is a mapping of fields (name:, datasets:, models:, ...)") }
        try tree.checkKeys([], allowed: SweepSpec.allKeys)
        try tree.checkKeys([.key("training")], allowed: TrainingSection.keys)
        try tree.checkKeys([.key("evaluation")], allowed: EvaluationSection.keys)
        try tree.checkKeys([.key("statistics")], allowed: StatisticsSection.keys)
        for study in DeclaredStudies.all {
            if let section = study.section { try tree.checkKeys([.key(section.key)], allowed: section.keys) }
            try study.checkKeys(tree)
        }
        if let models = tree.node(at: [.key("models")])?.sequence {
            for i in 0..<models.count where models[i].mapping != nil {
                try tree.checkKeys([.key("models"), .index(i)], allowed: ModelEntry.keys)
                try tree.checkKeys([.key("models"), .index(i), .key("normalization")], allowed: ["mean", "std"])
            }
        }
        if let datasets = tree.node(at: [.key("datasets")])?.sequence {
            for i in 0..<datasets.count where datasets[i].mapping != nil {
                try tree.checkKeys([.key("datasets"), .index(i)], allowed: DatasetEntry.keys)
            }
        }
        var spec: SweepSpec
        do {
            spec = try YAMLDecoder().decode(SweepSpec.self, from: root)
        } catch let error as DecodingError {
            throw tree.decodingError(error)
        }
        try validate(spec, tree: tree)
        let given = Set(root.mapping?.keys.compactMap(\.string) ?? [])
        let optional = Set(["training", "layers", "masks", "evaluation", "statistics"] + DeclaredStudies.all.flatMap { $0.sections })
        spec.ignoredSections = given.intersection(optional).subtracting(spec.declaredStudy.sections).sorted()
        return spec
    }

    // MARK: - Semantic checks

    /// The checks in the order a user meets their errors: the name, the data and models, the
    /// training and statistics, the study's own, then evaluation, masks and layers.
    static func validate(_ spec: SweepSpec, tree: NodeTree) throws {
        guard !spec.name.isEmpty, spec.name.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }) else {
            throw tree.error([.key("name")], "name must be non-empty letters, digits, '-', '_' or '.' (it names the run directory)")
        }
        let study = spec.declaredStudy
        guard study.needsData else {
            try checkStatistics(spec, tree: tree)
            try study.validate(spec, tree: tree)
            return
        }
        guard !spec.datasets.isEmpty else { throw tree.error([.key("datasets")], "list at least one dataset (e.g. fashion-mnist)") }
        guard !spec.models.isEmpty else { throw tree.error([.key("models")], "list at least one model (e.g. resnet20)") }
        try checkUnique(spec.datasets.map(\.name), key: "datasets", what: "dataset", tree: tree)
        try checkUnique(spec.models, key: "models", what: "model", tree: tree)
        try checkUnique(spec.seeds.map(String.init), key: "seeds", what: "seed", tree: tree)
        try checkUnique(spec.masks.map(\.rawValue), key: "masks", what: "mask", tree: tree)
        for i in spec.datasets.indices { try checkDataset(i, in: spec, tree: tree) }
        for i in spec.models.indices { try checkModel(i, in: spec, tree: tree) }
        guard spec.seeds.allSatisfy({ $0 >= 0 }), !spec.seeds.isEmpty else {
            throw tree.error([.key("seeds")], "seeds are a count or a list of non-negative integers")
        }
        if let problem = spec.training.problems.first {
            throw tree.error([.key("training"), .key(problem.field)], "\(problem.field) \(problem.requirement)")
        }
        try checkStatistics(spec, tree: tree)
        try study.validate(spec, tree: tree)
        try checkEvaluation(spec.evaluation, tree: tree)
        guard !spec.masks.isEmpty else {
            throw tree.error([.key("masks")], "list at least one mask: \(MaskKind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        try checkLayerPatterns(spec, tree: tree)
    }

    static func checkStatistics(_ spec: SweepSpec, tree: NodeTree) throws {
        if let problem = spec.statistics.problems.first {
            throw tree.error([.key("statistics"), .key(problem.field)], "\(problem.field) \(problem.requirement)")
        }
    }

    /// The `i`th dataset: a derived one names its base, the files or the catalog's dataset are
    /// there, classes exist, limits are positive.
    static func checkDataset(_ i: Int, in spec: SweepSpec, tree: NodeTree) throws {
        let dataset = spec.datasets[i]
        let path: [PathComponent] = [.key("datasets"), .index(i)]
        if (dataset.classes != nil || dataset.transform != nil), dataset.base == nil, dataset.format == nil {
            throw tree.error(path, "classes and transform make a new dataset from another: add base: (e.g. base: fashion-mnist)")
        }
        try checkOwnData(dataset, in: spec, at: path, tree: tree)
        let ownData = spec.sourceEntry(of: dataset) != nil
        if !ownData {
            do { try DatasetCatalog.checkAvailable(dataset.source, dataDirectory: dataset.dataDir) } catch let error as DatasetError {
                throw tree.error(dataset.base == nil ? path : path + [.key("base")], error.description)
            }
        }
        if let classes = dataset.classes, !ownData {
            let available = DatasetCatalog.describe(dataset.source).classes
            guard classes.count >= 2, Set(classes).count == classes.count, classes.allSatisfy({ (0..<available).contains($0) }) else {
                throw tree.error(path + [.key("classes")], "classes must list at least two distinct classes of \(dataset.source), each in 0...\(available - 1)")
            }
        }
        for (limit, key) in [(dataset.trainLimit, "train_limit"), (dataset.testLimit, "test_limit")] where (limit ?? 1) < 1 {
            throw tree.error(path + [.key(key)], "\(key) must be at least 1")
        }
    }

    /// The `i`th model: a built-in architecture or a graph, checkpoints only where the study
    /// imports networks (1 to maxSeeds, none twice), a sound normalization.
    static func checkModel(_ i: Int, in spec: SweepSpec, tree: NodeTree) throws {
        let model = spec.models[i], path: [PathComponent] = [.key("models"), .index(i)]
        if let files = spec.checkpoints[model], files.contains(where: { $0.lowercased().hasSuffix(".onnx") }) {
            try checkGraphModel(model, files: files, spec: spec, at: path, tree: tree)
        } else {
            do { _ = try ModelSpec(name: model, inputShape: [1, 28, 28], classes: 10) } catch let error as ModelError {
                throw tree.error(path, error.description)
            }
        }
        if let files = spec.checkpoints[model] {
            guard spec.declaredStudy.importsNetworks else {
                let studies = DeclaredStudies.all.filter { $0.importsNetworks }.map { $0.name.rawValue }.joined(separator: ", ")
                throw tree.error(path + [.key("checkpoints")], "networks trained elsewhere are read by the studies \(studies); \(spec.study.rawValue) trains its own")
            }
            guard !files.isEmpty, files.count <= SweepSpec.maxSeeds else {
                throw tree.error(path + [.key("checkpoints")], "list 1 to \(SweepSpec.maxSeeds) safetensors files")
            }
            guard Set(files).count == files.count else {
                throw tree.error(path + [.key("checkpoints")], "a checkpoint is listed twice: task keys would collide")
            }
        }
        if let n = spec.normalizations[model] {
            guard !n.mean.isEmpty, n.mean.count == n.std.count, n.mean.allSatisfy(\.isFinite), n.std.allSatisfy({ $0.isFinite && $0 > 0 }) else {
                throw tree.error(path + [.key("normalization")], "mean and std are lists of one finite value per channel, std > 0 (e.g. {mean: [0.286], std: [0.353]})")
            }
        }
    }

    static func checkEvaluation(_ e: EvaluationSection, tree: NodeTree) throws {
        let at = { (key: String) -> [PathComponent] in [.key("evaluation"), .key(key)] }
        guard (1...65536).contains(e.batchSize) else { throw tree.error(at("batch_size"), "batch_size must be between 1 and 65536") }
        guard (1...100_000).contains(e.recalibrationBatches) else {
            throw tree.error(at("recalibration_batches"), "recalibration_batches must be between 1 and 100000")
        }
        guard (0...(1 << 20)).contains(e.prefixCacheMB) else {
            throw tree.error(at("prefix_cache_mb"), "prefix_cache_mb must be between 0 (every mask from the input) and 1048576")
        }
    }

    /// A pattern must select something in at least one model (a mixed sweep may name units that
    /// only some of its models have). An imported graph's units are checked once its file is read.
    static func checkLayerPatterns(_ spec: SweepSpec, tree: NodeTree) throws {
        guard case let .patterns(patterns) = spec.layers else { return }
        let unitsByModel = try spec.models.filter { !spec.isGraph($0) }.map { ($0, try LayerMatcher.units(of: $0)) }
        guard !unitsByModel.isEmpty, unitsByModel.count == spec.models.count else { return }
        for (i, pattern) in patterns.enumerated() where unitsByModel.allSatisfy({ LayerMatcher.select($0.1, patterns: [pattern]).isEmpty }) {
            let path: [PathComponent] = tree.node(at: [.key("layers")])?.scalar != nil ? [.key("layers")] : [.key("layers"), .index(i)]
            let listing = unitsByModel.map { "\($0.0): \($0.1.map(\.name).joined(separator: ", "))" }.joined(separator: "; ")
            throw tree.error(path, "'\(pattern)' matches no unit; units of \(listing)")
        }
    }

    /// A model imported as ONNX graphs: a name of its own (any but a built-in architecture's
    /// grammar is not needed), only .onnx files, and a study and masks that run on graphs.
    static func checkGraphModel(_ model: String, files: [String], spec: SweepSpec, at path: [PathComponent], tree: NodeTree) throws {
        guard !model.isEmpty, !model.contains("/"), !model.unicodeScalars.contains(where: SafeText.isControl) else {
            throw tree.error(path + [.key("name")], "a model name is one word without '/' (it is part of every task key)")
        }
        guard ImportedGraphs.areGraphs(files) else {
            throw tree.error(path + [.key("checkpoints")], "list either ONNX files (.onnx) or safetensors files under one model, not both")
        }
        guard spec.declaredStudy.importsGraphs else {
            let studies = DeclaredStudies.all.filter { $0.importsGraphs }.map { $0.name.rawValue }.joined(separator: " and ")
            throw tree.error([.key("study")], "imported ONNX graphs run in the studies \(studies); \(spec.study.rawValue) needs a built-in architecture or a safetensors checkpoint")
        }
    }

    /// The own-data fields of a dataset entry: a format's paths, preprocessing, normalization
    /// and augmentation, each error naming its field.
    static func checkOwnData(_ dataset: DatasetEntry, in spec: SweepSpec, at path: [PathComponent], tree: NodeTree) throws {
        func fail(_ field: String, _ message: String) -> SpecError { tree.error(path + [.key(field)], "\(field) \(message)") }
        let ownFields: [(String, Bool)] = [("train", dataset.train != nil), ("test", dataset.test != nil), ("labels", dataset.labels != nil),
                                           ("channels", dataset.channels != nil), ("layout", dataset.layout != nil),
                                           ("x_key", dataset.xKey != nil), ("y_key", dataset.yKey != nil)]
        if let source = dataset.declaredSource {
            if dataset.base != nil { throw fail("base", "and format: cannot both be given (base: derives from another dataset, format: reads files)") }
            if let problem = source.problems.first { throw fail(problem.field, problem.requirement) }
        } else if let field = ownFields.first(where: \.1) {
            throw fail(field.0, "needs format: (imagefolder, npz, npy, cifar100, cifar10 or idx)")
        }
        if spec.sourceEntry(of: dataset) != nil, dataset.format == nil, !dataset.preprocessing.isIdentity {
            throw fail(dataset.resize != nil ? "resize" : "center_crop", "belongs on the dataset \(dataset.base ?? "") this one derives from")
        }
        if dataset.declaredSource == nil, let problem = dataset.preprocessing.problems.first { throw fail(problem.field, problem.requirement) }
        if let n = dataset.normalization {
            guard !n.mean.isEmpty, n.mean.count == n.std.count, n.mean.allSatisfy(\.isFinite), n.std.allSatisfy({ $0.isFinite && $0 > 0 }) else {
                throw fail("normalization", "is mean and std, lists of one finite value per channel, std > 0 (e.g. {mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]})")
            }
        }
        if let crop = dataset.augment?.randomCrop {
            guard (1...ImageCodec.maxSide).contains(crop.size), (0...crop.size).contains(crop.padding) else {
                throw fail("augment", "random_crop needs a size of 1...\(ImageCodec.maxSide) and a padding of 0...size")
            }
        }
    }

    static func checkUnique(_ values: [String], key: String, what: String, tree: NodeTree) throws {
        var seen: [String: Int] = [:]
        for (i, value) in values.enumerated() {
            if let first = seen[value] {
                let firstLine = tree.node(at: [.key(key), .index(first)])?.mark?.line
                throw tree.error([.key(key), .index(i)], "duplicate \(what) '\(value)'\(firstLine.map { " (first at line \($0))" } ?? ""): task keys would collide")
            }
            seen[value] = i
        }
    }

    static func yamlError(_ error: YamlError, file: String) -> SpecError {
        switch error {
        case let .scanner(_, problem, mark, _), let .parser(_, problem, mark, _), let .composer(_, problem, mark, _):
            return SpecError(file: file, line: mark.line, field: nil, message: "malformed YAML: \(problem)")
        case let .duplicatedKeysInMapping(duplicates, context):
            return SpecError(file: file, line: context.mark.line, field: nil,
                             message: "duplicate keys in a mapping: \(duplicates.joined(separator: ", "))")
        default:
            return SpecError(file: file, line: nil, field: nil, message: "malformed YAML: \(error)")
        }
    }
}

extension TrainingSection {
    /// The engine's training record for one task, or nil when the schedule text is invalid.
    public func config(seed: UInt64) -> TrainingConfig? {
        guard let schedule = LearningRateSchedule(text: schedule) else { return nil }
        return TrainingConfig(epochs: epochs, batchSize: batchSize, learningRate: learningRate, momentum: momentum,
                              weightDecay: weightDecay, nesterov: nesterov, schedule: schedule, seed: seed)
    }
}

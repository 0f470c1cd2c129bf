import Datasets
import Foundation
import Models
import ONNX
import SweepFile
import SweepPlan
import SweepRecords

/// Networks a sweep studies without training them: checkpoint files named in the sweep file
/// (`models: [{name: resnet20, checkpoints: [...]}]`). Only the coordinator reads the files; the
/// networks reach workers as checkpoints, like trained ones, so no shared filesystem is needed.
public enum ImportedNetworks {
    /// The hashes a run recorded when it started (`imports.json`): a resumed run or a report
    /// names the networks as the first session did, even if the files have moved since.
    public static func recordedHashes(in run: RunDirectory) -> [String: String] {
        guard let data = FileManager.default.contents(atPath: run.importsURL.path),
              let hashes = try? JSONDecoder().decode([String: String].self, from: data) else { return [:] }
        // A hash names tasks and files: one that is not a hash is dropped (the file is hashed again).
        return hashes.filter { ContentHash.isValid($0.value) }
    }

    /// Records the checkpoint hashes of `spec` in `run` (nothing when it imports no network).
    public static func record(_ spec: SweepSpec, in run: RunDirectory) throws {
        try ImportedGraphs.record(spec, in: run)
        guard !spec.checkpointHashes.isEmpty else { return }
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        try e.encode(spec.checkpointHashes).write(to: run.importsURL, options: .atomic)
    }

    /// Reads every checkpoint file of `spec` (paths relative to the working directory) and
    /// records its content hash: the hash names the network in its tasks' keys. Hashes `run`
    /// recorded are taken as they are.
    /// An imported ONNX graph is hashed with its external data (its bundle), and summarised
    /// (`GraphSummary`) from its first file; every file of a model must have the same units.
    public static func hashFiles(_ spec: inout SweepSpec, run: RunDirectory? = nil) throws {
        if let run {
            spec.checkpointHashes.merge(recordedHashes(in: run)) { a, _ in a }
            spec.graphs.merge(ImportedGraphs.recorded(in: run)) { a, _ in a }
        }
        for (model, files) in spec.checkpoints.sorted(by: { $0.key < $1.key }) {
            let graph = spec.isGraph(model)
            for file in files where spec.checkpointHashes[file] == nil || (graph && spec.graphs[model] == nil) {
                let data: Data
                do { data = try RegularFile.read(file, what: "checkpoint") } catch let error as FileProblem {
                    throw RunError(path: file, message: "\(error.problem) (a checkpoint of model \(model); paths are relative to the directory sweep runs in)")
                }
                guard graph else { spec.checkpointHashes[file] = contentHash(data); continue }
                let program: ONNXProgram
                do { program = try ONNXProgram(contentsOf: URL(fileURLWithPath: file)) } catch { throw RunError(path: file, message: "\(error)".replacingOccurrences(of: file + ": ", with: "")) }
                spec.checkpointHashes[file] = contentHash(try ONNXBundle.read(URL(fileURLWithPath: file)))
                guard let dataset = spec.datasets.first else { continue }
                let summary: GraphSummary
                do { summary = try GraphSummary(program, image: dataset.description.shape) } catch {
                    throw RunError(path: file, message: "does not run on \(dataset.name)'s \(dataset.description.shape.map(String.init).joined(separator: "x")) images: \(error)")
                }
                if let first = spec.graphs[model], first.units.map(\.name) != summary.units.map(\.name) {
                    throw RunError(path: file, message: "has other units than the first file of model \(model) (\(TorchImport.listed(summary.units.map(\.name)))); list networks of one architecture under one model")
                }
                if summary.batchNorms == 0, spec.studyType.recalibrates(spec) {
                    throw RunError(path: file, message: "has no BatchNormalization nodes to re-estimate (folded at export): export with BN kept (dynamo=False, do_constant_folding=False, training=TrainingMode.PRESERVE)")
                }
                if spec.graphs[model] == nil { spec.graphs[model] = summary }
            }
        }
        try checkLayerPatterns(spec)
    }

    /// Each `layers:` pattern selects a unit in some model, imported graphs included (their units
    /// are known only now).
    static func checkLayerPatterns(_ spec: SweepSpec) throws {
        guard case let .patterns(patterns) = spec.layers, !spec.graphs.isEmpty else { return }
        let units = try spec.models.map { ($0, try LayerMatcher.units(of: $0, in: spec)) }
        for pattern in patterns where units.allSatisfy({ LayerMatcher.select($0.1, patterns: [pattern]).isEmpty }) {
            let listing = units.map { "\($0.0): \(TorchImport.listed($0.1.map(\.name), first: 8))" }.joined(separator: "; ")
            throw RunError(path: "layers", message: "'\(pattern)' matches no unit; units of \(listing)")
        }
    }

    /// Reads every checkpoint of `plan`'s load tasks and matches it against its model and the
    /// dataset of its tasks, as the load task will: a file that does not fit stops the sweep
    /// before its run directory is made, not half-way through it.
    public static func check(_ plan: Plan) throws {
        var checked: Set<[String]> = []
        for task in plan.tasks where task.kind == .load {
            guard let path = task.checkpointFile, checked.insert([path, task.model, task.dataset]).inserted,
                  let dataset = plan.spec.datasets.first(where: { $0.name == task.dataset }) else { continue }
            if plan.spec.isGraph(task.model) {
                _ = try graph(at: path, dataset: dataset)
                continue
            }
            let data: Data
            do { data = try RegularFile.read(path, what: "checkpoint") } catch let error as FileProblem {
                throw RunError(path: path, message: "\(error.problem) (a checkpoint of model \(task.model))")
            }
            _ = try network(from: data, path: path, model: task.model, dataset: dataset)
        }
    }

    /// The network a checkpoint file's bytes hold, checked against the model it is listed under
    /// and the images and classes of `dataset`.
    static func network(from data: Data, path: String, model: String, dataset: DatasetEntry) throws -> Network {
        let described = dataset.description
        let file = try SafeTensorsFile.decode(data, file: path)
        let network = file.metadata["layersweep.model"] != nil
            ? try Checkpoint.network(from: file, path: path)
            : try TorchImport.network(from: file, path: path, inputShape: described.shape, model: model)
        guard network.spec.inputShape == described.shape, network.spec.classes == described.classes else {
            throw RunError(path: path, message: "the network takes \(network.spec.inputShape) inputs in \(network.spec.classes) classes; \(dataset.name) has \(described.shape) in \(described.classes)")
        }
        guard try ModelSpec.parse(network.spec.name) == ModelSpec.parse(model) else {
            throw RunError(path: path, message: "holds a \(network.spec.name), not the \(model) it is listed under")
        }
        return network
    }

    /// The bundle of the ONNX graph at `path` (the model and its external data), checked to map
    /// one of `dataset`'s images to one logit per class.
    static func graph(at path: String, dataset: DatasetEntry) throws -> Data {
        let described = dataset.description
        do {
            let bundle = try ONNXBundle.read(URL(fileURLWithPath: path))
            let program = try ONNXProgram(bundle: bundle)
            let shape = [1] + described.shape
            let out = try program.run([program.inputNames.first ?? "": .floats(shape, [Float](repeating: 0, count: shape.reduce(1, *)))])
            guard program.inputNames.count == 1, let logits = out[program.outputNames.first ?? ""], logits.shape == [1, described.classes] else {
                let got = program.outputNames.first.flatMap { out[$0]?.shape }.map { "\($0)" } ?? "no output"
                throw RunError(path: path, message: "maps a \(described.shape.map(String.init).joined(separator: "x")) image of \(dataset.name) to \(got), not to its \(described.classes) class logits")
            }
            return bundle
        } catch let error as ONNXError {
            throw RunError(path: path, message: "\(error)".replacingOccurrences(of: path + ": ", with: ""))
        }
    }

    /// A load task's checkpoint, in our format: the file's network (PyTorch names mapped,
    /// architecture checked against the model it is listed under) with our metadata.
    public static func checkpoint(for task: PlannedTask, spec: SweepSpec) throws -> Data {
        guard let path = task.checkpointFile else { throw RunError(path: task.key, message: "a load task without its file") }
        if spec.isGraph(task.model) {
            guard let dataset = spec.datasets.first(where: { $0.name == task.dataset }) else {
                throw RunError(path: task.key, message: "dataset \(task.dataset) is not in the sweep")
            }
            let bundle = try graph(at: path, dataset: dataset)
            if let expected = spec.checkpointHashes[path], contentHash(bundle) != expected {
                throw RunError(path: path, message: "changed since the sweep was planned (its tasks are named by its content); restore it or start a new run")
            }
            return bundle
        }
        let data: Data
        do { data = try RegularFile.read(path, what: "checkpoint") } catch let error as FileProblem {
            throw RunError(path: path, message: "\(error.problem) (a checkpoint of model \(task.model))")
        }
        if let expected = spec.checkpointHashes[path], contentHash(data) != expected {
            throw RunError(path: path, message: "changed since the sweep was planned (its tasks are named by its content); restore it or start a new run")
        }
        guard let dataset = spec.datasets.first(where: { $0.name == task.dataset }) else {
            throw RunError(path: task.key, message: "dataset \(task.dataset) is not in the sweep")
        }
        let network = try network(from: data, path: path, model: task.model, dataset: dataset)
        return try Checkpoint.file(of: network, metadata: ["layersweep.dataset": task.dataset, "layersweep.key": task.key,
                                                         "layersweep.source": path]).encoded()
    }
}

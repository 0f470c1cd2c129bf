import Datasets
import Foundation
import Models

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
        guard !spec.checkpointHashes.isEmpty else { return }
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        try e.encode(spec.checkpointHashes).write(to: run.importsURL, options: .atomic)
    }

    /// Reads every checkpoint file of `spec` (paths relative to the working directory) and
    /// records its content hash: the hash names the network in its tasks' keys. Hashes `run`
    /// recorded are taken as they are.
    public static func hashFiles(_ spec: inout SweepSpec, run: RunDirectory? = nil) throws {
        if let run { spec.checkpointHashes.merge(recordedHashes(in: run)) { a, _ in a } }
        for (model, files) in spec.checkpoints.sorted(by: { $0.key < $1.key }) {
            for file in files where spec.checkpointHashes[file] == nil {
                let data: Data
                do { data = try RegularFile.read(file, what: "checkpoint") } catch let error as FileProblem {
                    throw RunError(path: file, message: "\(error.problem) (a checkpoint of model \(model); paths are relative to the directory sweep runs in)")
                }
                spec.checkpointHashes[file] = contentHash(data)
            }
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

    /// The key segment that takes `seedN`'s place: `ckpt-` and the file's hash, once known.
    static func keySegment(_ spec: SweepSpec, file: String, index: Int) -> String {
        spec.checkpointHashes[file].map { "ckpt-" + $0.prefix(12) } ?? "ckpt\(index)"
    }

    /// A load task's checkpoint, in our format: the file's network (PyTorch names mapped,
    /// architecture checked against the model it is listed under) with our metadata.
    public static func checkpoint(for task: PlannedTask, spec: SweepSpec) throws -> Data {
        guard let path = task.checkpointFile else { throw RunError(path: task.key, message: "a load task without its file") }
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

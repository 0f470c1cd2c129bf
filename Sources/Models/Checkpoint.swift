import Foundation
import TensorEngine

/// Saving and restoring a network's parameters and BN statistics as safetensors, with the model
/// name, input shape and class count in the metadata so a checkpoint alone rebuilds its network.
public enum Checkpoint {
    static let modelKey = "layersweep.model"
    static let inputKey = "layersweep.input"
    static let classesKey = "layersweep.classes"

    /// The checkpoint of `network`, with `extra` metadata (e.g. dataset, normalisation).
    public static func file(of network: Network, metadata extra: [String: String] = [:]) -> SafeTensorsFile {
        var metadata = extra
        metadata[modelKey] = network.spec.name
        metadata[inputKey] = network.spec.inputShape.map(String.init).joined(separator: ",")
        metadata[classesKey] = String(network.spec.classes)
        return SafeTensorsFile(tensors: network.stateTensors.map { ($0.0, $0.1.copy()) }, metadata: metadata)
    }

    public static func save(_ network: Network, to url: URL, metadata: [String: String] = [:]) throws {
        try file(of: network, metadata: metadata).write(to: url)
    }

    /// Rebuilds the network a checkpoint describes and loads its tensors.
    public static func load(_ url: URL) throws -> (Network, metadata: [String: String]) {
        let file = try SafeTensorsFile.read(url)
        return (try network(from: file, path: url.path), file.metadata)
    }

    public static func network(from file: SafeTensorsFile, path: String = "<memory>") throws -> Network {
        let m = file.metadata
        guard let name = m[modelKey], let input = m[inputKey], let classesText = m[classesKey],
              let classes = Int(classesText) else {
            throw SafeTensorsError(file: path, problem: "not a layersweep checkpoint (metadata lacks \(modelKey), \(inputKey) or \(classesKey))")
        }
        let shape = input.split(separator: ",", omittingEmptySubsequences: false).compactMap { Int($0) }
        guard shape.count == 3, input.split(separator: ",", omittingEmptySubsequences: false).count == 3 else {
            throw SafeTensorsError(file: path, problem: "its metadata's input shape '\(input)' is not C,H,W")
        }
        let spec: ModelSpec
        do { spec = try ModelSpec(name: name, inputShape: shape, classes: classes) } catch let error as ModelError {
            throw SafeTensorsError(file: path, problem: "its metadata describes no buildable network: \(error)")
        }
        let network = Network.build(spec, seed: 0)
        try restore(network, from: file, path: path)
        return network
    }

    /// Copies every tensor of `network` from `file`, which must hold each with the same shape
    /// and usable values. Everything is checked before anything is copied: a refused file leaves
    /// the network as it was.
    public static func restore(_ network: Network, from file: SafeTensorsFile, path: String = "<memory>") throws {
        let stored = Dictionary(file.tensors.map { ($0.0, $0.1) }, uniquingKeysWith: { a, _ in a })
        var pairs: [(Tensor, Tensor)] = []
        for (name, tensor) in network.stateTensors {
            guard let source = stored[name] else {
                throw SafeTensorsError(file: path, problem: "missing tensor '\(name)' for model \(network.spec.name)")
            }
            guard source.shape == tensor.shape else {
                throw SafeTensorsError(file: path, problem: "tensor '\(name)' has shape \(source.shape), model \(network.spec.name) needs \(tensor.shape)")
            }
            try checkValues(source, name: name, path: path)
            pairs.append((tensor, source))
        }
        for (tensor, source) in pairs { tensor.assign(source) }
    }

    /// Refuses values no usable network holds: NaN or infinite weights and statistics, and a
    /// negative batch-norm running variance (its square root is NaN). Evaluated, such a network
    /// gives every row a NaN loss that would pass for a result.
    public static func checkValues(_ tensor: Tensor, name: String, path: String) throws {
        let values = UnsafeBufferPointer(start: tensor.data, count: tensor.count)
        if let bad = values.firstIndex(where: { !$0.isFinite }) {
            let more = values.lazy.filter { !$0.isFinite }.count - 1
            throw SafeTensorsError(file: path, problem: "tensor '\(name)' holds \(values[bad]) at index \(bad)\(more > 0 ? " and \(more) more non-finite values" : ""): "
                + "a network with non-finite weights cannot be studied (was it saved after its training diverged?)")
        }
        if name.hasSuffix("running_var"), let bad = values.firstIndex(where: { $0 < 0 }) {
            throw SafeTensorsError(file: path, problem: "tensor '\(name)' holds a negative variance (\(values[bad]) at index \(bad)): not a batch norm's running statistics")
        }
    }
}

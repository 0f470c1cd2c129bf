import Foundation
import Models
import TensorEngine

/// A training stopped at an epoch boundary, as safetensors: every state tensor of the network,
/// the optimiser's momentum per parameter (`velocity/NAME`), and the steps taken. Batch order is
/// a function of (seed, epoch) and the learning rate of the step, so a training resumed from a
/// snapshot continues with the same bits as one that never stopped.
public enum EpochSnapshot {
    static let keyField = "layersweep.snapshot.key"
    static let epochsField = "layersweep.snapshot.epochs"
    static let stepField = "layersweep.snapshot.step"

    /// The snapshot of `network` after `epochs` epochs (`step` optimiser steps) of task `key`.
    /// The optimiser must update every parameter of the network, in order.
    public static func encode(_ network: Network, optimizer: SGD, epochs: Int, step: Int, key: String) throws -> Data {
        var file = Checkpoint.file(of: network, metadata: [keyField: key, epochsField: String(epochs), stepField: String(step)])
        for ((name, _), velocity) in zip(network.parameters, optimizer.velocities) { file.tensors.append(("velocity/\(name)", velocity)) }
        return try file.encoded()
    }

    /// Loads a snapshot of task `key` into `network`; returns the epochs and steps done and a
    /// hook that restores the optimiser's momentum before training goes on.
    public static func restore(_ data: Data, into network: Network, key: String) throws -> (epochs: Int, step: Int, prepare: (SGD) throws -> Void) {
        let file = try SafeTensorsFile.decode(data, file: "snapshot of \(key)")
        guard file.metadata[keyField] == key, let epochs = file.metadata[epochsField].flatMap({ Int($0) }),
              let step = file.metadata[stepField].flatMap({ Int($0) }) else {
            throw SafeTensorsError(file: "snapshot of \(key)", problem: "belongs to another task or lacks its epoch and step")
        }
        try Checkpoint.restore(network, from: file, path: "snapshot of \(key)")
        let names = network.parameters.map(\.0)
        return (epochs, step, { optimizer in
            for (name, velocity) in zip(names, optimizer.velocities) {
                guard let saved = file["velocity/\(name)"], saved.shape == velocity.shape else {
                    throw SafeTensorsError(file: "snapshot of \(key)", problem: "lacks the momentum of \(name)")
                }
                velocity.assign(saved)
            }
        })
    }
}

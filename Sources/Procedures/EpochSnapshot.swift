import Foundation
import Models
import TensorEngine

/// A training stopped at an epoch boundary, as safetensors: every state tensor of the network,
/// the optimiser's momentum per parameter (`velocity/NAME`), the steps taken, and the
/// fingerprint of the training that made it. Batch order is a function of (seed, epoch) and the
/// learning rate of the step, so a training resumed from a snapshot continues with the same bits
/// as one that never stopped: but only the same training may resume it.
public enum EpochSnapshot {
    static let keyField = "layersweep.snapshot.key"
    static let epochsField = "layersweep.snapshot.epochs"
    static let stepField = "layersweep.snapshot.step"
    static let trainingField = "layersweep.snapshot.training"

    /// What decides a training's bits besides its task key: the hyperparameters, the model and
    /// the training images. A snapshot made under another of these is another training's.
    public struct Training: Equatable, Sendable {
        public let fingerprint: String
        public let epochs: Int
        public let stepsPerEpoch: Int

        public init(model: String, config: TrainingConfig, data: String, images: Int) {
            fingerprint = "\(model)|\(data)|\(images)|\(config.fingerprint)"
            epochs = config.epochs
            stepsPerEpoch = (images + config.batchSize - 1) / max(config.batchSize, 1)
        }
    }

    /// Why a stored snapshot cannot resume this training (it is then discarded, and the training
    /// starts from its beginning).
    public struct Mismatch: Error, CustomStringConvertible {
        public let description: String
    }

    /// The snapshot of `network` after `epochs` epochs (`step` optimiser steps) of task `key`.
    /// The optimiser must update every parameter of the network, in order.
    public static func encode(_ network: Network, optimizer: SGD, epochs: Int, step: Int, key: String, training: Training) throws -> Data {
        var file = Checkpoint.file(of: network, metadata: [keyField: key, epochsField: String(epochs), stepField: String(step),
                                                           trainingField: training.fingerprint])
        for ((name, _), velocity) in zip(network.parameters, optimizer.velocities) { file.tensors.append(("velocity/\(name)", velocity)) }
        return try file.encoded()
    }

    /// Loads a snapshot of task `key` into `network`; returns the epochs and steps done and a
    /// hook that restores the optimiser's momentum before training goes on. Everything is checked
    /// first (the training it belongs to, its epoch and step, every tensor's shape and values):
    /// a `Mismatch` leaves the network untouched.
    public static func restore(_ data: Data, into network: Network, key: String, training: Training) throws
        -> (epochs: Int, step: Int, prepare: (SGD) throws -> Void) {
        let file: SafeTensorsFile
        do { file = try SafeTensorsFile.decode(data, file: "snapshot of \(key)") } catch { throw Mismatch(description: "\(error)") }
        let m = file.metadata
        guard m[keyField] == key else { throw Mismatch(description: "belongs to another task") }
        guard m[trainingField] == training.fingerprint else {
            throw Mismatch(description: "was made by a training with other hyperparameters, model or data")
        }
        guard let epochs = m[epochsField].flatMap({ Int($0) }), let step = m[stepField].flatMap({ Int($0) }),
              (1..<training.epochs).contains(epochs), step == epochs * training.stepsPerEpoch else {
            throw Mismatch(description: "its epoch (\(m[epochsField] ?? "none")) and step (\(m[stepField] ?? "none")) are not a boundary of this training's \(training.epochs) epochs")
        }
        let names = network.parameters.map(\.0)
        var velocities: [Tensor] = []
        for (name, parameter) in network.parameters {
            guard let saved = file["velocity/\(name)"], saved.shape == parameter.value.shape else {
                throw Mismatch(description: "lacks the momentum of \(name)")
            }
            do { try Checkpoint.checkValues(saved, name: "velocity/\(name)", path: "snapshot of \(key)") } catch { throw Mismatch(description: "\(error)") }
            velocities.append(saved)
        }
        do { try Checkpoint.restore(network, from: file, path: "snapshot of \(key)") } catch { throw Mismatch(description: "\(error)") }
        return (epochs, step, { optimizer in
            for (name, (velocity, saved)) in zip(names, zip(optimizer.velocities, velocities)) {
                guard saved.shape == velocity.shape else { throw Mismatch(description: "lacks the momentum of \(name)") }
                velocity.assign(saved)
            }
        })
    }
}

import Datasets
import Foundation
import Models
import SweepFile
import TensorEngine
import Procedures
import SweepCore

/// What IMP carries from one round to the next: the trained network, its masks, and every
/// state tensor as it was at the rewind step. Stored as one safetensors file (network tensors
/// under their own names, `mask/NAME` and `rewind/NAME`), so a round's artifact is also a
/// checkpoint any tool can open.
public struct PruningRound {
    public let network: Network
    public let masks: [(String, Tensor)]
    public let rewind: [(String, Tensor)]

    public init(network: Network, masks: [(String, Tensor)], rewind: [(String, Tensor)]) {
        self.network = network
        self.masks = masks
        self.rewind = rewind
    }

    public func file(metadata: [String: String]) -> SafeTensorsFile {
        var file = Checkpoint.file(of: network, metadata: metadata)
        file.tensors += masks.map { ("mask/" + $0.0, $0.1.copy()) } + rewind.map { ("rewind/" + $0.0, $0.1.copy()) }
        return file
    }

    public init(file: SafeTensorsFile, path: String) throws {
        network = try Checkpoint.network(from: file, path: path)
        var stored: [String: Tensor] = [:]
        for (name, tensor) in file.tensors { stored[name] = tensor }
        // In network order, whatever order the file lists them in.
        let prunable = Pruning.prunableWeights(of: network)
        var masks: [(String, Tensor)] = []
        for name in prunable {
            let expected: [Int] = network.parameter(name)?.value.shape ?? []
            guard let mask = stored["mask/" + name], mask.shape == expected else {
                let names = prunable.joined(separator: ", ")
                throw SafeTensorsError(file: path, problem: "not an IMP round: it lacks a mask for each of " + names)
            }
            masks.append((name, mask))
        }
        var rewind: [(String, Tensor)] = []
        for (name, _) in network.stateTensors {
            if let tensor = stored["rewind/" + name] { rewind.append((name, tensor)) }
        }
        guard rewind.count == network.stateTensors.count else {
            throw SafeTensorsError(file: path, problem: "not an IMP round: rewind tensors do not match the model")
        }
        self.masks = masks
        self.rewind = rewind
    }

    /// Surviving fraction of each pruned weight, in network order.
    public var remainingFractions: [(String, Double)] {
        masks.map { ($0.0, Double(Pruning.survivingCount($0.1)) / Double($0.1.count)) }
    }

    /// Surviving fraction of all prunable weights together.
    public var remainingFraction: Double {
        let total = masks.reduce(0) { $0 + $1.1.count }
        return Double(masks.reduce(0) { $0 + Pruning.survivingCount($1.1) }) / Double(max(total, 1))
    }
}

/// A round that would disconnect too much of the network: IMP stops here.
public struct PruningStopped: StoppingRule {
    public let layer: String
    public let connected: Int
    public let minimum: Int
    public var description: String {
        "stopped: \(layer) would keep \(connected) connected units (fewer than min_connected_units \(minimum))"
    }
}

/// Iterative magnitude pruning with rewinding (Frankle et al.; Pellegrini & Biroli 2021).
public enum IterativePruning {
    /// Round 0: trains the dense network from its initialisation, keeping its state at `rewindStep`.
    public static func trainDense(_ network: Network, on data: Dataset, config: TrainingConfig,
                                  rewindStep: Int) throws -> (PruningRound, [EpochReport]) {
        var rewind: [(String, Tensor)]?
        let hooks = TrainingHooks(afterStep: { step in
            if rewind == nil, step >= rewindStep { rewind = network.stateTensors.map { ($0.0, $0.1.copy()) } }
        })
        let reports = try Training.train(network, on: data, config: config, hooks: hooks)
        guard let rewind else {
            throw RewindError(step: rewindStep, epochs: config.epochs, batchSize: config.batchSize, examples: data.count)
        }
        return (PruningRound(network: network, masks: Pruning.denseMasks(of: network), rewind: rewind), reports)
    }

    /// The masks of the next round: per layer, the `keep[name]` largest surviving weights of the
    /// trained network. Throws `PruningStopped` when a layer would keep fewer than
    /// `minConnectedUnits` connected units.
    public static func nextMasks(after round: PruningRound, keep: [String: Int], minConnectedUnits: Int) throws -> [(String, Tensor)] {
        let masks = round.masks.map { name, mask in
            (name, Pruning.magnitudeMask(weights: round.network.parameter(name)!.value, mask: mask, keep: keep[name] ?? Pruning.survivingCount(mask)))
        }
        for (layer, connected) in Pruning.connectedUnits(masks) where connected < minConnectedUnits {
            throw PruningStopped(layer: layer, connected: connected, minimum: minConnectedUnits)
        }
        return masks
    }

    /// Rewinds to `round`'s rewind state, applies `masks`, and retrains from the rewind step
    /// with pruned weights held at zero.
    public static func retrain(from round: PruningRound, masks: [(String, Tensor)], on data: Dataset, config: TrainingConfig,
                               rewindStep: Int) throws -> (PruningRound, [EpochReport]) {
        let network = Network.build(round.network.spec, seed: 0)
        let saved = Dictionary(round.rewind.map { ($0.0, $0.1) }, uniquingKeysWith: { a, _ in a })
        for (name, tensor) in network.stateTensors { tensor.assign(saved[name]!) }
        let hooks = TrainingHooks(startStep: rewindStep, afterStep: { _ in Pruning.apply(masks, to: network) })
        let reports = try Training.train(network, on: data, config: config, hooks: hooks)
        return (PruningRound(network: network, masks: masks, rewind: round.rewind), reports)
    }
}

/// The rewind step lies beyond the end of training.
public struct RewindError: Error, CustomStringConvertible {
    public let step: Int, epochs: Int, batchSize: Int, examples: Int
    public var description: String {
        "pruning.rewind_step \(step) is past the end of training (\(epochs) epochs of \((examples + batchSize - 1) / batchSize) steps)"
    }
}

import Foundation
import Datasets
import Models
import TensorEngine

/// What one epoch of training did, for progress lines.
public struct EpochReport: Sendable {
    public let epoch: Int
    public let epochs: Int
    public let loss: Float
    public let accuracy: Double
    public let learningRate: Float
    public let imagesPerSecond: Double
    public let seconds: Double
    /// Estimated seconds until the run ends.
    public let remainingSeconds: Double
}

/// Why training stopped early.
public enum TrainingError: Error, CustomStringConvertible, Equatable {
    case diverged(epoch: Int, step: Int, loss: Float)

    public var description: String {
        switch self {
        case let .diverged(epoch, step, loss): return "diverged: loss \(loss) at epoch \(epoch + 1), step \(step)"
        }
    }
}

/// What a study changes about the plain training loop: parameters kept fixed (reused kernels),
/// a step to resume at (IMP rewinding), and a callback after every optimiser step (re-applying
/// pruning masks, snapshotting the rewind point).
public struct TrainingHooks {
    /// Dotted names of parameters the optimiser leaves untouched.
    public var frozen: Set<String>
    /// Steps before this one are skipped (batch order and learning-rate schedule continue from it).
    public var startStep: Int
    /// Called with the number of steps taken so far, after each optimiser step (and once with
    /// `startStep` before the first).
    public var afterStep: ((Int) -> Void)?
    /// Called with the optimiser before the first step (restoring a snapshot's momentum).
    public var prepare: ((SGD) throws -> Void)?
    /// Called after each epoch but the last with (epochs done, steps done, optimiser): the moment
    /// an epoch snapshot captures.
    public var afterEpoch: ((Int, Int, SGD) -> Void)?

    public init(frozen: Set<String> = [], startStep: Int = 0, afterStep: ((Int) -> Void)? = nil,
                prepare: ((SGD) throws -> Void)? = nil, afterEpoch: ((Int, Int, SGD) -> Void)? = nil) {
        self.frozen = frozen
        self.startStep = startStep
        self.afterStep = afterStep
        self.prepare = prepare
        self.afterEpoch = afterEpoch
    }
}

/// The training loop: mini-batch SGD on a network, with the schedule applied per iteration.
public enum Training {
    /// How a batch's loss is computed; labels by default, teacher logits for distillation.
    public typealias LossFunction = (_ logits: Tensor, _ labels: [Int32], _ indices: ArraySlice<Int>) -> LossResult

    /// Trains `network` in place on `data` and returns one report per epoch.
    /// Throws `TrainingError.diverged` as soon as a loss is not finite.
    @discardableResult
    public static func train(_ network: Network, on data: Dataset, config: TrainingConfig,
                             loss: LossFunction? = nil, hooks: TrainingHooks = TrainingHooks(),
                             progress: (EpochReport) -> Void = { _ in }) throws -> [EpochReport] {
        let trainable = network.parameters.filter { !hooks.frozen.contains($0.0) }.map { $0.1 }
        let optimizer = SGD(parameters: trainable, momentum: config.momentum,
                            weightDecay: config.weightDecay, nesterov: config.nesterov)
        try hooks.prepare?(optimizer)
        let lossFunction = loss ?? { logits, labels, _ in Loss.softmaxCrossEntropy(logits, labels: labels) }
        let stepsPerEpoch = (data.count + config.batchSize - 1) / config.batchSize
        var reports: [EpochReport] = []
        var step = 0
        let start = Date()
        hooks.afterStep?(hooks.startStep)
        for epoch in 0..<config.epochs {
            let epochStart = Date()
            var lossSum = 0.0, correct = 0, seen = 0
            var lr: Float = config.learningRate
            for indices in data.batchIndices(batchSize: config.batchSize, shuffleSeed: config.seed, epoch: epoch) {
                // A batch of one breaks batch statistics; it only happens as an epoch's remainder.
                if indices.count < 2 || step < hooks.startStep { step += 1; continue }
                let (x, labels) = data.batch(indices)
                optimizer.zeroGrad()
                let logits = network.forward(x, training: true)
                let result = lossFunction(logits, labels, indices)
                guard result.loss.isFinite else { throw TrainingError.diverged(epoch: epoch, step: step, loss: result.loss) }
                network.backward(result.gradient)
                lr = config.schedule.rate(base: config.learningRate, step: step, stepsPerEpoch: stepsPerEpoch, epochs: config.epochs)
                optimizer.step(learningRate: lr)
                hooks.afterStep?(step + 1)
                lossSum += Double(result.loss) * Double(indices.count)
                correct += result.correct
                seen += indices.count
                step += 1
            }
            let seconds = Date().timeIntervalSince(epochStart)
            let elapsed = Date().timeIntervalSince(start)
            let report = EpochReport(
                epoch: epoch, epochs: config.epochs, loss: Float(lossSum / Double(max(seen, 1))),
                accuracy: Double(correct) / Double(max(seen, 1)), learningRate: lr,
                imagesPerSecond: Double(seen) / max(seconds, 1e-9), seconds: seconds,
                remainingSeconds: elapsed / Double(epoch + 1) * Double(config.epochs - epoch - 1))
            reports.append(report)
            progress(report)
            if epoch + 1 < config.epochs, step > hooks.startStep { hooks.afterEpoch?(epoch + 1, step, optimizer) }
        }
        return reports
    }
}

/// Test accuracy and mean loss of a network on a dataset.
public struct Evaluation: Equatable, Sendable, Codable {
    public let accuracy: Double
    public let loss: Double
    public let count: Int

    /// Evaluates in inference mode (BN running statistics), in batches.
    public static func run(_ network: Network, on data: Dataset, batchSize: Int = 256) -> Evaluation {
        var lossSum = 0.0, correct = 0
        for indices in data.batchIndices(batchSize: batchSize, shuffleSeed: nil, epoch: 0) {
            let (x, labels) = data.batch(indices)
            let result = Loss.softmaxCrossEntropy(network.forward(x, training: false), labels: labels)
            lossSum += Double(result.loss) * Double(indices.count)
            correct += result.correct
        }
        let n = max(data.count, 1)
        return Evaluation(accuracy: Double(correct) / Double(n), loss: lossSum / Double(n), count: data.count)
    }
}

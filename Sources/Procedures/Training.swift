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

extension EpochReport {
    /// "epoch 3/15  loss 0.4123  acc 0.8512  812 img/s  12.3s  · ETA 2m10s", the form progress
    /// lines take on the terminal and in a cluster's log.
    public static func line(_ r: EpochReport) -> String {
        String(format: "epoch %d/%d  loss %.4f  acc %.4f  lr %.4f  %.0f img/s  %.1fs", r.epoch + 1, r.epochs, r.loss, r.accuracy,
               r.learningRate, r.imagesPerSecond, r.seconds) + (r.epoch + 1 < r.epochs ? "  · ETA \(DurationText.of(r.remainingSeconds))" : "")
    }
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
    ///
    /// With a `gang`, this process is one member of several that train the same network
    /// data-parallel: each computes its shard of every mini-batch (`GangShard`) and all end each
    /// step with the same gradients, weights and reports, bit for bit those of one process.
    /// Ganged trainings use the label loss (`loss` must be nil).
    @discardableResult
    public static func train(_ network: Network, on data: Dataset, config: TrainingConfig,
                             loss: LossFunction? = nil, hooks: TrainingHooks = TrainingHooks(), gang: GangLink? = nil,
                             progress: (EpochReport) -> Void = { _ in }) throws -> [EpochReport] {
        precondition(gang == nil || loss == nil, "a ganged training uses the label loss")
        let trainable = network.parameters.filter { !hooks.frozen.contains($0.0) }.map { $0.1 }
        let optimizer = SGD(parameters: trainable, momentum: config.momentum,
                            weightDecay: config.weightDecay, nesterov: config.nesterov)
        try hooks.prepare?(optimizer)
        let lossFunction = loss ?? { logits, labels, _ in Loss.softmaxCrossEntropy(logits, labels: labels) }
        let stepsPerEpoch = (data.count + config.batchSize - 1) / config.batchSize
        var reports: [EpochReport] = []
        var step = 0, epochsRun = 0
        let start = Date()
        hooks.afterStep?(hooks.startStep)
        for epoch in 0..<config.epochs {
            let epochStart = Date()
            var lossSum = 0.0, correct = 0, seen = 0
            var lr: Float = config.learningRate
            for indices in data.batchIndices(batchSize: config.batchSize, shuffleSeed: config.seed, epoch: epoch) {
                // A batch of one breaks batch statistics; it only happens as an epoch's remainder.
                if indices.count < 2 || step < hooks.startStep { step += 1; continue }
                optimizer.zeroGrad()
                let result: (loss: Float, correct: Int)
                if let gang {
                    result = try ganged(network, data: data, batch: indices, gang: gang, epoch: epoch, step: step, seed: config.seed)
                } else {
                    let (x, labels) = data.trainingBatch(indices, seed: config.seed, epoch: epoch)
                    let logits = network.forward(x, training: true)
                    let value = lossFunction(logits, labels, indices)
                    guard value.loss.isFinite else { throw TrainingError.diverged(epoch: epoch, step: step, loss: value.loss) }
                    network.backward(value.gradient)
                    result = (value.loss, value.correct)
                }
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
            if seen > 0 { epochsRun += 1 }
            let report = EpochReport(
                epoch: epoch, epochs: config.epochs, loss: Float(lossSum / Double(max(seen, 1))),
                accuracy: Double(correct) / Double(max(seen, 1)), learningRate: lr,
                imagesPerSecond: Double(seen) / max(seconds, 1e-9), seconds: seconds,
                remainingSeconds: elapsed / Double(max(epochsRun, 1)) * Double(config.epochs - epoch - 1))
            reports.append(report)
            // An epoch a resumed training skipped whole has no figures to show.
            if seen > 0 { progress(report) }
            if epoch + 1 < config.epochs, step > hooks.startStep { hooks.afterEpoch?(epoch + 1, step, optimizer) }
        }
        return reports
    }

    /// One gang member's forward and backward pass over its shard of `batch`; returns the whole
    /// batch's loss and correct count, and leaves the whole batch's gradients in the parameters.
    private static func ganged(_ network: Network, data: Dataset, batch: ArraySlice<Int>, gang: GangLink,
                               epoch: Int, step: Int, seed: UInt64) throws -> (loss: Float, correct: Int) {
        let shard = GangShard(link: gang, batchCount: batch.count)
        let mine = batch[(batch.startIndex + shard.images.lowerBound)..<(batch.startIndex + shard.images.upperBound)]
        let (x, labels) = data.trainingBatch(mine, seed: seed, epoch: epoch)
        return try GangShard.with(shard) {
            let logits = network.forward(x, training: true)
            let value = Loss.softmaxCrossEntropy(logits, labels: labels, batchCount: batch.count)
            // The batch's loss as one process sums it: every image's term, in batch order.
            let terms = value.terms.withUnsafeBufferPointer { shard.gather($0, perImage: 1) }
            let loss = Float(terms.reduce(0, +) / Double(batch.count))
            var counts = [Double](repeating: 0, count: gang.size)
            [Double(value.correct)].withUnsafeBufferPointer { local in
                counts.withUnsafeMutableBufferPointer { gang.allGather(local, counts: Array(repeating: 1, count: gang.size), into: $0) }
            }
            // Every member sees the same loss, so all stop together on divergence.
            guard loss.isFinite else { throw TrainingError.diverged(epoch: epoch, step: step, loss: loss) }
            network.backward(value.gradient)
            shard.reduceGradients()
            return (loss, Int(counts.reduce(0, +)))
        }
    }
}

/// Test accuracy and mean loss of a network on a dataset.
public struct Evaluation: Equatable, Sendable, Codable {
    public let accuracy: Double
    public let loss: Double
    public let count: Int
    /// Whether each test image was classified right, in order.
    public var hits: [Bool] = []

    enum CodingKeys: String, CodingKey { case accuracy, loss, count }

    public init(accuracy: Double, loss: Double, count: Int, hits: [Bool] = []) {
        self.accuracy = accuracy
        self.loss = loss
        self.count = count
        self.hits = hits
    }

    /// Why `network` cannot be evaluated on `data` (its input shape or its classes differ), or
    /// nil. A network with fewer classes than the labels has no logit for some of them.
    public static func mismatch(_ network: Network, _ data: Dataset) -> String? {
        let spec = network.spec
        guard spec.inputShape != data.shape || spec.classes != data.classes else { return nil }
        return "the network takes \(spec.inputShape.map(String.init).joined(separator: "x")) inputs in \(spec.classes) classes; "
            + "\(data.name) has \(data.shape.map(String.init).joined(separator: "x")) in \(data.classes)"
    }

    /// Evaluates in inference mode (BN running statistics, folded: `InferencePlan`), in batches. A gang's members each
    /// evaluate a contiguous run of the batches and sum every batch's figures in batch order, as
    /// one process does.
    public static func run(_ network: Network, on data: Dataset, batchSize: Int = 256, gang: GangLink? = nil) -> Evaluation {
        let batches = data.batchIndices(batchSize: batchSize, shuffleSeed: nil, epoch: 0)
        let (members, member) = (gang?.size ?? 1, gang?.rank ?? 0)
        let mine = (member * batches.count / members)..<((member + 1) * batches.count / members)
        var figures: [Double] = []   // per batch: loss sum, correct
        var hits: [Bool] = []
        let plan = InferencePlan(network)
        for b in mine {
            let (x, labels) = data.batch(batches[b])
            let result = Loss.softmaxCrossEntropy(plan.forward(x), labels: labels)
            figures += [Double(result.loss) * Double(batches[b].count), Double(result.correct)]
            hits += result.hits
        }
        if let gang {
            let runs = (0..<members).map { m in (m * batches.count / members)..<((m + 1) * batches.count / members) }
            var all = [Double](repeating: 0, count: 2 * batches.count)
            figures.withUnsafeBufferPointer { local in
                all.withUnsafeMutableBufferPointer { gang.allGather(local, counts: runs.map { 2 * $0.count }, into: $0) }
            }
            figures = all
            // Every member learns every image's hit, so each can pair its later mask evaluations with them.
            var allHits = [Double](repeating: 0, count: data.count)
            hits.map { $0 ? 1.0 : 0 }.withUnsafeBufferPointer { local in
                allHits.withUnsafeMutableBufferPointer { all in
                    gang.allGather(local, counts: runs.map { r in r.reduce(0) { $0 + batches[$1].count } }, into: all)
                }
            }
            hits = allHits.map { $0 != 0 }
        }
        var lossSum = 0.0, correct = 0
        for b in 0..<(figures.count / 2) {
            lossSum += figures[2 * b]
            correct += Int(figures[2 * b + 1])
        }
        let n = max(data.count, 1)
        return Evaluation(accuracy: Double(correct) / Double(n), loss: lossSum / Double(n), count: data.count, hits: hits)
    }
}

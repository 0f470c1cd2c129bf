import Foundation
import Studies

/// How a task ended.
public enum TaskStatus: String, Codable, Sendable {
    case ok
    /// The task threw.
    case failed
    /// Training produced a non-finite loss.
    case diverged
    /// Not run because a task it depends on failed, diverged or stopped.
    case skipped
    /// IMP ended its chain here: pruning further would disconnect a layer.
    case stopped
}

/// What a worker reports for one task.
public struct TaskOutcome: Codable, Equatable, Sendable {
    public var status: TaskStatus
    public var testAccuracy: Double?
    public var testLoss: Double?
    public var trainAccuracy: Double?
    public var trainLoss: Double?
    public var paramsMasked: Int?
    public var error: String?
    public var seconds: Double
    /// Content hash of the artifact the task produced (a checkpoint, an IMP round, teacher logits).
    public var checkpoint: String?
    /// IMP: surviving fraction of all pruned weights and of each layer's.
    public var remainingFraction: Double?
    public var layerRemaining: [String: Double]?
    /// IMP: locality of the first layer's surviving connections (see `Locality.score`).
    public var locality: Double?
    /// IMP: the most-connected first-layer masks.
    public var maskImages: [MaskImage]?
    /// Reuse: kernel RMSE between the source-trained and the target-trained networks.
    public var rmse: Double?
    /// Parameters of the network trained (students) or reused (reuse).
    public var parameters: Int?
    /// Zeroing: test images the unmasked network got right and the masked one wrong, the
    /// reverse, and the images compared ([worse, better, images]): the paired test's counts.
    public var discordant: [Int]?

    public init(status: TaskStatus, seconds: Double = 0) {
        self.status = status
        self.seconds = seconds
    }
}

/// One journal line: a finished task, who ran it, when, and what it measured.
public struct TaskRecord: Codable, Equatable, Sendable {
    public var key: String
    public var kind: TaskKind
    public var outcome: TaskOutcome
    public var rank: Int
    public var host: String
    public var started: Date
    public var finished: Date

    public init(key: String, kind: TaskKind, outcome: TaskOutcome, rank: Int, host: String, started: Date, finished: Date) {
        self.key = key
        self.kind = kind
        self.outcome = outcome
        self.rank = rank
        self.host = host
        self.started = started
        self.finished = finished
    }
}

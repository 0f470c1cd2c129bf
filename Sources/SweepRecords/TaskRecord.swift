import Foundation
import Procedures
import SweepFile
import SweepPlan

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

/// What a worker reports for one task: the shared measurements, and the study's own
/// (`measures`).
public struct TaskOutcome: Codable, Equatable, Sendable {
    public var status: TaskStatus
    public var testAccuracy: Double?
    public var testLoss: Double?
    public var trainAccuracy: Double?
    public var trainLoss: Double?
    /// Parameters a mask (or a pruning) changed.
    public var paramsMasked: Int?
    public var error: String?
    public var seconds: Double
    /// Content hash of the artifact the task produced (a checkpoint, an IMP round, teacher logits).
    public var checkpoint: String?
    /// An evaluation of a changed network: test images the unchanged network got right and the
    /// changed one wrong, the reverse, and the images compared ([worse, better, images]): the
    /// paired test's counts.
    public var discordant: [Int]?
    /// What the study measured besides, typed by the study.
    public var measures: (any OutcomeMeasures)?
    /// Set when the training store served this training instead of a worker: where the
    /// network was trained (`StoredTraining.origin`).
    public var cached: String?

    public init(status: TaskStatus, seconds: Double = 0) {
        self.status = status
        self.seconds = seconds
    }

    /// The study's measures as type `M`, if they are.
    public func measures<M: OutcomeMeasures>(_ type: M.Type) -> M? { measures as? M }

    enum CodingKeys: String, CodingKey {
        case status, testAccuracy, testLoss, trainAccuracy, trainLoss, paramsMasked, error, seconds, checkpoint, discordant, cached
        case measuresStudy = "measures"
    }

    /// Where a decoder finds the measures type of lines that do not name one (journals of 0.1.0).
    public static let measuresKey = CodingUserInfoKey(rawValue: "layersweep.measures")!

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        status = try c.decode(TaskStatus.self, forKey: .status)
        testAccuracy = try c.decodeIfPresent(Double.self, forKey: .testAccuracy)
        testLoss = try c.decodeIfPresent(Double.self, forKey: .testLoss)
        trainAccuracy = try c.decodeIfPresent(Double.self, forKey: .trainAccuracy)
        trainLoss = try c.decodeIfPresent(Double.self, forKey: .trainLoss)
        paramsMasked = try c.decodeIfPresent(Int.self, forKey: .paramsMasked)
        error = try c.decodeIfPresent(String.self, forKey: .error)
        seconds = try c.decode(Double.self, forKey: .seconds)
        checkpoint = try c.decodeIfPresent(String.self, forKey: .checkpoint)
        discordant = try c.decodeIfPresent([Int].self, forKey: .discordant)
        cached = try c.decodeIfPresent(String.self, forKey: .cached)
        let named = try c.decodeIfPresent(String.self, forKey: .measuresStudy).flatMap(DeclaredStudies.measures(of:))
        if let type = named ?? decoder.userInfo[TaskOutcome.measuresKey] as? any OutcomeMeasures.Type {
            let decoded = try type.init(from: decoder)
            measures = decoded.isEmpty ? nil : decoded
        }
        if let problem { throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: problem)) }
    }

    /// What no task could have reported: a number out of its range (an accuracy above 1, negative
    /// counts, a hash that is not one). A journal is a file anyone can edit; its numbers index
    /// and divide later (paired tests, paths of checkpoints), so each is checked where it is read.
    public var problem: String? {
        for (name, value) in [("testAccuracy", testAccuracy), ("trainAccuracy", trainAccuracy)] {
            if let value, !(0...1).contains(value) { return "\(name) \(value) is not a fraction in [0, 1]" }
        }
        for (name, value) in [("testLoss", testLoss), ("trainLoss", trainLoss)] {
            guard let value else { continue }
            if value < 0 || (status == .ok && !value.isFinite) { return "\(name) \(value) is not a loss of a finished task" }
        }
        if let paramsMasked, paramsMasked < 0 { return "paramsMasked \(paramsMasked) is negative" }
        guard seconds.isFinite, seconds >= 0 else { return "seconds \(seconds) is not a duration" }
        if let checkpoint, !ContentHash.isValid(checkpoint) { return "checkpoint '\(checkpoint)' is not a content hash" }
        if let d = discordant {
            guard d.count == 3, d.allSatisfy({ $0 >= 0 }), d[2] <= TaskOutcome.maxImages, d[0] <= d[2] - d[1] else {
                return "discordant \(d) is not [worse, better, images] with worse + better ≤ images"
            }
        }
        return measures?.problem
    }

    /// More test images than any evaluation holds (the paired counts are checked against it).
    static let maxImages = 1 << 40


    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(status, forKey: .status)
        try c.encodeIfPresent(testAccuracy, forKey: .testAccuracy)
        try c.encodeIfPresent(testLoss, forKey: .testLoss)
        try c.encodeIfPresent(trainAccuracy, forKey: .trainAccuracy)
        try c.encodeIfPresent(trainLoss, forKey: .trainLoss)
        try c.encodeIfPresent(paramsMasked, forKey: .paramsMasked)
        try c.encodeIfPresent(error, forKey: .error)
        try c.encode(seconds, forKey: .seconds)
        try c.encodeIfPresent(checkpoint, forKey: .checkpoint)
        try c.encodeIfPresent(discordant, forKey: .discordant)
        try c.encodeIfPresent(cached, forKey: .cached)
        if let measures {
            try c.encode(type(of: measures).study.rawValue, forKey: .measuresStudy)
            try measures.encode(to: encoder)
        }
    }

    public static func == (a: TaskOutcome, b: TaskOutcome) -> Bool {
        a.status == b.status && a.testAccuracy.bitsEqual(b.testAccuracy) && a.testLoss.bitsEqual(b.testLoss)
            && a.trainAccuracy.bitsEqual(b.trainAccuracy) && a.trainLoss.bitsEqual(b.trainLoss) && a.paramsMasked == b.paramsMasked
            && a.error == b.error && a.seconds == b.seconds && a.checkpoint == b.checkpoint && a.discordant == b.discordant && a.cached == b.cached
            && (a.measures == nil) == (b.measures == nil) && (a.measures.map { m in b.measures.map { m.isEqual(to: $0) } ?? false } ?? true)
    }
}

private extension Optional where Wrapped == Double {
    /// Equal values, or both NaN (a diverged loss is NaN on both sides of a round trip).
    func bitsEqual(_ other: Double?) -> Bool {
        switch (self, other) {
        case (nil, nil): return true
        case let (a?, b?): return a == b || (a.isNaN && b.isNaN)
        default: return false
        }
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

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        key = try c.decode(String.self, forKey: .key)
        kind = try c.decode(TaskKind.self, forKey: .kind)
        outcome = try c.decode(TaskOutcome.self, forKey: .outcome)
        rank = try c.decode(Int.self, forKey: .rank)
        host = try c.decode(String.self, forKey: .host)
        started = try c.decode(Date.self, forKey: .started)
        finished = try c.decode(Date.self, forKey: .finished)
        guard rank >= -1, !key.isEmpty, finished >= started else {  // -1: a skipped task, run by no rank
            throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "rank \(rank), key '\(key)' or times \(started)...\(finished) are not a task's"))
        }
    }

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

/// The format of `contentHash`: 32 lowercase hex digits. Hashes name files, so a journal's must
/// be one before it reaches a path.
public enum ContentHash {
    public static func isValid(_ text: String) -> Bool {
        text.utf8.count == 32 && text.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }
}

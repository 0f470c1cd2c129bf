import Foundation

/// Students distilled from a teacher (`study: distill`); `models` are the teachers.
public struct DistillationSection: StudySection, Equatable {
    public static let key = "distillation"
    public static var keys: [String] { CodingKeys.allCases.map(\.rawValue) }

    /// Teachers trained per (dataset, model); their logits are averaged (an ensemble when > 1).
    public var teachers = 1
    public var convLayers = [0, 1, 2, 3, 4]
    /// Student parameter budgets; each student's width is chosen to come closest.
    public var budgets = [100_000, 400_000]
    public var losses: [DistillationLoss] = [.logits, .labels]
    /// Teacher training; defaults to `training` (which the students use).
    public var teacherTraining: TrainingSection?

    public init() {}

    enum CodingKeys: String, CodingKey, CaseIterable {
        case teachers, budgets, losses
        case convLayers = "conv_layers"
        case teacherTraining = "teacher_training"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        teachers = try c.decodeIfPresent(Int.self, forKey: .teachers) ?? teachers
        convLayers = try c.decodeIfPresent([Int].self, forKey: .convLayers) ?? convLayers
        budgets = try c.decodeIfPresent([Int].self, forKey: .budgets) ?? budgets
        losses = try c.decodeIfPresent([DistillationLoss].self, forKey: .losses) ?? losses
        teacherTraining = try c.decodeIfPresent(TrainingSection.self, forKey: .teacherTraining)
    }
}

/// What a student learns from: the teacher's logits (L2) or, as the control, the labels.
public enum DistillationLoss: String, Codable, CaseIterable, Sendable {
    case logits, labels
}

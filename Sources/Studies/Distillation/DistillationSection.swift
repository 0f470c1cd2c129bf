import Foundation
import Procedures
import SweepCore
import SweepFile

/// Students distilled from a teacher (`study: distill`); `models` are the teachers.
public struct DistillationSection: StudySection, SettingsSection, Equatable {
    public static let key = "distillation"

    /// Teachers trained per (dataset, model); their logits are averaged (an ensemble when > 1).
    public var teachers = 1
    public var convLayers = [0, 1, 2, 3, 4]
    /// Student parameter budgets; each student's width is chosen to come closest.
    public var budgets = [100_000, 400_000]
    public var losses: [DistillationLoss] = [.logits, .labels]
    /// Teacher training; defaults to `training` (which the students use).
    public var teacherTraining: TrainingSection?

    public init() {}

    public static let settings: [Setting<DistillationSection>] = [
        Setting("teachers", \.teachers), Setting("conv_layers", \.convLayers), Setting("budgets", \.budgets),
        Setting("losses", \.losses), Setting("teacher_training", \.teacherTraining),
    ]
}

/// What a student learns from: the teacher's logits (L2) or, as the control, the labels.
public enum DistillationLoss: String, Codable, CaseIterable, Sendable {
    case logits, labels
}

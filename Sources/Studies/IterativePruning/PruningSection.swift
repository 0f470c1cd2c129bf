import Foundation
import Procedures
import SweepCore
import SweepFile

/// Iterative magnitude pruning (`study: imp`).
public struct PruningSection: StudySection, SettingsSection, Equatable {
    public static let key = "pruning"

    /// Fraction of each layer's remaining weights removed per round (the readout is never pruned).
    public var rate = 0.3
    /// Pruning rounds after the dense training (round 0); 0.7^k of the weights remain after k.
    public var rounds = 5
    /// Optimiser step whose weights survivors are rewound to (0: the initialisation).
    public var rewindStep = 100
    /// IMP stops when a layer would keep fewer connected units than this.
    public var minConnectedUnits = 4
    /// Also prune the dense network once to each round's sparsity (the control).
    public var oneShot = true
    /// First-layer masks kept per round for the report's pictures (most-connected units).
    public var maskImages = 16

    public init() {}

    public static let settings: [Setting<PruningSection>] = [
        Setting("rate", \.rate), Setting("rounds", \.rounds), Setting("rewind_step", \.rewindStep),
        Setting("min_connected_units", \.minConnectedUnits), Setting("one_shot", \.oneShot), Setting("mask_images", \.maskImages),
    ]
}

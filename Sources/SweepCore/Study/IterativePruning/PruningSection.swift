import Foundation

/// Iterative magnitude pruning (`study: imp`).
public struct PruningSection: StudySection, Equatable {
    public static let key = "pruning"
    public static var keys: [String] { CodingKeys.allCases.map(\.rawValue) }

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

    enum CodingKeys: String, CodingKey, CaseIterable {
        case rate, rounds
        case rewindStep = "rewind_step"
        case minConnectedUnits = "min_connected_units"
        case oneShot = "one_shot"
        case maskImages = "mask_images"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        rate = try c.decodeIfPresent(Double.self, forKey: .rate) ?? rate
        rounds = try c.decodeIfPresent(Int.self, forKey: .rounds) ?? rounds
        rewindStep = try c.decodeIfPresent(Int.self, forKey: .rewindStep) ?? rewindStep
        minConnectedUnits = try c.decodeIfPresent(Int.self, forKey: .minConnectedUnits) ?? minConnectedUnits
        oneShot = try c.decodeIfPresent(Bool.self, forKey: .oneShot) ?? oneShot
        maskImages = try c.decodeIfPresent(Int.self, forKey: .maskImages) ?? maskImages
    }
}

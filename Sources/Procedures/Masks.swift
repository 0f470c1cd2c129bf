import Datasets
import Models
import TensorEngine

/// The masks of the layer-zeroing study (Wang et al. 2020); the README defines each.
public enum MaskKind: String, Codable, CaseIterable, Sendable {
    /// The unit's weights (and bias) set to zero; a following BN still adds its constant
    /// beta - gamma·mean/sqrt(var + eps).
    case zeroKernel
    /// A residual block's branch outputs zero; only the shortcut remains.
    case zeroBranch
    /// zeroKernel, then every BN's running statistics re-estimated on training batches.
    case zeroKernelRecalibrated
    /// The unit's weights re-drawn from their initialiser (He normal), bias zeroed.
    case randomInit

    /// Whether the mask means anything for a unit of this kind.
    public func applies(to kind: UnitKind) -> Bool {
        switch self {
        case .zeroKernel, .randomInit: return kind == .conv || kind == .linear
        case .zeroKernelRecalibrated: return kind == .conv
        case .zeroBranch: return kind == .branch
        }
    }
}

/// What a mask needs besides the network: a seed (randomInit) and training data (recalibration).
public struct MaskContext {
    public var seed: UInt64
    public var recalibrationData: Dataset?
    public var recalibrationBatches: Int
    public var batchSize: Int

    public init(seed: UInt64, recalibrationData: Dataset? = nil, recalibrationBatches: Int = 20, batchSize: Int = 128) {
        self.seed = seed
        self.recalibrationData = recalibrationData
        self.recalibrationBatches = recalibrationBatches
        self.batchSize = batchSize
    }
}

/// Applying masks to networks in place.
public enum Masking {
    /// Applies `mask` to `unit` of `network`; returns the number of parameters masked.
    @discardableResult
    public static func apply(_ mask: MaskKind, to unit: MaskableUnit, of network: Network, context: MaskContext) throws -> Int {
        guard mask.applies(to: unit.kind) else { throw MaskError.notApplicable(mask, unit.name, unit.kind) }
        switch mask {
        case .zeroKernel:
            zero(unit, of: network)
        case .zeroKernelRecalibrated:
            zero(unit, of: network)
            guard let data = context.recalibrationData else { throw MaskError.needsTrainingData(mask) }
            recalibrateBatchNorm(network, on: data, batches: context.recalibrationBatches,
                                 batchSize: context.batchSize, seed: context.seed)
        case .zeroBranch:
            guard let block = network.layer(unit.name) as? BasicBlock else { throw MaskError.notApplicable(mask, unit.name, unit.kind) }
            block.branchEnabled = false
        case .randomInit:
            var rng = RandomSource(seed: context.seed, stream: "randomInit/\(unit.name)")
            for name in unit.parameterNames {
                guard let p = network.parameter(name) else { continue }
                if name.hasSuffix(".weight") {
                    let fanIn = p.value.shape.dropFirst().reduce(1, *)
                    p.value.assign(Initializer.heNormal(shape: p.value.shape, fanIn: fanIn, rng: &rng))
                } else {
                    p.value.fill(0)
                }
            }
        }
        return unit.parameterCount
    }

    static func zero(_ unit: MaskableUnit, of network: Network) {
        for name in unit.parameterNames { network.parameter(name)?.value.fill(0) }
    }

    /// Re-estimates every BN's running statistics as the plain average over `batches` training
    /// batches (PyTorch's momentum=None), without touching any parameter.
    public static func recalibrateBatchNorm(_ network: Network, on data: Dataset, batches: Int, batchSize: Int, seed: UInt64) {
        let norms = network.batchNorms.map(\.1)
        let saved = norms.map(\.momentum)
        for bn in norms { bn.resetRunningStatistics(); bn.momentum = nil }
        for indices in data.batchIndices(batchSize: batchSize, shuffleSeed: seed, epoch: 0).prefix(batches) where indices.count > 1 {
            let (x, _) = data.batch(indices)
            _ = network.forward(x, training: true)
        }
        for (bn, m) in zip(norms, saved) { bn.momentum = m }
    }
}

/// A mask that cannot be applied.
public enum MaskError: Error, CustomStringConvertible, Equatable {
    case notApplicable(MaskKind, String, UnitKind)
    case needsTrainingData(MaskKind)
    case unknownUnit(String)

    public var description: String {
        switch self {
        case let .notApplicable(mask, unit, kind): return "mask \(mask.rawValue) does not apply to \(unit) (a \(kind.rawValue) unit)"
        case let .needsTrainingData(mask): return "mask \(mask.rawValue) needs training data for BN recalibration"
        case let .unknownUnit(name): return "the network has no unit \(name)"
        }
    }
}

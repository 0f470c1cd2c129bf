import Datasets
import Models
import ONNX
import TensorEngine

/// The masks of the zeroing and sensitivity studies on imported ONNX graphs. Each gives a changed
/// copy of the graph (weights are shared until one is changed); the README says what each does.
public enum GraphMasking {
    /// A copy of `program` with `mask` on unit `name`, and the number of parameters masked.
    public static func apply(_ mask: MaskKind, unit name: String, to program: ONNXProgram, context: MaskContext) throws -> (ONNXProgram, Int) {
        let unit = try program.unit(name)
        switch mask {
        case .zeroKernel:
            return (try program.masked(.zeroKernel, unit: name), unit.parameters)
        case .zeroBranch:
            return (try program.masked(.zeroBranch, unit: name), unit.parameters)
        case .zeroKernelRecalibrated:
            guard unit.kind == .conv else { throw MaskError.notApplicable(mask, name, kind(of: unit)) }
            return (try recalibrate(try program.masked(.zeroKernel, unit: name), context: context, mask: mask), unit.parameters)
        case .randomInit:
            return (try randomInit(unit, of: program, seed: context.seed), unit.parameters)
        }
    }

    /// The unit's weight re-drawn as PyTorch initialises the op (`reset_parameters` of Conv and
    /// Linear: uniform in ±1/√fan_in); its bias is kept, as zeroKernel keeps it, because an
    /// exporter may have folded a batch norm's constants into it.
    static func randomInit(_ unit: GraphUnit, of program: ONNXProgram, seed: UInt64) throws -> ONNXProgram {
        guard let weight = unit.weight, let value = program.constants[weight] else { throw MaskError.notApplicable(.randomInit, unit.name, kind(of: unit)) }
        var rng = RandomSource(seed: seed, stream: "randomInit/\(unit.name)")
        let bound = 1 / Float(unit.fanIn).squareRoot()
        let drawn = (0..<value.count).map { _ in (rng.nextUniform() * 2 - 1) * bound }
        return try program.replacing([weight: .floats(value.shape, drawn)])
    }

    /// A copy of `program` with `fraction` of unit `name`'s weight pruned by `method`
    /// (`LayerPruning.prune`: filters lie along the unit's output axis), and the entries zeroed.
    public static func prune(_ name: String, of program: ONNXProgram, fraction: Double, method: LayerPruning.Method) throws -> (ONNXProgram, Int) {
        let unit = try program.unit(name)
        guard let weight = unit.weight, case let .floats(shape, values)? = program.constants[weight] else {
            throw ONNXError.model("\(name) is a \(unit.kind.rawValue) unit: it has no weight to prune")
        }
        var pruned = values
        let count = pruned.withUnsafeMutableBufferPointer {
            LayerPruning.prune($0, shape: shape, outputAxis: unit.outputAxis, fraction: fraction, method: method)
        }
        return (try program.replacing([weight: .floats(shape, pruned)]), count)
    }

    /// A graph unit's kind as a built network's (for the same error lines).
    public static func kind(of unit: GraphUnit) -> UnitKind {
        switch unit.kind {
        case .conv: return .conv
        case .linear: return .linear
        case .branch: return .branch
        }
    }

    /// `program` with its BatchNormalization statistics re-estimated on the training batches of
    /// `context` (the same batches a built-in network's recalibration takes).
    public static func recalibrate(_ program: ONNXProgram, context: MaskContext, mask: MaskKind = .zeroKernelRecalibrated) throws -> ONNXProgram {
        guard let data = context.recalibrationData else { throw MaskError.needsTrainingData(mask) }
        let batches = data.batchIndices(batchSize: context.batchSize, shuffleSeed: context.seed, epoch: 0)
            .prefix(context.recalibrationBatches).filter { $0.count > 1 }
        return try program.recalibrated(on: batches.lazy.map { indices -> ONNXValue in
            let (x, _) = data.batch(indices)
            return .floats(x.shape, x.array)
        })
    }
}

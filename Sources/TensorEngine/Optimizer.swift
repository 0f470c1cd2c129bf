import Foundation

/// Stochastic gradient descent with momentum, L2 weight decay and optional Nesterov momentum,
/// matching `torch.optim.SGD` (dampening 0).
public final class SGD {
    public let parameters: [Parameter]
    public let momentum: Float
    public let weightDecay: Float
    public let nesterov: Bool
    private let velocity: [Tensor]

    public init(parameters: [Parameter], momentum: Float = 0.9, weightDecay: Float = 0, nesterov: Bool = false) {
        self.parameters = parameters
        self.momentum = momentum
        self.weightDecay = weightDecay
        self.nesterov = nesterov
        velocity = parameters.map { Tensor(shape: $0.value.shape) }
    }

    /// The momentum buffers, one per parameter in order: saved and restored by epoch snapshots.
    public var velocities: [Tensor] { velocity }

    public func zeroGrad() { for p in parameters { p.zeroGrad() } }

    /// One update with the given learning rate; v ← μv + g + λw, w ← w − η(g + λw + μv) (Nesterov)
    /// or w ← w − ηv.
    public func step(learningRate lr: Float) {
        for (p, v) in zip(parameters, velocity) {
            let (w, g, vp) = (p.value.data, p.grad.data, v.data)
            let wd = p.decays ? weightDecay : 0
            let (mu, nest) = (momentum, nesterov)
            for i in 0..<p.value.count {
                let grad = g[i] + wd * w[i]
                let vel = mu * vp[i] + grad
                vp[i] = vel
                w[i] -= lr * (nest ? grad + mu * vel : vel)
            }
        }
    }
}

/// How the learning rate changes over training.
public enum LearningRateSchedule: Equatable, Sendable {
    case constant
    /// Multiply by `gamma` every `every` epochs.
    case step(every: Int, gamma: Float)
    /// Multiply by `gamma` at each listed epoch.
    case multiStep(milestones: [Int], gamma: Float)
    /// Half-cosine from the base rate to `minimum`, per iteration, over the whole run.
    case cosine(minimum: Float)

    /// The rate at iteration `step` (0-based) of `stepsPerEpoch · epochs`.
    public func rate(base: Float, step: Int, stepsPerEpoch: Int, epochs: Int) -> Float {
        let epoch = step / max(stepsPerEpoch, 1)
        switch self {
        case .constant:
            return base
        case let .step(every, gamma):
            return base * Foundation.pow(gamma, Float(epoch / max(every, 1)))
        case let .multiStep(milestones, gamma):
            return base * Foundation.pow(gamma, Float(milestones.filter { epoch >= $0 }.count))
        case let .cosine(minimum):
            let total = max(stepsPerEpoch * epochs, 1)
            let t = Double(min(step, total)) / Double(total)
            return minimum + (base - minimum) * Float((1 + Foundation.cos(Double.pi * t)) / 2)
        }
    }
}

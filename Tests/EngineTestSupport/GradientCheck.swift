import TensorEngine
import XCTest

/// Central finite-difference checks of analytic gradients.
///
/// The objective is computed in Double from Float32 outputs; with ε = 1e-3 the numerical
/// derivative carries an error of roughly 1e-3 relative, hence the default tolerance: a gradient
/// passes when |analytic − numeric| ≤ relative · max(|analytic|, |numeric|) + absolute.
public struct GradientCheck {
    public var epsilon: Float = 1e-3
    public var relative: Double = 2e-2
    public var absolute: Double = 2e-3
    /// How many coordinates of each tensor to probe.
    public var samples = 24

    public init(epsilon: Float = 1e-3, relative: Double = 2e-2, absolute: Double = 2e-3, samples: Int = 24) {
        self.epsilon = epsilon
        self.relative = relative
        self.absolute = absolute
        self.samples = samples
    }

    /// Checks `layer`'s input and parameter gradients for L = Σ forward(x) · r with random r.
    public func check(_ layer: Layer, input x: Tensor, training: Bool, seed: UInt64 = 1,
                      file: StaticString = #filePath, line: UInt = #line) {
        var rng = RandomSource(seed: seed, stream: "gradcheck")
        let y = layer.forward(x, training: training)
        // Laid out like y, so that the objective below pairs each output with its own weight.
        let r = Tensor.zeros(y.shape, blocked: y.blocked)
        for i in 0..<r.count { r.data[i] = rng.nextNormal() }
        for (_, p) in layer.namedParameters() { p.zeroGrad() }
        let dx = layer.backward(r)
        let objective = { () -> Double in
            let out = layer.forward(x, training: training)
            var s = 0.0
            for i in 0..<out.count { s += Double(out.data[i]) * Double(r.data[i]) }
            return s
        }
        var tensors = [("input", x, dx)]
        tensors += layer.namedParameters().map { ($0.0, $0.1.value, $0.1.grad) }
        compare(tensors, objective: objective, rng: &rng, file: file, line: line)
    }

    /// Compares each (value, analytic gradient) pair against central differences of `objective`.
    public func compare(_ tensors: [(String, Tensor, Tensor)], objective: () -> Double,
                        rng: inout RandomSource, file: StaticString = #filePath, line: UInt = #line) {
        for (name, value, grad) in tensors {
            let indices = value.count <= samples ? Array(0..<value.count)
                : (0..<samples).map { _ in Int(rng.next() % UInt64(value.count)) }
            for i in indices {
                let saved = value.data[i]
                value.data[i] = saved + epsilon
                let plus = objective()
                value.data[i] = saved - epsilon
                let minus = objective()
                value.data[i] = saved
                let numeric = (plus - minus) / (2 * Double(epsilon))
                let analytic = Double(grad.data[i])
                let allowed = relative * max(abs(analytic), abs(numeric)) + absolute
                if abs(analytic - numeric) > allowed {
                    XCTFail("\(name)[\(i)]: analytic \(analytic) vs numeric \(numeric) (allowed \(allowed))", file: file, line: line)
                    return
                }
            }
        }
    }
}

extension GradientCheck {
    /// Whole-network check: for each tensor, the derivative of `objective` along its own
    /// normalised gradient g/|g| must equal |g|, within `relative`.
    ///
    /// Per-coordinate differences of a deep Float32 network drown in ReLU kinks and BN's
    /// batch coupling; moving a whole tensor along its gradient gives a signal of |g|, so the
    /// check stays sharp (a sign, scale or missing-term error fails it) without Double arithmetic.
    public static func compareAlongGradient(_ tensors: [(String, Tensor, Tensor)], objective: () -> Double,
                                            epsilon: Double = 1e-3, relative: Double = 0.04,
                                            file: StaticString = #filePath, line: UInt = #line) {
        for (name, value, grad) in tensors {
            let norm = grad.sumOfSquares.squareRoot()
            guard norm > 1e-6 else { continue }
            let saved = value.copy()
            let step = Float(epsilon / norm)
            for i in 0..<value.count { value.data[i] = saved.data[i] + step * grad.data[i] }
            let plus = objective()
            for i in 0..<value.count { value.data[i] = saved.data[i] - step * grad.data[i] }
            let minus = objective()
            value.assign(saved)
            let numeric = (plus - minus) / (2 * epsilon)
            if abs(numeric - norm) > relative * norm {
                XCTFail("\(name): |g| = \(norm) but the objective changes at \(numeric) along g/|g|", file: file, line: line)
            }
        }
    }
}

/// A tensor of standard normal values.
public func randomTensor(_ shape: [Int], seed: UInt64, scale: Float = 1) -> Tensor {
    var rng = RandomSource(seed: seed, stream: "random-tensor")
    let t = Tensor(shape: shape)
    for i in 0..<t.count { t.data[i] = rng.nextNormal() * scale }
    return t
}

/// A batch norm with statistics and affine terms far from the identity.
public func skewedBatchNorm(_ channels: Int, seed: UInt64) -> BatchNorm {
    let bn = BatchNorm(channels)
    var rng = RandomSource(seed: seed)
    for c in 0..<channels {
        bn.gamma.value.data[c] = 0.5 + abs(rng.nextNormal())
        bn.beta.value.data[c] = 0.3 * rng.nextNormal()
        bn.runningMean.data[c] = 0.5 * rng.nextNormal()
        bn.runningVar.data[c] = 0.2 + abs(rng.nextNormal())
    }
    return bn
}

/// `body`'s values with the engine on each of `counts` threads, for tests that results do not
/// depend on the thread count.
public func valuesWithThreads(_ counts: [Int], _ body: () -> [Float]) -> [[Float]] {
    counts.map { threads in
        Parallel.configure(threads: threads)
        return body()
    }
}

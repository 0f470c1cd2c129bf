/// Weight initialisers.
public enum Initializer {
    /// He/Kaiming normal: N(0, 2 / fanIn), right for layers followed by ReLU.
    public static func heNormal(shape: [Int], fanIn: Int, rng: inout RandomSource) -> Tensor {
        let t = Tensor(shape: shape)
        let std = (2.0 / Float(max(fanIn, 1))).squareRoot()
        for i in 0..<t.count { t.data[i] = rng.nextNormal() * std }
        return t
    }

    /// Uniform in [-bound, bound].
    public static func uniform(shape: [Int], bound: Float, rng: inout RandomSource) -> Tensor {
        let t = Tensor(shape: shape)
        for i in 0..<t.count { t.data[i] = (rng.nextUniform() * 2 - 1) * bound }
        return t
    }
}

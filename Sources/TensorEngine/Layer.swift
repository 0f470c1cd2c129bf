/// A trainable tensor and the gradient that backward passes accumulate into it.
public final class Parameter {
    public let value: Tensor
    public let grad: Tensor
    /// Whether weight decay applies (true for weights and BN affine terms, as in PyTorch's default).
    public var decays: Bool

    public init(_ value: Tensor, decays: Bool = true) {
        self.value = value
        self.grad = Tensor(shape: value.shape)
        self.decays = decays
    }

    public func zeroGrad() { grad.fill(0) }
}

/// A network piece with explicit forward and backward passes (the llm.c way, no autograd).
///
/// `forward` caches what `backward` needs; `backward` takes the loss gradient with respect to
/// the output, accumulates parameter gradients, and returns the gradient for the input.
/// Children are named so that every parameter gets a stable dotted name.
public protocol Layer: AnyObject {
    func forward(_ x: Tensor, training: Bool) -> Tensor
    func backward(_ dy: Tensor) -> Tensor
    /// This layer's own parameters by local name ("weight", "bias").
    var localParameters: [(String, Parameter)] { get }
    /// This layer's own non-trainable state by local name ("running_mean", "running_var").
    var localBuffers: [(String, Tensor)] { get }
    /// Named sub-layers, in forward order.
    var children: [(String, Layer)] { get }
}

extension Layer {
    public var localParameters: [(String, Parameter)] { [] }
    public var localBuffers: [(String, Tensor)] { [] }
    public var children: [(String, Layer)] { [] }

    /// Every parameter below this layer with its dotted name, in a stable order.
    public func namedParameters(prefix: String = "") -> [(String, Parameter)] {
        var out = localParameters.map { (join(prefix, $0.0), $0.1) }
        for (name, child) in children { out += child.namedParameters(prefix: join(prefix, name)) }
        return out
    }

    /// Every buffer below this layer with its dotted name, in a stable order.
    public func namedBuffers(prefix: String = "") -> [(String, Tensor)] {
        var out = localBuffers.map { (join(prefix, $0.0), $0.1) }
        for (name, child) in children { out += child.namedBuffers(prefix: join(prefix, name)) }
        return out
    }

    /// Every layer below this one (itself included, as "" or `prefix`) with its dotted name.
    public func namedLayers(prefix: String = "") -> [(String, Layer)] {
        var out: [(String, Layer)] = [(prefix, self)]
        for (name, child) in children { out += child.namedLayers(prefix: join(prefix, name)) }
        return out
    }

    public var parameterCount: Int { namedParameters().reduce(0) { $0 + $1.1.value.count } }
}

@inline(__always) func join(_ prefix: String, _ name: String) -> String {
    prefix.isEmpty ? name : "\(prefix).\(name)"
}

/// Layers applied one after another; children keep the names they were given.
public final class Sequential: Layer {
    public let children: [(String, Layer)]

    public init(_ children: [(String, Layer)]) { self.children = children }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        children.reduce(x) { $1.1.forward($0, training: training) }
    }

    public func backward(_ dy: Tensor) -> Tensor {
        children.reversed().reduce(dy) { $1.1.backward($0) }
    }
}

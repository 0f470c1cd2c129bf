import Foundation

/// Element-wise operators: activations (one input) and arithmetic with broadcasting.
extension ONNXOperators {
    /// Activations that map each value alone.
    static func unary(_ op: String, _ node: NodeContext) throws -> ((Float) -> Float)? {
        switch op {
        case "Relu": return { max($0, 0) }
        case "Sigmoid": return { 1 / (1 + Foundation.exp(-$0)) }
        case "Tanh": return { Foundation.tanh($0) }
        case "Identity", "Dropout": return { $0 }
        case "Neg": return { -$0 }
        case "Abs": return { abs($0) }
        case "Exp": return { Foundation.exp($0) }
        case "Sqrt": return { $0.squareRoot() }
        case "Reciprocal": return { 1 / $0 }
        case "Floor": return { $0.rounded(.down) }
        case "Ceil": return { $0.rounded(.up) }
        case "Erf": return { Float(Foundation.erf(Double($0))) }
        case "Softplus": return { Foundation.log1p(Foundation.exp(-abs($0))) + max($0, 0) }
        case "LeakyRelu":
            let alpha = try node.float("alpha", default: 0.01)
            return { $0 < 0 ? alpha * $0 : $0 }
        case "Elu":
            let alpha = try node.float("alpha", default: 1)
            return { $0 < 0 ? alpha * (Foundation.exp($0) - 1) : $0 }
        case "Selu":
            let alpha = try node.float("alpha", default: 1.67326319217681884765625)
            let gamma = try node.float("gamma", default: 1.05070102214813232421875)
            return { $0 <= 0 ? gamma * (alpha * Foundation.exp($0) - alpha) : gamma * $0 }
        case "HardSigmoid":
            let alpha = try node.float("alpha", default: 0.2), beta = try node.float("beta", default: 0.5)
            return { max(0, min(1, alpha * $0 + beta)) }
        case "HardSwish": return { $0 * max(0, min(1, $0 / 6 + 0.5)) }
        case "Gelu":
            // PyTorch's nn.GELU (ConvNeXt), exported as one node from opset 20.
            switch try node.string("approximate", default: "none") {
            case "none": return { Float(0.5 * Double($0) * (1 + Foundation.erf(Double($0) / 2.0.squareRoot()))) }
            case "tanh":
                return { x in
                    let v = Double(x)
                    return Float(0.5 * v * (1 + Foundation.tanh((2 / Double.pi).squareRoot() * (v + 0.044715 * v * v * v))))
                }
            case let other: throw node.error("approximate \"\(other)\" (none or tanh)")
            }
        default: return nil
        }
    }

    /// Binary arithmetic with broadcasting, on floats or integers (shape arithmetic).
    static func binary(_ op: String, _ a: ONNXValue, _ b: ONNXValue, node: NodeContext) throws -> ONNXValue {
        guard let shape = broadcastShape(a.shape, b.shape) else {
            throw node.error("cannot broadcast \(a.shape) with \(b.shape)")
        }
        if case let .ints(_, x) = a, case let .ints(_, y) = b {
            let (ia, ib) = (broadcastIndices(a.shape, to: shape), broadcastIndices(b.shape, to: shape))
            let f: (Int64, Int64) throws -> Int64
            switch op {
            case "Add", "Sum": f = { $0 &+ $1 }
            case "Sub": f = { $0 &- $1 }
            case "Mul": f = { $0 &* $1 }
            case "Div": f = { x, y in guard y != 0 else { throw node.error("integer division by zero") }; return x / y }
            case "Max": f = { Swift.max($0, $1) }
            case "Min": f = { Swift.min($0, $1) }
            case "Pow": f = { x, y in
                guard y >= 0, y <= 64 else { throw node.error("integer power \(y)") }
                var r: Int64 = 1
                for _ in 0..<y { r = r &* x }
                return r
            }
            default: throw node.error("\(op) on integers is not supported")
            }
            return .ints(shape, try (0..<ia.count).map { try f(x[ia[$0]], y[ib[$0]]) })
        }
        let (x, y) = (a.floatValues, b.floatValues)
        if a.shape == b.shape, op == "Add" || op == "Sum" {  // a residual sum: no broadcasting to work out
            return .floats(shape, zip(x, y).map { $0 + $1 })
        }
        let (ia, ib) = (broadcastIndices(a.shape, to: shape), broadcastIndices(b.shape, to: shape))
        let f: (Float, Float) -> Float
        switch op {
        case "Add", "Sum": f = { $0 + $1 }
        case "Sub": f = { $0 - $1 }
        case "Mul": f = { $0 * $1 }
        case "Div": f = { $0 / $1 }
        case "Pow": f = { Foundation.pow($0, $1) }
        case "Max": f = { max($0, $1) }
        case "Min": f = { min($0, $1) }
        case "PRelu": f = { $0 < 0 ? $0 * $1 : $0 }
        default: throw node.error("unknown binary operator \(op)")
        }
        return .floats(shape, (0..<ia.count).map { f(x[ia[$0]], y[ib[$0]]) })
    }

    /// Clip: bounds from inputs 2 and 3 (opset 11 and up) or the `min`/`max` attributes.
    static func clip(_ node: NodeContext) throws -> ONNXValue {
        let x = try node.input(0)
        let low = try node.optionalInput(1).map { try node.scalar($0) } ?? node.float("min", default: -.infinity)
        let high = try node.optionalInput(2).map { try node.scalar($0) } ?? node.float("max", default: .infinity)
        if case let .ints(s, v) = x { return .ints(s, v.map { Int64(min(max(Float($0), low), high)) }) }
        return .floats(x.shape, x.floatValues.map { min(max($0, low), high) })
    }
}

import Foundation

/// A model family and its size, parsed from a name such as `resnet20`, `plain20`, `resnet56-b`,
/// `fcn-1024x3-bn` or `student-c2-w1.5`.
public enum Architecture: Equatable, Sendable {
    /// CIFAR-style ResNet of depth 6n+2 (3 stages of n basic blocks, 16/32/64 channels); without
    /// shortcuts when `residual` is false ("plain" nets). Option A pads the identity with zero
    /// channels at stage transitions; option B uses a 1x1 convolution + BN there.
    case resnet(depth: Int, residual: Bool, projectionShortcut: Bool)
    /// Fully connected network with the given hidden widths, optionally with BatchNorm1d.
    case fcn(hidden: [Int], batchNorm: Bool)
    /// A small CNN student: `convLayers` 3x3 conv+BN+ReLU layers (0 = an MLP), a hidden fully
    /// connected layer, and a readout; `width` multiplies every channel and hidden count.
    case student(convLayers: Int, width: Double)
}

/// Everything needed to build a network: its architecture, input shape and class count.
public struct ModelSpec: Equatable, Sendable {
    public let name: String
    public let architecture: Architecture
    public let inputShape: [Int]
    public let classes: Int

    public init(name: String, inputShape: [Int], classes: Int) throws {
        guard inputShape.count == 3, inputShape.allSatisfy({ $0 > 0 }) else {
            throw ModelError.badInput("input shape must be channels,height,width; got \(inputShape)")
        }
        guard classes >= 2 else { throw ModelError.badInput("need at least 2 classes, got \(classes)") }
        self.name = name
        self.architecture = try ModelSpec.parse(name)
        self.inputShape = inputShape
        self.classes = classes
    }

    /// Names `sweep layers` and sweep files accept, with one example each.
    public static let examples = [
        "resnet20", "resnet32", "resnet56", "resnet20-b (option-B 1x1 shortcuts)",
        "plain20", "plain32", "plain56", "fcn-1024x3-bn", "fcn-512-256", "student-c0-w1", "student-c4-w0.5",
    ]

    public static func parse(_ name: String) throws -> Architecture {
        let lower = name.lowercased()
        let parts = lower.split(separator: "-").map(String.init)
        guard let head = parts.first else { throw ModelError.unknown(name) }
        if head.hasPrefix("resnet") || head.hasPrefix("plain") {
            let residual = head.hasPrefix("resnet")
            let digits = head.dropFirst(residual ? 6 : 5)
            guard let depth = Int(digits), depth >= 8, (depth - 2) % 6 == 0 else {
                throw ModelError.unknown("\(name): depth must be 6n+2 (20, 32, 44, 56, 110)")
            }
            let rest = parts.dropFirst()
            guard rest.allSatisfy({ $0 == "b" }), rest.count <= 1, residual || rest.isEmpty else {
                throw ModelError.unknown(name)
            }
            return .resnet(depth: depth, residual: residual, projectionShortcut: rest.count == 1)
        }
        if head == "fcn" {
            var hidden: [Int] = []
            var batchNorm = false
            for part in parts.dropFirst() {
                if part == "bn" { batchNorm = true; continue }
                let wr = part.split(separator: "x")
                guard (1...2).contains(wr.count), let width = Int(wr[0]), width > 0,
                      let repeats = wr.count == 2 ? Int(wr[1]) : 1, repeats > 0 else {
                    throw ModelError.unknown("\(name): hidden layers are WIDTH or WIDTHxCOUNT, e.g. fcn-1024x3-bn")
                }
                hidden += Array(repeating: width, count: repeats)
            }
            return .fcn(hidden: hidden, batchNorm: batchNorm)
        }
        if head == "student" {
            var conv: Int?
            var width = 1.0
            for part in parts.dropFirst() {
                if part.hasPrefix("c"), let k = Int(part.dropFirst()), (0...4).contains(k) { conv = k }
                else if part.hasPrefix("w"), let w = Double(part.dropFirst()), w > 0 { width = w }
                else { throw ModelError.unknown("\(name): expected student-cK-wM with K in 0...4, e.g. student-c2-w1") }
            }
            guard let conv else { throw ModelError.unknown("\(name): missing -cK (conv layers, 0...4)") }
            return .student(convLayers: conv, width: width)
        }
        throw ModelError.unknown(name)
    }
}

/// Why a model could not be built.
public enum ModelError: Error, CustomStringConvertible, Equatable {
    case unknown(String)
    case badInput(String)

    public var description: String {
        switch self {
        case let .unknown(name):
            return "unknown model '\(name)'; valid: \(ModelSpec.examples.joined(separator: ", "))"
        case let .badInput(text):
            return text
        }
    }
}

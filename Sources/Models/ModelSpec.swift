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

    /// Limits that keep a typo (or a hostile checkpoint) from allocating the machine away.
    public static let maxParameters = 1_000_000_000
    public static let maxClasses = 100_000
    public static let maxChannels = 1024
    public static let maxImageSide = 4096

    public init(name: String, inputShape: [Int], classes: Int) throws {
        guard inputShape.count == 3, inputShape.allSatisfy({ $0 > 0 }) else {
            throw ModelError.badInput("input shape must be channels,height,width; got \(inputShape)")
        }
        guard inputShape[0] <= ModelSpec.maxChannels, inputShape[1] <= ModelSpec.maxImageSide, inputShape[2] <= ModelSpec.maxImageSide else {
            throw ModelError.badInput("input shape \(inputShape) is beyond \(ModelSpec.maxChannels) channels of \(ModelSpec.maxImageSide)x\(ModelSpec.maxImageSide) pixels")
        }
        guard (2...ModelSpec.maxClasses).contains(classes) else {
            throw ModelError.badInput("need 2 to \(ModelSpec.maxClasses) classes, got \(classes)")
        }
        self.name = name
        self.architecture = try ModelSpec.parse(name)
        self.inputShape = inputShape
        self.classes = classes
        let parameters = estimatedParameters
        guard parameters <= Double(ModelSpec.maxParameters) else {
            throw ModelError.badInput("\(name) on \(inputShape.map(String.init).joined(separator: "x")) inputs with \(classes) classes would have \(String(format: "%.3g", parameters)) parameters; the limit is \(ModelSpec.maxParameters)")
        }
    }

    /// Trainable parameters of the network this spec builds, computed without building it (in
    /// floating point, so absurd sizes are measured rather than overflowing).
    public var estimatedParameters: Double {
        switch architecture {
        case let .resnet(depth, residual, projection):
            let blocks = (depth - 2) / 6
            var channels = 16.0
            var total = Double(inputShape[0]) * 16 * 9 + 2 * 16
            for (s, width) in [16.0, 32, 64].enumerated() {
                for b in 0..<blocks {
                    total += channels * width * 9 + width * width * 9 + 4 * width
                    let changes = (s > 0 && b == 0) || channels != width
                    if residual && projection && changes { total += channels * width + 2 * width }
                    channels = width
                }
            }
            return total + channels * Double(classes) + Double(classes)
        case let .fcn(hidden, batchNorm):
            var features = Double(inputShape.reduce(1, *))
            var total = 0.0
            for width in hidden.map(Double.init) {
                total += features * width + (batchNorm ? 2 * width : width)
                features = width
            }
            return total + features * Double(classes) + Double(classes)
        case let .student(convLayers, width):
            return Double(Network.studentParameterCount(convLayers: convLayers, width: width, inputShape: inputShape, classes: classes))
        }
    }

    /// The model grammar, as `sweep layers` and sweep files accept it.
    public static let grammar = [
        "resnetD or resnetD-b (D = 6n+2 from 8 to \(maxDepth): resnet8, resnet20, resnet56, resnet110; -b: option-B 1x1 shortcuts)",
        "plainD (the same without shortcuts: plain20)",
        "fcn-W[xK]...[-bn] (hidden widths, K repeats, optional BatchNorm: fcn-1024x3-bn, fcn-512-256)",
        "student-cK-wM (K = 0...4 conv layers, width multiplier M: student-c2-w1, student-c0-w0.5)",
    ]

    /// Names used for "did you mean" suggestions.
    static let common = ["resnet8", "resnet14", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "resnet20-b", "resnet56-b",
                         "plain20", "plain32", "plain56", "fcn-1024x3-bn", "fcn-512-256", "student-c2-w1"]

    /// The common model name closest to `name` (edit distance at most 3), if any.
    public static func suggestion(for name: String) -> String? {
        func distance(_ a: [Character], _ b: [Character]) -> Int {
            var row = Array(0...b.count)
            for (i, x) in a.enumerated() {
                var previous = row[0]
                row[0] = i + 1
                for (j, y) in b.enumerated() {
                    let current = row[j + 1]
                    row[j + 1] = min(row[j + 1] + 1, row[j] + 1, previous + (x == y ? 0 : 1))
                    previous = current
                }
            }
            return row[b.count]
        }
        let lower = Array(name.lowercased())
        let best = common.map { ($0, distance(lower, Array($0))) }.min { $0.1 < $1.1 }
        return best.flatMap { $0.1 <= 3 && $0.1 > 0 ? $0.0 : nil }
    }

    static let maxDepth = 1202
    static let maxWidth = 65536
    static let maxHiddenLayers = 100
    static let maxStudentWidth = 64.0

    public static func parse(_ name: String) throws -> Architecture {
        let lower = name.lowercased()
        let parts = lower.split(separator: "-").map(String.init)
        guard let head = parts.first else { throw ModelError.unknown(name) }
        if head.hasPrefix("resnet") || head.hasPrefix("plain") {
            let residual = head.hasPrefix("resnet")
            let digits = head.dropFirst(residual ? 6 : 5)
            guard let depth = Int(digits), (8...maxDepth).contains(depth), (depth - 2) % 6 == 0 else {
                throw ModelError.malformed(name, "depth must be 6n+2 between 8 and \(maxDepth) (20, 32, 44, 56, 110)")
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
                guard (1...2).contains(wr.count), let width = Int(wr[0]), (1...maxWidth).contains(width),
                      let repeats = wr.count == 2 ? Int(wr[1]) : 1, (1...maxHiddenLayers).contains(repeats),
                      hidden.count + repeats <= maxHiddenLayers else {
                    throw ModelError.malformed(name, "hidden layers are WIDTH or WIDTHxCOUNT (width 1...\(maxWidth), at most \(maxHiddenLayers) layers), e.g. fcn-1024x3-bn")
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
                else if part.hasPrefix("w"), let w = Double(part.dropFirst()), w.isFinite, w > 0, w <= maxStudentWidth { width = w }
                else { throw ModelError.malformed(name, "expected student-cK-wM with K in 0...4 and M in (0, \(Int(maxStudentWidth))], e.g. student-c2-w1") }
            }
            guard let conv else { throw ModelError.malformed(name, "missing -cK (conv layers, 0...4)") }
            return .student(convLayers: conv, width: width)
        }
        throw ModelError.unknown(name)
    }
}

/// Why a model could not be built.
public enum ModelError: Error, CustomStringConvertible, Equatable {
    case unknown(String)
    /// A known family with parameters out of its grammar or range.
    case malformed(String, String)
    case badInput(String)

    public var description: String {
        switch self {
        case let .unknown(name):
            let hint = ModelSpec.suggestion(for: name).map { " (did you mean \($0)?)" } ?? ""
            return "unknown model '\(name)'\(hint); valid: \(ModelSpec.grammar.joined(separator: "; "))"
        case let .malformed(name, reason):
            return "model '\(name)': \(reason); valid: \(ModelSpec.grammar.joined(separator: "; "))"
        case let .badInput(text):
            return text
        }
    }
}

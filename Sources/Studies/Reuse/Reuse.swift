import Foundation
import Models
import SweepFile
import TensorEngine
import Procedures
import SweepCore

/// Parameter reuse (Wang, Cheng, Zhu, Liang 2020): kernels trained on a source task copied into
/// a network for a target task, and the kernel distance between two trained networks.
public enum Reuse {
    /// The weight names of `units` (their conv or linear kernels).
    public static func kernels(of units: [MaskableUnit]) -> [String] {
        units.map { $0.name + ".weight" }
    }

    /// Copies the named tensors from `source` into `target` (shapes must agree).
    public static func copy(_ names: [String], from source: Network, into target: Network) throws {
        for name in names {
            guard let from = source.parameter(name), let to = target.parameter(name) else { throw MaskError.unknownUnit(name) }
            guard from.value.shape == to.value.shape else {
                throw ReuseError(message: "\(name) is \(from.value.shape) in the source network and \(to.value.shape) in the target")
            }
            to.value.assign(from.value)
        }
    }

    /// Root-mean-square difference between the named tensors of two networks, over all their
    /// elements together (0 for a network compared with itself).
    public static func rmse(_ names: [String], _ a: Network, _ b: Network) throws -> Double {
        var sum = 0.0, count = 0
        for name in names {
            guard let x = a.parameter(name)?.value, let y = b.parameter(name)?.value, x.shape == y.shape else {
                throw ReuseError(message: "cannot compare \(name) between the two networks")
            }
            for i in 0..<x.count { let d = Double(x.data[i] - y.data[i]); sum += d * d }
            count += x.count
        }
        return (sum / Double(max(count, 1))).squareRoot()
    }
}

public struct ReuseError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

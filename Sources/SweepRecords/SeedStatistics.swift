import Foundation
import Rendering
import SweepFile

/// Mean, spread and best of one cell's values over seeds.
public struct SeedStatistics {
    let values: [Double]
    var count: Int { values.count }
    public var mean: Double { values.reduce(0, +) / Double(max(values.count, 1)) }
    public var best: Double { values.max() ?? .nan }
    /// Sample standard deviation (0 for a single value).
    public var deviation: Double {
        guard values.count > 1 else { return 0 }
        let m = mean
        return (values.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(values.count - 1)).squareRoot()
    }

    public init(_ values: [Double]) { self.values = values }

    /// "0.8812 ± 0.0031 (n=3)".
    public var text: String { count > 1 ? "\(Format.fixed(mean, 4)) ± \(Format.fixed(deviation, 4)) (n=\(count))" : Format.fixed(mean, 4) }
}

extension Array where Element == ResultRow {
    /// Rows that finished with a test accuracy.
    public var succeeded: [ResultRow] { filter { $0.status == .ok && $0.testAccuracy != nil } }
}

import Foundation
import Models

/// Selects maskable units by exact name or shell-style glob (`stage*.block*.conv1`, `fc?`).
public enum LayerMatcher {
    /// The units of `model` (names do not depend on the input shape).
    public static func units(of model: String) throws -> [MaskableUnit] {
        Network.build(try ModelSpec(name: model, inputShape: [1, 28, 28], classes: 10), seed: 0).units
    }

    /// Units matching any pattern, in network order.
    public static func select(_ units: [MaskableUnit], patterns: [String]) -> [MaskableUnit] {
        units.filter { unit in patterns.contains { fnmatch($0, unit.name, 0) == 0 } }
    }

    public static func select(_ units: [MaskableUnit], _ selection: LayerSelection) -> [MaskableUnit] {
        switch selection {
        case .all: return units
        case let .patterns(p): return select(units, patterns: p)
        }
    }
}

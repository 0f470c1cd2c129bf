import Foundation
import Models

/// Selects maskable units by exact name or shell-style glob (`stage*.block*.conv1`, `fc?`).
public enum LayerMatcher {
    /// The units of `model` (names do not depend on the input shape): a built-in architecture's,
    /// or an imported graph's as `spec` summarises it.
    public static func units(of model: String, in spec: SweepSpec? = nil) throws -> [MaskableUnit] {
        if let graph = spec?.graphs[model] { return graph.maskableUnits }
        if let spec, spec.isGraph(model) { throw RunError(path: model, message: "the units of an imported graph are known once its file is read") }
        return Network.build(try ModelSpec(name: model, inputShape: [1, 28, 28], classes: 10), seed: 0).units
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

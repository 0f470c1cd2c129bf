import Datasets
import Procedures
import Yams

/// One step of a path into a YAML document: a mapping key or a sequence index.
public enum PathComponent: Equatable, Sendable {
    case key(String)
    case index(Int)
}

/// The composed YAML of a sweep file, used to point errors at lines.
public struct NodeTree {
    let root: Node
    let file: String

    /// The node at `path`, if the document has one.
    public func node(at path: [PathComponent]) -> Node? {
        var current: Node? = root
        for component in path {
            switch component {
            case let .key(k): current = current?.mapping?[k]
            case let .index(i):
                guard let seq = current?.sequence, i < seq.count else { return nil }
                current = seq[i]
            }
        }
        return current
    }

    /// The line of the deepest node along `path` that exists.
    func line(_ path: [PathComponent]) -> Int? {
        var p = path
        while true {
            if let mark = node(at: p)?.mark { return mark.line }
            if p.isEmpty { return nil }
            p.removeLast()
        }
    }

    public func error(_ path: [PathComponent], _ message: String) -> SpecError {
        SpecError(file: file, line: line(path), field: NodeTree.describe(path), message: message)
    }

    /// `training.epochs`, `datasets[1].train_limit`.
    static func describe(_ path: [PathComponent]) -> String {
        var out = ""
        for c in path {
            switch c {
            case let .key(k): out += out.isEmpty ? k : ".\(k)"
            case let .index(i): out += "[\(i)]"
            }
        }
        return out
    }

    /// Rejects keys a section does not define (typos would otherwise be silently ignored).
    public func checkKeys(_ path: [PathComponent], allowed: [String]) throws {
        guard let mapping = node(at: path)?.mapping else { return }
        for (key, _) in mapping {
            guard let name = key.string, !allowed.contains(name) else { continue }
            let suggestion = allowed.min { editDistance($0, name) < editDistance($1, name) }
            let hint = suggestion.map { editDistance($0, name) <= 3 ? " (did you mean '\($0)'?)" : "" } ?? ""
            throw SpecError(file: file, line: key.mark?.line, field: NodeTree.describe(path + [.key(name)]),
                            message: "unknown field\(hint); valid fields here: \(allowed.joined(separator: ", "))")
        }
    }

    /// Turns a Codable decoding failure into a line-numbered message.
    func decodingError(_ error: DecodingError) -> SpecError {
        func path(_ codingPath: [CodingKey]) -> [PathComponent] {
            codingPath.map { key in key.intValue.map { .index($0) } ?? .key(key.stringValue) }
        }
        switch error {
        case let .keyNotFound(key, context):
            return self.error(path(context.codingPath), "missing required field '\(key.stringValue)'")
        case let .typeMismatch(type, context):
            let p = path(context.codingPath)
            return self.error(p, "expected \(NodeTree.typeName(type)), found \(NodeTree.describeValue(node(at: p)))")
        case let .valueNotFound(type, context):
            return self.error(path(context.codingPath), "expected \(NodeTree.typeName(type)), found nothing")
        case let .dataCorrupted(context):
            let p = path(context.codingPath)
            // A value outside an enumeration: name the field's valid choices.
            let field = p.reversed().compactMap { component -> String? in if case let .key(k) = component { return k } else { return nil } }.first
            if let field, let (what, valid) = NodeTree.choices[field] {
                return self.error(p, "unknown \(what) '\(node(at: p)?.string ?? "?")'; valid: \(valid.joined(separator: ", "))")
            }
            return self.error(p, context.debugDescription)
        @unknown default:
            return SpecError(file: file, line: nil, field: nil, message: "\(error)")
        }
    }

    /// Fields whose values come from a fixed set, by field name.
    static let choices: [String: (String, [String])] = {
        var out: [String: (String, [String])] = [
            "masks": ("mask", MaskKind.allCases.map(\.rawValue)),
            "study": ("study", DeclaredStudies.names),
            "transform": ("transform", ImageTransform.allCases.map(\.rawValue)),
        ]
        for study in DeclaredStudies.all { for (field, choice) in study.choices { out[field] = (choice.what, choice.valid) } }
        return out
    }()

    /// `'many'`, `a list`, `a mapping`: what the file holds where another type was expected.
    static func describeValue(_ node: Node?) -> String {
        guard let node else { return "nothing" }
        if let scalar = node.scalar { return "'\(scalar.string)'" }
        if node.sequence != nil { return "a list" }
        if node.mapping != nil { return "a mapping" }
        return "something else"
    }

    static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is Int.Type, is UInt64.Type: return "an integer"
        case is Float.Type, is Double.Type: return "a number"
        case is String.Type: return "a string"
        case is Bool.Type: return "true or false"
        default:
            // Yams names its node types when the file holds another kind of node.
            let name = "\(type)"
            if name.hasPrefix("Array") || name.contains("Sequence") { return "a list" }
            if name.contains("Dictionary") || name.contains("Mapping") { return "a mapping" }
            return name.contains("Scalar") ? "a single value" : name
        }
    }
}

/// Levenshtein distance, for "did you mean" hints on misspelt fields.
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    var previous = Array(0...b.count)
    for i in 1...max(a.count, 1) where !a.isEmpty {
        var current = [i] + Array(repeating: 0, count: b.count)
        for j in 1...max(b.count, 1) where !b.isEmpty {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        previous = current
    }
    return previous[b.count]
}

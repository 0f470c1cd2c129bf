import Foundation
import Rendering
import Yams

/// `key=value` overrides of sweep-file fields on the command line
/// (`sweep run sweeps/quick.yaml training.epochs=1 seeds=1`): dotted paths into the file's
/// mapping, values in YAML. The overridden text is what the run records as its spec, so the run
/// directory says what ran; the fields are checked as if the file held them, and an error in an
/// overridden field names the override.
public enum SpecOverrides {
    /// `text` with every override applied, and a first comment line listing them.
    public static func apply(_ overrides: [String], to text: String, file: String) throws -> String {
        guard !overrides.isEmpty else { return text }
        guard var root = try Yams.compose(yaml: text), root.mapping != nil else {
            throw SpecError(file: file, line: nil, field: nil, message: "a sweep file is a mapping of fields (name:, datasets:, models:, ...)")
        }
        for override in overrides {
            let (path, value) = try parse(override)
            set(&root, path: path, to: value)
        }
        // Each override as a quoted scalar: its text can end neither the comment nor the line.
        return "# command-line overrides: \(overrides.map(SafeText.yamlQuoted).joined(separator: " "))\n" + (try Yams.serialize(node: root))
    }

    /// The dotted path and YAML value of `key=value`.
    static func parse(_ override: String) throws -> ([String], Node) {
        guard let eq = override.firstIndex(of: "="), eq != override.startIndex else {
            throw SpecError(file: "override \(override)", line: nil, field: nil, message: "is not KEY=VALUE (e.g. training.epochs=1)")
        }
        let path = override[..<eq].split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard path.allSatisfy({ !$0.isEmpty }) else {
            throw SpecError(file: "override \(override)", line: nil, field: nil, message: "the key is a dotted path of field names (e.g. evaluation.batch_size)")
        }
        if let control = override.unicodeScalars.first(where: SafeText.isControl) {
            throw SpecError(file: "override \(SafeText.terminal(override))", line: nil, field: nil,
                            message: "holds a control character (U+\(String(format: "%04X", control.value))); an override is one line of text")
        }
        let valueText = String(override[override.index(after: eq)...])
        guard !valueText.trimmingCharacters(in: .whitespaces).isEmpty else {
            throw SpecError(file: "override \(override)", line: nil, field: nil,
                            message: "has no value (an empty shell variable?); write the value after '=', or leave the field out for its default")
        }
        let value: Node
        do { value = try Yams.compose(yaml: valueText) ?? Node("") } catch {
            throw SpecError(file: "override \(override)", line: nil, field: nil, message: "the value is not YAML: \(error)")
        }
        return (path, value)
    }

    /// Sets `path` in `node`, creating mappings on the way.
    static func set(_ node: inout Node, path: [String], to value: Node) {
        guard let first = path.first else { node = value; return }
        var child = node[first] ?? Node.mapping(Node.Mapping([]))
        if path.count > 1, child.mapping == nil { child = Node.mapping(Node.Mapping([])) }
        set(&child, path: Array(path.dropFirst()), to: value)
        node[first] = child
    }

    /// A spec error about an overridden field, told as the override's error (its line is in
    /// text the user never wrote).
    public static func explain(_ error: SpecError, overrides: [String]) -> SpecError {
        guard let field = error.field else { return error }
        for override in overrides.reversed() {
            let key = String(override.prefix { $0 != "=" })
            if field == key || field.hasPrefix(key + ".") || field.hasPrefix(key + "[") || key.hasPrefix(field + ".") {
                return SpecError(file: "override \(override)", line: nil, field: field, message: error.message)
            }
        }
        return error
    }
}

import Foundation

/// Text that came from a user or a file, made safe where it goes. Names (datasets, checkpoint
/// files, sweeps) and messages quoting file contents reach a terminal, a spreadsheet, a web page
/// and YAML; in each, some characters are commands rather than text.
public enum SafeText {
    // MARK: - Terminal

    /// `text` with every control character shown as an escape (`\e`, `\a`, `\n`, `\u{85}`):
    /// an ESC sequence in a dataset name can neither recolour, retitle nor clear a terminal, and a
    /// newline cannot forge a line of the log.
    public static func terminal(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: isControl) else { return text }
        var out = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            guard isControl(scalar) else { out.append(scalar); continue }
            out.append(contentsOf: escape(scalar).unicodeScalars)
        }
        return String(out)
    }

    /// `terminal` for a text of several lines: each line made safe, the line breaks kept
    /// (usage and help texts).
    public static func terminalLines(_ text: String) -> String {
        text.split(separator: "\n", omittingEmptySubsequences: false).map { terminal(String($0)) }.joined(separator: "\n")
    }

    /// C0 and C1 controls, DEL, the Unicode line and paragraph separators (line breaks to YAML 1.1)
    /// and the bidirectional overrides (which reorder what a reader sees).
    public static func isControl(_ s: Unicode.Scalar) -> Bool {
        switch s.value {
        case 0x00...0x1F, 0x7F...0x9F, 0x2028, 0x2029, 0x202A...0x202E, 0x2066...0x2069: return true
        default: return false
        }
    }

    private static func escape(_ s: Unicode.Scalar) -> String {
        switch s.value {
        case 0x1B: return "\\e"
        case 0x07: return "\\a"
        case 0x0A: return "\\n"
        case 0x0D: return "\\r"
        case 0x09: return "\\t"
        default: return "\\u{\(String(s.value, radix: 16))}"
        }
    }

    // MARK: - CSV

    /// An RFC 4180 field that a spreadsheet shows as text: a cell that would start a formula
    /// (`=`, `+`, `-`, `@`, tab, CR; OWASP's list) and is not a number gets a leading `'`, and
    /// fields with commas, quotes or line breaks are quoted, quotes doubled. Numbers, negative
    /// ones included, stay numbers.
    public static func csvField(_ field: String) -> String {
        var cell = field
        if let first = cell.unicodeScalars.first, "=+-@\t\r".unicodeScalars.contains(first), Double(cell) == nil {
            cell = "'" + cell
        }
        guard cell.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return cell }
        return "\"" + cell.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    // MARK: - YAML

    /// A YAML double-quoted scalar holding `text` exactly, on one line: quotes and backslashes
    /// escaped, everything outside printable ASCII as `\uXXXX` (so no line break of any YAML
    /// version can end a comment or a scalar early).
    public static func yamlQuoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar.value {
            case 0x22: out += "\\\""
            case 0x5C: out += "\\\\"
            case 0x20...0x7E: out.unicodeScalars.append(scalar)
            case 0...0xFFFF: out += String(format: "\\u%04X", scalar.value)
            default: out += String(format: "\\U%08X", scalar.value)
            }
        }
        return out + "\""
    }
}

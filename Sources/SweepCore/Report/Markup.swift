import Foundation

/// A tiny builder for XHTML-compatible markup: every element closed, every attribute quoted,
/// every text escaped, so the page parses as XML as well as HTML.
public struct Markup {
    private(set) var text = ""

    /// Markup-escaped text; control characters other than line breaks and tabs (which XML
    /// forbids and a name may smuggle in) are shown as their escapes, as on the terminal.
    static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.count)
        for ch in s {
            if ch != "\n", ch != "\t", ch.unicodeScalars.contains(where: SafeText.isControl) {
                out += escape(SafeText.terminal(String(ch)))
                continue
            }
            switch ch {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(ch)
            }
        }
        return out
    }

    private static func attributes(_ attrs: KeyValuePairs<String, String>) -> String {
        attrs.map { " \($0.key)=\"\(escape($0.value))\"" }.joined()
    }

    /// `<name attrs>` … `</name>` around whatever `body` adds.
    mutating func element(_ name: String, _ attrs: KeyValuePairs<String, String> = [:], _ body: (inout Markup) -> Void) {
        text += "<\(name)\(Markup.attributes(attrs))>"
        body(&self)
        text += "</\(name)>"
    }

    /// `<name attrs>text</name>`.
    mutating func element(_ name: String, _ attrs: KeyValuePairs<String, String> = [:], text content: String) {
        text += "<\(name)\(Markup.attributes(attrs))>\(Markup.escape(content))</\(name)>"
    }

    /// `<name attrs/>`.
    mutating func empty(_ name: String, _ attrs: KeyValuePairs<String, String> = [:]) {
        text += "<\(name)\(Markup.attributes(attrs))/>"
    }

    mutating func raw(_ s: String) { text += s }

    mutating func add(_ s: String) { text += Markup.escape(s) }

    /// A self-contained XHTML page: `title`, inline `css`, and the body `body` writes.
    static func page(title: String, css: String, body: (inout Markup) -> Void) -> String {
        var m = Markup()
        m.raw("<!DOCTYPE html>\n")
        m.element("html", ["xmlns": "http://www.w3.org/1999/xhtml", "lang": "en"]) { m in
            m.element("head") { m in
                m.empty("meta", ["charset": "utf-8"])
                m.element("title", text: title)
                m.element("style", text: css)
            }
            m.element("body") { body(&$0) }
        }
        return m.text
    }
}

/// Numbers as the report prints them.
enum Format {
    static func fixed(_ v: Double, _ digits: Int = 3) -> String { String(format: "%.\(digits)f", v) }
    static func signed(_ v: Double, _ digits: Int = 3) -> String { String(format: "%+.\(digits)f", v) }
    /// SVG coordinates: short and locale-free.
    static func coordinate(_ v: Double) -> String { String(format: "%.1f", v) }
    /// 0.95 -> "95%", 0.975 -> "97.5%".
    static func percent(_ v: Double) -> String {
        let p = (v * 1000).rounded() / 10
        return p == p.rounded() ? "\(Int(p))%" : String(format: "%.1f%%", p)
    }
}

import Foundation

/// A tiny builder for XHTML-compatible markup: every element closed, every attribute quoted,
/// every text escaped, so the page parses as XML as well as HTML.
public struct Markup {
    public private(set) var text = ""
    /// Figures drawn with `figure(named:)`, as standalone SVG files (name and text).
    public private(set) var figures: [(name: String, svg: String)] = []
    /// Tables written with `table(named:)`, as CSV and LaTeX (booktabs) files.
    public private(set) var tables: [(name: String, csv: String, latex: String)] = []
    /// Figures as PDF files (drawn from the same elements as their SVG).
    public private(set) var pdfs: [(name: String, pdf: Data)] = []
    /// While a figure is drawn: its elements as a tree (the open ones last), for the PDF.
    private var recording: [FigureElement] = []

    /// Markup-escaped text; control characters other than line breaks and tabs (which XML
    /// forbids and a name may smuggle in) are shown as their escapes, as on the terminal.
    public static func escape(_ s: String) -> String {
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
    public mutating func element(_ name: String, _ attrs: KeyValuePairs<String, String> = [:], _ body: (inout Markup) -> Void) {
        text += "<\(name)\(Markup.attributes(attrs))>"
        let node = record(name, attrs)
        if let node { recording.append(node) }
        body(&self)
        if node != nil { recording.removeLast() }
        text += "</\(name)>"
    }

    /// `<name attrs>text</name>`.
    public mutating func element(_ name: String, _ attrs: KeyValuePairs<String, String> = [:], text content: String) {
        text += "<\(name)\(Markup.attributes(attrs))>\(Markup.escape(content))</\(name)>"
        record(name, attrs)?.text = content
    }

    /// `<name attrs/>`.
    public mutating func empty(_ name: String, _ attrs: KeyValuePairs<String, String> = [:]) {
        text += "<\(name)\(Markup.attributes(attrs))/>"
        record(name, attrs)
    }

    /// The element as a child of the open one, while a figure is being drawn.
    @discardableResult
    private func record(_ name: String, _ attrs: KeyValuePairs<String, String>) -> FigureElement? {
        guard let parent = recording.last else { return nil }
        let node = FigureElement(name: name, attributes: Dictionary(attrs.map { ($0.key, $0.value) }, uniquingKeysWith: { _, b in b }))
        parent.children.append(node)
        return node
    }

    mutating func raw(_ s: String) { text += s }

    /// Draws an SVG figure here and keeps it as a standalone file `name`.svg (its own styles
    /// inside, so it reads the same outside the page). `draw` adds exactly one `<svg>` element.
    public mutating func figure(named name: String, _ draw: (inout Markup) -> Void) {
        var own = Markup()
        let root = FigureElement(name: "", attributes: [:])
        own.recording = [root]
        draw(&own)
        text += own.text
        let file = unique(FileName.safe(name), among: figures.map(\.name))
        figures.append((file, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n" + own.text + "\n"))
        if let svg = root.children.first(where: { $0.name == "svg" }) { pdfs.append((file, PDFFigure.document(svg))) }
    }

    /// An HTML table (`header`, then `rows` of plain text), kept as `name`.csv and `name`.tex;
    /// `rowClass` gives a row a class (a highlight).
    public mutating func table(named name: String, attributes: KeyValuePairs<String, String> = [:], header: [String], rows: [[String]],
                        rowClass: (Int) -> String? = { _ in nil }) {
        element("table", attributes) { m in
            m.element("tr") { m in for h in header { m.element("th", text: h) } }
            for (i, row) in rows.enumerated() {
                let body: (inout Markup) -> Void = { m in for cell in row { m.element("td", text: cell) } }
                if let c = rowClass(i) { m.element("tr", ["class": c], body) } else { m.element("tr", [:], body) }
            }
        }
        let csv = ([header] + rows).map { $0.map(SafeText.csvField).joined(separator: ",") }.joined(separator: "\n") + "\n"
        tables.append((unique(FileName.safe(name), among: tables.map(\.name)), csv, LaTeX.booktabs(header: header, rows: rows)))
    }

    /// `name`, or `name-2`, `name-3` ... when taken.
    private func unique(_ name: String, among taken: [String]) -> String {
        guard taken.contains(name) else { return name }
        var i = 2
        while taken.contains("\(name)-\(i)") { i += 1 }
        return "\(name)-\(i)"
    }


    public mutating func add(_ s: String) { text += Markup.escape(s) }

    /// A self-contained XHTML page: `title`, inline `css`, and the body `body` writes.
    static func page(title: String, css: String, body: (inout Markup) -> Void) -> String {
        document(title: title, css: css, body: body).text
    }

    /// The page and the figures and tables drawn on it.
    public static func document(title: String, css: String, body: (inout Markup) -> Void) -> Markup {
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
        return m
    }
}

/// Numbers as the report prints them.
public enum Format {
    public static func fixed(_ v: Double, _ digits: Int = 3) -> String { String(format: "%.\(digits)f", v) }
    public static func signed(_ v: Double, _ digits: Int = 3) -> String { String(format: "%+.\(digits)f", v) }
    /// SVG coordinates: short and locale-free.
    public static func coordinate(_ v: Double) -> String { String(format: "%.1f", v) }
    /// 0.95 -> "95%", 0.975 -> "97.5%".
    public static func percent(_ v: Double) -> String {
        let p = (v * 1000).rounded() / 10
        return p == p.rounded() ? "\(Int(p))%" : String(format: "%.1f%%", p)
    }
}

/// File names made from dataset, model and unit names (which users choose): letters, digits,
/// `.`, `-` and `_` kept, anything else `_`, never empty or hidden.
public enum FileName {
    static func safe(_ name: String) -> String {
        let kept = String(name.map { $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) ? $0 : "_" }.prefix(120))
        return kept.isEmpty || kept.hasPrefix(".") ? "_" + kept : kept
    }
}

/// Tables as LaTeX, booktabs style (`\\usepackage{booktabs}`): every character LaTeX treats
/// specially escaped, and the page's Unicode signs (Δ, −, ≤, …) as their math forms.
public enum LaTeX {
    static func escape(_ s: String) -> String {
        var out = ""
        for ch in s {
            switch ch {
            case "\\": out += "\\textbackslash{}"
            case "&", "%", "$", "#", "_", "{", "}": out += "\\" + String(ch)
            case "~": out += "\\textasciitilde{}"
            case "^": out += "\\textasciicircum{}"
            case "Δ": out += "$\\Delta$"
            case "−": out += "$-$"
            case "≤": out += "$\\le$"
            case "≥": out += "$\\ge$"
            case "±": out += "$\\pm$"
            case "…": out += "\\ldots{}"
            case "·": out += "$\\cdot$"
            case "▸": out += "$\\triangleright$"
            case "≈": out += "$\\approx$"
            default:
                if ch.unicodeScalars.contains(where: SafeText.isControl) { out += " " } else { out.append(ch) }
            }
        }
        return out
    }

    /// A hyphen that is a minus sign ("-0.500", "[-0.1, ...") as one.
    static func minusSigns(_ s: String) -> String {
        var out = ""
        var previous: Character = " "
        let chars = Array(s)
        for (i, ch) in chars.enumerated() {
            if ch == "-", " [(,/".contains(previous), i + 1 < chars.count, chars[i + 1].isNumber { out.append("−") } else { out.append(ch) }
            previous = ch
        }
        return out
    }

    static func booktabs(header: [String], rows: [[String]]) -> String {
        let escape = { (cell: String) in LaTeX.escape(minusSigns(cell)) }
        let columns = String(repeating: "l", count: max(header.count, 1))
        var out = "% layersweep table; needs \\usepackage{booktabs}\n\\begin{tabular}{\(columns)}\n\\toprule\n"
        out += header.map(escape).joined(separator: " & ") + " \\\\\n\\midrule\n"
        for row in rows { out += row.map(escape).joined(separator: " & ") + " \\\\\n" }
        return out + "\\bottomrule\n\\end{tabular}\n"
    }
}

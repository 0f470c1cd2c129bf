import Foundation

/// One element of a figure as it was drawn (name, attributes, text, children): what the PDF
/// is made from, so the PDF needs no SVG reader.
final class FigureElement {
    let name: String
    let attributes: [String: String]
    var text: String?
    var children: [FigureElement] = []

    init(name: String, attributes: [String: String]) {
        (self.name, self.attributes) = (name, attributes)
    }
}

/// A figure as a one-page vector PDF, drawn from the same elements as its SVG (rect, line,
/// polyline, polygon, circle, text; styles by class as `FigureStyle` gives them), at the SVG's
/// size (1 px = 0.75 pt). Text is set in the PDF's standard fonts: Helvetica (bold for headings),
/// Symbol for Δ, −, ≈, ≤, ≥, √, and ZapfDingbats for ▲ ▼; nothing is embedded or fetched.
enum PDFFigure {
    /// The look `FigureStyle.css` gives each class, for the PDF.
    struct Style {
        var fill: String?
        var stroke: String?
        var strokeWidth: Double?
        var dash: [Double]?
        var opacity: Double?
        var fontSize: Double?
        var bold = false
    }

    static let classes: [String: Style] = [
        "colhead": Style(fontSize: 12, bold: true), "rowhead": Style(fontSize: 11), "transition": Style(bold: true), "value": Style(fontSize: 11),
        "tick": Style(fill: "#333333", fontSize: 11), "axis": Style(fill: "#333333", fontSize: 11),
        "stage-boundary": Style(stroke: "#222222", strokeWidth: 1.2), "axisline": Style(stroke: "#444444"), "minor": Style(stroke: "#888888"),
        "trivial-mark": Style(fill: "none", stroke: "#1a7f37", strokeWidth: 1.5, dash: [3, 2]),
        "strip": Style(strokeWidth: 0.6, opacity: 0.5), "seed-dot": Style(opacity: 0.9), "band": Style(stroke: "none", opacity: 0.18),
    ]

    static func document(_ svg: FigureElement) -> Data {
        let width = Double(svg.attributes["width"] ?? "") ?? 400, height = Double(svg.attributes["height"] ?? "") ?? 300
        var page = Page(height: height)
        page.draw(svg, inherited: Style())
        return assemble(content: page.content, width: width * 0.75, height: height * 0.75, alphas: page.alphas)
    }

    /// The content stream of one page and the opacities it uses.
    struct Page {
        let height: Double
        var content = ""
        var alphas: [Double] = []

        init(height: Double) { self.height = height }

        func x(_ v: Double) -> String { number(v * 0.75) }
        func y(_ v: Double) -> String { number((height - v) * 0.75) }

        mutating func draw(_ e: FigureElement, inherited: Style) {
            var style = inherited
            for c in (e.attributes["class"] ?? "").split(separator: " ") {
                guard let s = PDFFigure.classes[String(c)] else { continue }
                style.fill = s.fill ?? style.fill
                style.stroke = s.stroke ?? style.stroke
                style.strokeWidth = s.strokeWidth ?? style.strokeWidth
                style.dash = s.dash ?? style.dash
                style.opacity = s.opacity ?? style.opacity
                style.fontSize = s.fontSize ?? style.fontSize
                style.bold = style.bold || s.bold
            }
            let a = e.attributes
            if let f = a["fill"] { style.fill = f }
            if let s = a["stroke"] { style.stroke = s }
            if let w = a["stroke-width"].flatMap(Double.init) { style.strokeWidth = w }
            if let d = a["stroke-dasharray"] { style.dash = d == "none" ? nil : d.split(separator: " ").compactMap { Double($0) } }
            if let o = a["stroke-opacity"].flatMap(Double.init) { style.opacity = o }
            func n(_ key: String) -> Double { Double(a[key] ?? "") ?? 0 }
            switch e.name {
            case "rect":
                let path = "\(x(n("x"))) \(y(n("y") + n("height"))) \(number(n("width") * 0.75)) \(number(n("height") * 0.75)) re"
                shape(style, defaultFill: "#000000", path: path)
            case "line":
                let path = "\(x(n("x1"))) \(y(n("y1"))) m \(x(n("x2"))) \(y(n("y2"))) l"
                shape(style, defaultFill: "none", stroke: true, path: path)
            case "polyline", "polygon":
                let points = (a["points"] ?? "").split(separator: " ").compactMap { pair -> (Double, Double)? in
                    let xy = pair.split(separator: ",").compactMap { Double($0) }
                    return xy.count == 2 ? (xy[0], xy[1]) : nil
                }
                guard let first = points.first else { break }
                let path = "\(x(first.0)) \(y(first.1)) m " + points.dropFirst().map { "\(x($0.0)) \(y($0.1)) l" }.joined(separator: " ")
                shape(style, defaultFill: e.name == "polygon" ? "#000000" : "none", stroke: e.name == "polyline", path: path + (e.name == "polygon" ? " h" : ""))
            case "circle":
                let (cx, cy, r) = (n("cx"), n("cy"), n("r"))
                let k = 0.5523 * r
                let path = "\(x(cx + r)) \(y(cy)) m "
                    + "\(x(cx + r)) \(y(cy + k)) \(x(cx + k)) \(y(cy + r)) \(x(cx)) \(y(cy + r)) c "
                    + "\(x(cx - k)) \(y(cy + r)) \(x(cx - r)) \(y(cy + k)) \(x(cx - r)) \(y(cy)) c "
                    + "\(x(cx - r)) \(y(cy - k)) \(x(cx - k)) \(y(cy - r)) \(x(cx)) \(y(cy - r)) c "
                    + "\(x(cx + k)) \(y(cy - r)) \(x(cx + r)) \(y(cy - k)) \(x(cx + r)) \(y(cy)) c h"
                shape(style, defaultFill: "#000000", path: path)
            case "text":
                text(e, style)
            case "title", "style":
                break
            default:
                for child in e.children { draw(child, inherited: style) }
            }
        }

        /// Fills and/or strokes `path` in `style`.
        mutating func shape(_ style: Style, defaultFill: String, stroke: Bool = false, path: String) {
            let fill = PDFFigure.rgb(style.fill ?? defaultFill)
            let line = PDFFigure.rgb(style.stroke ?? (stroke ? "#000000" : "none"))
            guard fill != nil || line != nil else { return }
            var ops = "q "
            if let o = style.opacity, o < 1 { ops += "/A\(alpha(o)) gs " }
            if let fill { ops += "\(fill) rg " }
            if let line {
                ops += "\(line) RG \(number((style.strokeWidth ?? 1) * 0.75)) w "
                if let dash = style.dash, !dash.isEmpty { ops += "[\(dash.map { number($0 * 0.75) }.joined(separator: " "))] 0 d " }
            }
            ops += path + (fill != nil && line != nil ? " B" : fill != nil ? " f" : " S") + " Q\n"
            content += ops
        }

        mutating func alpha(_ o: Double) -> Int {
            if let i = alphas.firstIndex(of: o) { return i }
            alphas.append(o)
            return alphas.count - 1
        }

        /// A text run by run: each character in the standard font that has it, placed by the
        /// fonts' widths so that middle and end anchors land where the SVG puts them.
        mutating func text(_ e: FigureElement, _ style: Style) {
            guard let string = e.text, !string.isEmpty else { return }
            let a = e.attributes
            let size = style.fontSize ?? 11
            let runs = PDFFigure.runs(string, bold: style.bold)
            let width = runs.reduce(0) { $0 + $1.width } * size / 1000
            let shift = a["text-anchor"] == "middle" ? width / 2 : a["text-anchor"] == "end" ? width : 0
            var (px, py) = (Double(a["x"] ?? "") ?? 0, Double(a["y"] ?? "") ?? 0)
            let rotated = (a["transform"] ?? "").hasPrefix("rotate(-90")
            if rotated { py += shift } else { px -= shift }
            let color = PDFFigure.rgb(style.fill ?? "#111111") ?? "0 0 0"
            var ops = "q \(color) rg BT "
            if let o = style.opacity, o < 1 { ops = "q /A\(alpha(o)) gs \(color) rg BT " }
            ops += rotated ? "0 1 -1 0 \(x(px)) \(y(py)) Tm " : "1 0 0 1 \(x(px)) \(y(py)) Tm "
            for run in runs { ops += "/\(run.font) \(number(size * 0.75)) Tf (\(run.bytes)) Tj " }
            content += ops + "ET Q\n"
        }
    }

    /// A number as PDF writes it: short, locale-free.
    static func number(_ v: Double) -> String {
        guard v.isFinite else { return "0" }
        let s = String(format: "%.2f", v)
        return s.hasSuffix(".00") ? String(s.dropLast(3)) : s
    }

    /// "#rrggbb" as "r g b" (0…1); nil for "none" or anything else.
    static func rgb(_ hex: String) -> String? {
        guard hex.hasPrefix("#"), hex.count == 7, let v = Int(hex.dropFirst(), radix: 16) else { return nil }
        return [v >> 16, (v >> 8) & 255, v & 255].map { number(Double($0) / 255) }.joined(separator: " ")
    }

    /// Text split into runs of one font: (font resource, escaped bytes, width in 1/1000 em).
    static func runs(_ s: String, bold: Bool) -> [(font: String, bytes: String, width: Double)] {
        var out: [(String, String, Double)] = []
        for ch in s {
            let (font, code, width) = glyph(ch, bold: bold)
            let byte = code == 0x28 || code == 0x29 || code == 0x5C ? "\\" + String(UnicodeScalar(code)) : code < 32 || code > 126 ? String(format: "\\%03o", code) : String(UnicodeScalar(code))
            if let last = out.last, last.0 == font { out[out.count - 1] = (font, last.1 + byte, last.2 + width) } else { out.append((font, byte, width)) }
        }
        return out
    }

    /// The font, code and width of one character.
    static func glyph(_ ch: Character, bold: Bool) -> (font: String, code: UInt8, width: Double) {
        let regular = bold ? "F2" : "F1"
        switch ch {
        case "Δ": return ("F3", 0x44, 612)
        case "−": return ("F3", 0x2D, 549)
        case "≈": return ("F3", 0xBB, 549)
        case "≤": return ("F3", 0xA3, 549)
        case "≥": return ("F3", 0xB3, 549)
        case "√": return ("F3", 0xD6, 549)
        case "→": return ("F3", 0xAE, 987)
        case "▲": return ("F4", 0x73, 788)
        case "▼": return ("F4", 0x74, 788)
        case "▸": return ("F4", 0xE0, 500)
        case "…": return (regular, 0x85, 1000)
        case "·": return (regular, 0xB7, 278)
        case "±": return (regular, 0xB1, 584)
        case "×": return (regular, 0xD7, 584)
        default:
            guard let v = ch.unicodeScalars.first?.value, ch.unicodeScalars.count == 1, v >= 32, v <= 255, v != 127 else { return (regular, 0x3F, 556) }
            let code = UInt8(v)
            let w = v < 127 ? helvetica[Int(v) - 32] : 556
            return (regular, code, bold ? w * 1.04 : w)
        }
    }

    /// Helvetica's advance widths for ASCII 32…126 (Adobe's AFM), in 1/1000 em.
    static let helvetica: [Double] = [
        278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278,
        556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556,
        1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778,
        667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556,
        333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556,
        556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584,
    ]

    /// The PDF file: catalog, one page of `width` × `height` points, the four standard fonts,
    /// the opacities, the content; the cross-reference table with each object's byte offset.
    static func assemble(content: String, width: Double, height: Double, alphas: [Double]) -> Data {
        let stream = Data(content.utf8)
        let states = alphas.enumerated().map { "/A\($0.offset) << /Type /ExtGState /CA \(number($0.element)) /ca \(number($0.element)) >>" }.joined(separator: " ")
        let objects = [
            "<< /Type /Catalog /Pages 2 0 R >>",
            "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 \(number(width)) \(number(height))] /Contents 4 0 R "
                + "/Resources << /Font << /F1 5 0 R /F2 6 0 R /F3 7 0 R /F4 8 0 R >> /ExtGState << \(states) >> >> >>",
            "<< /Length \(stream.count) >>\nstream\n\(content)\nendstream",
            "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
            "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>",
            "<< /Type /Font /Subtype /Type1 /BaseFont /Symbol >>",
            "<< /Type /Font /Subtype /Type1 /BaseFont /ZapfDingbats >>",
            "<< /Producer (layersweep) >>",
        ]
        var out = Data("%PDF-1.4\n%\u{e2}\u{e3}\u{cf}\u{d3}\n".utf8)
        var offsets: [Int] = []
        for (i, body) in objects.enumerated() {
            offsets.append(out.count)
            out.append(Data("\(i + 1) 0 obj\n\(body)\nendobj\n".utf8))
        }
        let xref = out.count
        var table = "xref\n0 \(objects.count + 1)\n0000000000 65535 f \n"
        for o in offsets { table += String(format: "%010d 00000 n \n", o) }
        table += "trailer\n<< /Size \(objects.count + 1) /Root 1 0 R /Info \(objects.count) 0 R >>\nstartxref\n\(xref)\n%%EOF\n"
        out.append(Data(table.utf8))
        return out
    }
}

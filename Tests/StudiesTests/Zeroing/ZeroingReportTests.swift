import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
@testable import Rendering
@testable import SweepCore
@testable import Studies
import StudyTestSupport
import SweepFile
@testable import SweepPlan
@testable import SweepRecords
import SweepReport
import XCTest

/// report.html of a zeroing sweep from small synthetic results: well-formed XML, and the values where they belong.
final class ZeroingReportTests: StudyTestCase {
    func input(complete: Bool = true) throws -> ReportInput {
        let spec = try SpecLoader.parse("""
        name: rep
        datasets: [synthetic]
        models: [resnet8, plain8]
        seeds: 2
        masks: [zeroKernel, zeroBranch]
        """, file: "t.yaml")
        let plan = try Plan.expand(spec)
        let t0 = Date(timeIntervalSince1970: 1_000_000)
        var records: [TaskRecord] = []
        for (i, task) in plan.tasks.enumerated() {
            var o = TaskOutcome(status: .ok, seconds: 1)
            switch task.kind {
            case .train, .baseline: o.testAccuracy = 0.9
            case .mask:
                // stem.conv matters a lot; stage2.block1.conv2 fails on seed 1; the rest are near-trivial.
                o.testAccuracy = task.unit == "stem.conv" ? 0.3 : 0.895
                o.discordant = task.unit == "stem.conv" ? [620, 20, 1000] : [8, 3, 1000]
                if task.unit == "stage2.block1.conv2" && task.seedIndex == 1 {
                    o = TaskOutcome(status: .failed, seconds: 1)
                    o.error = "boom <&> \"quoted\""
                }
            default: break
            }
            records.append(TaskRecord(key: task.key, kind: task.kind, outcome: o, rank: i % 3, host: "node\(i % 2)",
                                      started: t0.addingTimeInterval(Double(i)), finished: t0.addingTimeInterval(Double(i) + 0.8)))
        }
        if !complete { records.removeLast(5) }
        return ReportInput(plan: plan, records: records)
    }

    /// Parses the page as XML (the report emits XHTML-compatible markup).
    func parse(_ html: String) throws -> XMLCollector { XMLCollector.parse(html) }

    func testPageIsWellFormedAndSelfContained() throws {
        let html = ReportPage.html(try input())
        let doc = try parse(html)
        XCTAssertEqual(doc.elements.first, "html")
        XCTAssertFalse(html.contains("<script"), "no scripts")
        XCTAssertFalse(html.contains("http://") && html.replacingOccurrences(of: "http://www.w3.org/", with: "").contains("http://"), "nothing fetched")
        XCTAssertFalse(html.contains("https://"))
        XCTAssertEqual(doc.elements.filter { $0 == "svg" }.count, 5, "two heatmap panels per model and a timeline")
    }

    func testHeatmapCellsCarryTheMeanDeltas() throws {
        let doc = try parse(ReportPage.html(try input()))
        let cells = doc.attributes.filter { $0["class"] == "cell" }
        // resnet8: 7 convs + fc (zeroKernel) in one panel, 3 blocks (zeroBranch) in another; the
        // same units for plain8. No filler cells.
        XCTAssertEqual(cells.count, 2 * (8 + 3))
        XCTAssertEqual(doc.attributes.filter { $0["class"] == "heatmap" }.count, 2 * 2, "kernels and branches: a panel each")
        let stem = try XCTUnwrap(cells.first { $0["data-unit"] == "stem.conv" && $0["data-mask"] == "zeroKernel" })
        XCTAssertEqual(stem["data-delta"], "-0.6000")
        let half = try XCTUnwrap(cells.first { $0["data-unit"] == "stage2.block1.conv2" })
        XCTAssertEqual(half["data-delta"], "-0.0050", "the failed seed is left out of the mean")
        XCTAssertEqual(doc.attributes.filter { $0["class"] == "seed-dot" }.count, 2 * 2 * (8 + 3) - 2, "a dot per network and cell, none for the failed seed")
        XCTAssertTrue(doc.text.contains("stage2.block1.conv2 · zeroKernel"), "cells have tooltips")
        XCTAssertTrue(doc.text.contains("▸ stage2.block1.conv1"), "transition units are marked")
        XCTAssertTrue(doc.text.contains("fixed scale −1…+1"), "the colour scale is stated")
        XCTAssertEqual(doc.attributes.filter { $0["class"] == "stage-boundary" }.count, 2 * (4 + 2),
                       "kernels: stem|stage1|stage2|stage3|head, four rules; branches: stage1|stage2|stage3, two")
    }

    /// The answer leads: heatmaps before the run's facts, and the prose explains only the masks
    /// this run used.
    func testHeatmapsComeFirstAndTheProseCoversTheMasksUsed() throws {
        let html = ReportPage.html(try input())
        let heatmap = try XCTUnwrap(html.range(of: "class=\"heatmap\""))
        let facts = try XCTUnwrap(html.range(of: "class=\"facts\""))
        XCTAssertLessThan(heatmap.lowerBound, facts.lowerBound)
        XCTAssertTrue(html.contains("zeroBranch makes a residual block"))
        XCTAssertFalse(html.contains("randomInit re-draws"), "randomInit was not run")
    }

    func testHeaderFindingsAndProblems() throws {
        let doc = try parse(ReportPage.html(try input()))
        XCTAssertTrue(doc.text.contains("Which layers matter?"))
        XCTAssertTrue(doc.text.contains("Δ accuracy = masked test accuracy − the same network's unmasked (baseline) test accuracy"), "the metric is defined")
        XCTAssertTrue(doc.text.contains("baseline accuracy 0.9000 (mean of 2)"))
        XCTAssertTrue(doc.text.contains("harmful in each network, not called for the recipe: stem.conv -0.600"), "two seeds: what each network says")
        XCTAssertTrue(doc.text.contains("Two networks are too few for a call about the recipe"), "the answer says why the recipe has no calls")
        XCTAssertTrue(doc.text.contains("boom <&> \"quoted\""), "errors are listed, escaped")
        XCTAssertTrue(doc.text.contains("3 on node0, node1"), "ranks and hosts")
        XCTAssertEqual(doc.attributes.filter { $0["class"] == "task" }.count, try input().records.count, "one timeline bar per task")
        XCTAssertFalse(doc.text.contains("Partial report"))
        let plainFirst = try XCTUnwrap(doc.text.range(of: "plain8 · baseline")), resnetFirst = try XCTUnwrap(doc.text.range(of: "resnet8 · baseline"))
        XCTAssertLessThan(resnetFirst.lowerBound, plainFirst.lowerBound, "the plain control sits after its ResNet")
    }

    func testPartialRunsAreMarked() throws {
        let doc = try parse(ReportPage.html(try input(complete: false)))
        XCTAssertTrue(doc.text.contains("Partial report"))
    }

    /// The heatmap's scale is the same in every run: white at 0, darkest red at −1, √-compressed.
    func testDivergingScaleIsFixedWhiteAtZeroRedWhenHarmful() {
        XCTAssertEqual(ZeroingHeatmap.color(0), "#f7f7f7")
        XCTAssertEqual(ZeroingHeatmap.color(-1), "#67001f")
        XCTAssertEqual(ZeroingHeatmap.color(-5), "#67001f", "clamped at −1")
        XCTAssertEqual(ZeroingHeatmap.color(1), "#053061")
        XCTAssertEqual(ZeroingHeatmap.position(-0.25), 0.25, accuracy: 1e-12, "a quarter point down sits halfway to −1")
        XCTAssertEqual(ColorScale.niceLimit(0.03), 0.05)
        XCTAssertEqual(ColorScale.textColor(on: "#67001f"), "#ffffff")
        XCTAssertEqual(ColorScale.textColor(on: "#f7f7f7"), "#111111")
    }
}

/// The report's figures and tables as files a paper can use.
extension ZeroingReportTests {
    func testEveryFigureAndTableIsWrittenToFiguresAsSVGCSVAndLaTeX() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("figures-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let run = RunDirectory(dir.path)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let input = try self.input()
        try ReportPage.write(input, to: run)
        let files = try FileManager.default.contentsOfDirectory(atPath: run.figuresURL.path).sorted()
        let svgs = files.filter { $0.hasSuffix(".svg") }
        XCTAssertEqual(svgs.count, 2 * 2 + 1, "a heatmap panel per model and kind, and the timeline: \(files)")
        XCTAssertTrue(files.contains("zeroing-findings.csv") && files.contains("zeroing-findings.tex"), "\(files)")
        for svg in svgs {
            let text = try String(contentsOf: run.figuresURL.appendingPathComponent(svg), encoding: .utf8)
            XCTAssertTrue(text.hasPrefix("<?xml"), svg)
            XCTAssertTrue(text.contains("<style>"), "\(svg) carries its own styles")
            XCTAssertEqual(XMLCollector.parse(text).elements.first, "svg", "\(svg) is well-formed SVG")
        }
        // Each figure also as a PDF: objects where the cross-reference table says, and, where
        // poppler's pdftoppm is installed (scripts/setup installs it), a page it renders.
        for svg in svgs {
            let pdf = try Data(contentsOf: run.figuresURL.appendingPathComponent(svg.replacingOccurrences(of: ".svg", with: ".pdf")))
            XCTAssertTrue(pdf.starts(with: Data("%PDF-1.4".utf8)), svg)
            let text = String(decoding: pdf, as: UTF8.self)
            let xref = try XCTUnwrap(text.range(of: "\nxref\n"))
            let entries = text[xref.upperBound...].split(separator: "\n").dropFirst(2).prefix { $0.hasSuffix(" n ") }
            XCTAssertEqual(entries.count, 9, svg)
            for (i, entry) in entries.enumerated() {
                let offset = try XCTUnwrap(Int(entry.prefix(10)))
                XCTAssertTrue(pdf[offset...].starts(with: Data("\(i + 1) 0 obj".utf8)), "\(svg): object \(i + 1) at \(offset)")
            }
        }
        if let png = try render(run.figuresURL.appendingPathComponent("heatmap-synthetic-resnet8-kernels.pdf"), into: dir) {
            XCTAssertGreaterThan(png.count, 2000, "a page with something drawn on it")
        }
        let tex = try String(contentsOf: run.figuresURL.appendingPathComponent("zeroing-findings.tex"), encoding: .utf8)
        XCTAssertTrue(tex.contains("\\toprule") && tex.contains("\\midrule") && tex.contains("\\bottomrule"))
        XCTAssertTrue(tex.contains("(mean $\\Delta$)"))
        // A stale figure of an earlier report goes; other files stay.
        try Data("old".utf8).write(to: run.figuresURL.appendingPathComponent("heatmap-gone.svg"))
        try Data("old".utf8).write(to: run.figuresURL.appendingPathComponent("heatmap-gone.pdf"))
        try Data("mine".utf8).write(to: run.figuresURL.appendingPathComponent("notes.txt"))
        try ReportPage.write(input, to: run)
        XCTAssertFalse(FileManager.default.fileExists(atPath: run.figuresURL.appendingPathComponent("heatmap-gone.svg").path))
        XCTAssertFalse(FileManager.default.fileExists(atPath: run.figuresURL.appendingPathComponent("heatmap-gone.pdf").path))
        XCTAssertTrue(FileManager.default.fileExists(atPath: run.figuresURL.appendingPathComponent("notes.txt").path))
    }

    func testLaTeXAndFileNamesSurviveHostileText() {
        XCTAssertEqual(LaTeX.escape("50% & $x_1 {a} #2 ~ ^ \\"), "50\\% \\& \\$x\\_1 \\{a\\} \\#2 \\textasciitilde{} \\textasciicircum{} \\textbackslash{}")
        XCTAssertEqual(LaTeX.minusSigns("-0.5 [-0.6, -0.4] layer-1"), "−0.5 [−0.6, −0.4] layer-1")
        XCTAssertEqual(FileName.safe("../../etc/passwd"), "_.._.._etc_passwd")
        XCTAssertEqual(FileName.safe(""), "_")
        XCTAssertEqual(FileName.safe("heatmap-fashion mnist-r18"), "heatmap-fashion_mnist-r18")
    }
}

extension ZeroingReportTests {
    /// Names users choose reach the PDF's text: parentheses and backslashes are escaped, signs
    /// outside the standard fonts become "?", control characters cannot end a string.
    func testHostileTextInAFigureGivesAValidPDF() throws {
        var m = Markup()
        m.figure(named: "hostile") { m in
            m.element("svg", ["xmlns": "http://www.w3.org/2000/svg", "width": "300", "height": "60"]) { m in
                m.element("text", ["x": "150", "y": "20", "text-anchor": "middle"], text: "a(b)\\c) Ω 数 Δ−≈ \u{1}\n▼")
                m.empty("rect", ["x": "1", "y": "30", "width": "50", "height": "10", "fill": "#zzzzzz", "stroke": "nonsense"])
                m.empty("polyline", ["points": "1,2 garbage 3,4,5 6,7"])
                m.empty("circle", ["cx": "nan", "cy": "inf", "r": "-3"])
            }
        }
        let pdf = try XCTUnwrap(m.pdfs.first).pdf
        let text = String(decoding: pdf, as: UTF8.self)
        XCTAssertTrue(text.contains("(a\\(b\\)\\\\c\\) ? ? ) Tj"), "escaped Helvetica run: \(text)")
        XCTAssertFalse(text.contains("nan") || text.contains("inf"), "non-finite numbers are written as 0")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("hostile-pdf-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("h.pdf")
        try pdf.write(to: file)
        _ = try render(file, into: dir)
    }

    /// `pdf`'s page as PNG bytes, rendered by poppler's pdftoppm, which must exit cleanly and
    /// print no complaint; nil where pdftoppm is not installed (scripts/setup installs it).
    func render(_ pdf: URL, into dir: URL) throws -> Data? {
        let pdftoppm = "/usr/bin/pdftoppm"
        guard FileManager.default.isExecutableFile(atPath: pdftoppm) else { return nil }
        let out = dir.appendingPathComponent("page-\(UUID().uuidString)").path
        let p = Process()
        p.executableURL = URL(fileURLWithPath: pdftoppm)
        p.arguments = ["-r", "50", "-png", "-singlefile", pdf.path, out]
        let errors = Pipe()
        p.standardError = errors
        try p.run()
        p.waitUntilExit()
        let complaints = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertEqual(p.terminationStatus, 0, complaints)
        XCTAssertTrue(complaints.isEmpty, "poppler finds nothing wrong: \(complaints)")
        return try Data(contentsOf: URL(fileURLWithPath: out + ".png"))
    }
}

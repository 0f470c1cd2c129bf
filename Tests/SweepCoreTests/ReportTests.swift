import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
@testable import SweepCore
import XCTest

/// report.html from small synthetic results: well-formed XML, and the values where they belong.
final class ReportTests: XCTestCase {
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
        XCTAssertEqual(doc.elements.filter { $0 == "svg" }.count, 3, "two heatmaps and a timeline")
    }

    func testHeatmapCellsCarryTheMeanDeltas() throws {
        let doc = try parse(ReportPage.html(try input()))
        let drawn = doc.attributes.filter { $0["class"] == "cell" }
        let cells = drawn.filter { $0["data-applies"] == "yes" }
        // resnet8: 7 convs + fc (zeroKernel) + 3 blocks (zeroBranch); the same units for plain8.
        XCTAssertEqual(cells.count, 2 * (8 + 3))
        XCTAssertTrue(drawn.filter { $0["data-applies"] == "no" }.allSatisfy { $0["data-delta"] == "n/a" }, "n/a cells are drawn grey")
        let stem = try XCTUnwrap(cells.first { $0["data-unit"] == "stem.conv" && $0["data-mask"] == "zeroKernel" })
        XCTAssertEqual(stem["data-delta"], "-0.6000")
        let half = try XCTUnwrap(cells.first { $0["data-unit"] == "stage2.block1.conv2" })
        XCTAssertEqual(half["data-delta"], "-0.0050", "the failed seed is left out of the mean")
        XCTAssertTrue(doc.text.contains("stage2.block1.conv2 · zeroKernel"), "cells have tooltips")
        XCTAssertTrue(doc.text.contains("▸ stage2.block1.conv1"), "transition units are marked")
        XCTAssertEqual(doc.attributes.filter { $0["class"] == "stage-boundary" }.count, 2 * 4, "stem|stage1|stage2|stage3|head: four rules per map")
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

    func testDivergingScaleIsWhiteAtZeroRedWhenHarmful() {
        XCTAssertEqual(ColorScale.diverging.color(value: 0, limit: 0.1), "#f7f7f7")
        XCTAssertEqual(ColorScale.diverging.color(value: -0.1, limit: 0.1), "#67001f")
        XCTAssertEqual(ColorScale.diverging.color(value: 0.5, limit: 0.1), "#053061", "clamped at the limit")
        XCTAssertEqual(ColorScale.niceLimit(0.03), 0.05)
        XCTAssertEqual(ColorScale.textColor(on: "#67001f"), "#ffffff")
        XCTAssertEqual(ColorScale.textColor(on: "#f7f7f7"), "#111111")
    }
}

/// Collects element names, attributes and text from an XML parse.
final class XMLCollector: NSObject, XMLParserDelegate {
    var elements: [String] = []
    var attributes: [[String: String]] = []
    var text = ""

    func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?, attributes: [String: String]) {
        elements.append(name)
        self.attributes.append(attributes)
    }

    func parser(_ parser: XMLParser, foundCharacters string: String) { text += string }

    /// Parses a page as XML (the report emits XHTML-compatible markup); fails the test if it is not.
    static func parse(_ html: String, file: StaticString = #filePath, line: UInt = #line) -> XMLCollector {
        let collector = XMLCollector()
        let parser = XMLParser(data: Data(html.utf8))
        parser.delegate = collector
        XCTAssertTrue(parser.parse(), "not well-formed: \(parser.parserError.map { "\($0)" } ?? "?") at line \(parser.lineNumber)",
                      file: file, line: line)
        return collector
    }
}

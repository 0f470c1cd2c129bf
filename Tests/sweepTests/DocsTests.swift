import Foundation
import SweepCore
import XCTest

/// The documentation a user reads stands alone and covers every study the program knows.
final class DocsTests: XCTestCase {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    func text(_ path: String) throws -> String { try String(contentsOf: root.appendingPathComponent(path), encoding: .utf8) }

    func testEveryStudyHasAPageLinkedFromTheReadmeAndAShippedSweep() throws {
        let readme = try text("README.md")
        let index = try text("docs/studies/README.md")
        XCTAssertTrue(readme.contains("docs/studies/README.md"))
        for name in StudyRegistry.names where name != "noop" {
            let page = try text("docs/studies/\(name).md")
            XCTAssertTrue(readme.contains("docs/studies/\(name).md"), "README links \(name).md")
            XCTAssertTrue(index.contains("(\(name).md)"), "the index links \(name).md")
            for part in ["**Question.**", "## What runs", "## Columns", "## What we measured"] {
                XCTAssertTrue(page.contains(part), "\(name).md has \(part)")
            }
            XCTAssertTrue(page.contains("differs from the paper") || page.contains("**Against the papers.**"), "\(name).md compares with its paper")
            // The page's measured sweep ships, and names the study the page describes.
            let sweep = try XCTUnwrap(page.range(of: "sweep run sweeps/").map { page[$0.upperBound...].prefix { $0 != " " && $0 != "`" } })
            XCTAssertTrue(try text("sweeps/\(sweep)").contains("study: \(name)"), "\(name).md measures sweeps/\(sweep)")
        }
    }

    func testNoDocumentPointsOutsideTheRepository() throws {
        let docs = try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent("docs/studies").path).map { "docs/studies/" + $0 }
        for path in ["README.md"] + docs {
            let body = try text(path)
            XCTAssertFalse(body.contains("../shared") || body.contains("SCIENCE.md") || body.contains("/work/"), path)
        }
    }
}

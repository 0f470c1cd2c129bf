import Foundation
import SweepCore
import StudyTestSupport
import SweepFile
import XCTest

/// The documentation a user reads stands alone and covers every study the program knows.
final class DocsTests: StudyTestCase {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    func text(_ path: String) throws -> String { try String(contentsOf: root.appendingPathComponent(path), encoding: .utf8) }

    func testEveryStudyHasAPageLinkedFromTheReadmeAndAShippedSweep() throws {
        let readme = try text("README.md")
        let index = try text("docs/studies/README.md")
        XCTAssertTrue(readme.contains("docs/studies/README.md"))
        for name in DeclaredStudies.names where name != "noop" {
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

    /// Every relative link in the README and the study pages names a file of this repository;
    /// none climbs out of it, and no text names a path of the machine it was written on.
    func testNoDocumentPointsOutsideTheRepository() throws {
        let docs = try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent("docs/studies").path).map { "docs/studies/" + $0 }
        let rootPath = root.standardizedFileURL.path
        for path in ["README.md"] + docs {
            let body = try text(path)
            let base = root.appendingPathComponent(path).deletingLastPathComponent()
            let links = try NSRegularExpression(pattern: #"\]\(([^)#\s]+)"#).matches(in: body, range: NSRange(body.startIndex..., in: body))
                .compactMap { Range($0.range(at: 1), in: body).map { String(body[$0]) } }
                .filter { !$0.contains("://") }
            for link in links {
                let target = base.appendingPathComponent(link).standardizedFileURL.path
                XCTAssertTrue(target.hasPrefix(rootPath + "/"), "\(path) links \(link), outside the repository")
                XCTAssertTrue(FileManager.default.fileExists(atPath: target), "\(path) links \(link), which does not exist")
            }
            XCTAssertFalse(body.contains(rootPath), "\(path) names this checkout's path")
        }
    }
}

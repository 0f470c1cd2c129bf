import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import XCTest

/// Collects element names, attributes and text from an XML parse.
public final class XMLCollector: NSObject, XMLParserDelegate {
    public var elements: [String] = []
    public var attributes: [[String: String]] = []
    public var text = ""

    public func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?, attributes: [String: String]) {
        elements.append(name)
        self.attributes.append(attributes)
    }

    public func parser(_ parser: XMLParser, foundCharacters string: String) { text += string }

    /// Parses a page as XML (the report emits XHTML-compatible markup); fails the test if it is not.
    public static func parse(_ html: String, file: StaticString = #filePath, line: UInt = #line) -> XMLCollector {
        let collector = XMLCollector()
        let parser = XMLParser(data: Data(html.utf8))
        parser.delegate = collector
        XCTAssertTrue(parser.parse(), "not well-formed: \(parser.parserError.map { "\($0)" } ?? "?") at line \(parser.lineNumber)",
                      file: file, line: line)
        return collector
    }
}

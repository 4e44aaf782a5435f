import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import CNBackupCore

/// S3's answers (ListObjectsV2, errors, multipart, tagging, STS) as a tree of elements with their
/// text, parsed by a real XML parser (Foundation's `XMLParser`, libxml2 underneath) rather than by
/// hand: what a server or anything in front of it sends is untrusted input (fuzzed by
/// FuzzRegressionTests). Attributes, comments and processing instructions are dropped; external
/// entities are never resolved; nesting deeper than S3 ever sends is refused.
package final class S3XMLElement {
    package let name: String
    package var text = ""
    package var children: [S3XMLElement] = []

    package init(name: String) { self.name = name }

    package func child(_ name: String) -> S3XMLElement? { children.first { $0.name == name } }
    package func all(_ name: String) -> [S3XMLElement] { children.filter { $0.name == name } }
    /// The text of the first child called `name`.
    package func value(_ name: String) -> String? { child(name)?.text }

    /// Text for a request body (DeleteObjects, CompleteMultipartUpload), escaped.
    package static func escape(_ text: String) -> String {
        var out = ""
        for c in text.unicodeScalars {
            switch c {
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "&": out += "&amp;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            default:
                // Control characters must be numeric references (keys can hold a tab).
                if c.value < 0x20 { out += "&#\(c.value);" } else { out.unicodeScalars.append(c) }
            }
        }
        return out
    }

    /// S3's deepest answer nests four levels; anything far deeper is not an S3 answer.
    static let maximumDepth = 32

    /// The root element, or nil when `bytes` is not well-formed XML.
    package static func parse(_ bytes: [UInt8]) -> S3XMLElement? {
        let parser = XMLParser(data: Data(bytes))
        parser.shouldResolveExternalEntities = false
        parser.shouldProcessNamespaces = false
        let builder = TreeBuilder()
        parser.delegate = builder
        guard parser.parse(), !builder.failed, builder.stack.isEmpty else { return nil }
        return builder.root
    }
}

private final class TreeBuilder: NSObject, XMLParserDelegate {
    var stack: [S3XMLElement] = []
    var root: S3XMLElement?
    var failed = false

    func parser(_ parser: XMLParser, didStartElement elementName: String, namespaceURI: String?,
                qualifiedName: String?, attributes: [String: String] = [:]) {
        guard stack.count < S3XMLElement.maximumDepth, root == nil else {
            failed = true
            parser.abortParsing()
            return
        }
        stack.append(S3XMLElement(name: elementName))
    }

    func parser(_ parser: XMLParser, didEndElement elementName: String, namespaceURI: String?, qualifiedName: String?) {
        guard let element = stack.popLast() else { failed = true; parser.abortParsing(); return }
        if let parent = stack.last { parent.children.append(element) } else { root = element }
    }

    func parser(_ parser: XMLParser, foundCharacters string: String) { stack.last?.text += string }

    func parser(_ parser: XMLParser, foundCDATA CDATABlock: Data) {
        stack.last?.text += String(decoding: CDATABlock, as: UTF8.self)
    }

    func parser(_ parser: XMLParser, parseErrorOccurred parseError: Error) { failed = true }
}

import Foundation
import CNBackupCore
import CNBackupHTTP

/// Just enough XML for S3's answers (ListObjectsV2, errors, multipart, tagging): elements, text,
/// CDATA and entities; attributes, comments, processing instructions and namespaces are skipped.
/// A hand parser keeps libxml2 (FoundationXML) out of the binary.
package final class XMLElement {
    package let name: String
    package var text = ""
    package var children: [XMLElement] = []

    package init(name: String) { self.name = name }

    package func child(_ name: String) -> XMLElement? { children.first { $0.name == name } }
    package func all(_ name: String) -> [XMLElement] { children.filter { $0.name == name } }
    /// The text of the first child called `name`.
    package func value(_ name: String) -> String? { child(name)?.text }

    /// The root element, or nil when `bytes` is not XML of this simple kind.
    package static func parse(_ bytes: [UInt8]) -> XMLElement? {
        var stack: [XMLElement] = []
        var root: XMLElement?
        var i = 0
        let n = bytes.count
        func starts(_ s: String, at p: Int) -> Bool {
            let u = Array(s.utf8)
            return p + u.count <= n && Array(bytes[p..<(p + u.count)]) == u
        }
        func find(_ s: String, from p: Int) -> Int? {
            var q = p
            while q < n { if starts(s, at: q) { return q }; q += 1 }
            return nil
        }
        while i < n {
            if bytes[i] != UInt8(ascii: "<") {
                let end = bytes[i...].firstIndex(of: UInt8(ascii: "<")) ?? n
                stack.last?.text += decodeEntities(String(decoding: bytes[i..<end], as: UTF8.self))
                i = end
                continue
            }
            if starts("<![CDATA[", at: i) {
                guard let end = find("]]>", from: i) else { return nil }
                stack.last?.text += String(decoding: bytes[(i + 9)..<end], as: UTF8.self)
                i = end + 3
            } else if starts("<!--", at: i) {
                guard let end = find("-->", from: i) else { return nil }
                i = end + 3
            } else if starts("<?", at: i) || starts("<!", at: i) {
                guard let end = find(">", from: i) else { return nil }
                i = end + 1
            } else if starts("</", at: i) {
                guard let end = find(">", from: i), !stack.isEmpty else { return nil }
                let finished = stack.removeLast()
                if stack.isEmpty { root = finished }
                i = end + 1
            } else {
                // An opening tag: its name, then attributes (quoted values may hold '>').
                var p = i + 1
                while p < n, ![UInt8(ascii: " "), UInt8(ascii: ">"), UInt8(ascii: "/"), 9, 10, 13].contains(bytes[p]) { p += 1 }
                var name = String(decoding: bytes[(i + 1)..<p], as: UTF8.self)
                if let colon = name.lastIndex(of: ":") { name = String(name[name.index(after: colon)...]) }
                var quote: UInt8? = nil
                while p < n {
                    let c = bytes[p]
                    if let q = quote { if c == q { quote = nil } } else if c == 34 || c == 39 { quote = c } else if c == UInt8(ascii: ">") { break }
                    p += 1
                }
                guard p < n else { return nil }
                let element = XMLElement(name: name)
                stack.last?.children.append(element)
                if bytes[p - 1] == UInt8(ascii: "/") {
                    if stack.isEmpty { root = element }
                } else {
                    stack.append(element)
                }
                i = p + 1
            }
        }
        return stack.isEmpty ? root : nil
    }

    package static func decodeEntities(_ text: String) -> String {
        guard text.contains("&") else { return text }
        var out = ""
        var rest = Substring(text)
        while let amp = rest.firstIndex(of: "&") {
            out += rest[..<amp]
            guard let semi = rest[amp...].firstIndex(of: ";") else { break }
            let entity = rest[rest.index(after: amp)..<semi]
            switch entity {
            case "lt": out += "<"
            case "gt": out += ">"
            case "amp": out += "&"
            case "quot": out += "\""
            case "apos": out += "'"
            default:
                var scalar: UInt32?
                if entity.hasPrefix("#x") { scalar = UInt32(entity.dropFirst(2), radix: 16) }
                else if entity.hasPrefix("#") { scalar = UInt32(entity.dropFirst(1)) }
                if let s = scalar.flatMap(Unicode.Scalar.init) { out.unicodeScalars.append(s) } else { out += rest[amp...semi] }
            }
            rest = rest[rest.index(after: semi)...]
        }
        return out + rest
    }

    /// Escapes text for an XML element's content.
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
}

import Foundation
import Yams
import CNBackupCore
import CNBackupStorage

/// Reads a YAML mapping field by field, so every error names the file, line and column, and
/// unknown fields (usually typos) are refused instead of ignored.
struct YAMLMap {
    let node: Node
    let mapping: Node.Mapping
    let path: String
    let file: String
    private var seen: Set<String> = []

    init(_ node: Node, path: String, file: String) throws {
        guard case .mapping(let mapping) = node else {
            throw YAMLMap.error(file, node, path, "expected a mapping of fields")
        }
        self.node = node; self.mapping = mapping; self.path = path; self.file = file
    }

    static func error(_ file: String, _ node: Node?, _ path: String, _ message: String) -> CNBackupError {
        let place = node?.mark.map { "\(file):\($0.line):\($0.column)" } ?? file
        return CNBackupError(.invalidDefinition, "\(place): \(path.isEmpty ? "" : path + ": ")\(message)")
    }

    func error(_ node: Node?, _ key: String, _ message: String) -> CNBackupError {
        YAMLMap.error(file, node ?? self.node, path.isEmpty ? key : "\(path).\(key)", message)
    }

    mutating func value(_ key: String) -> Node? {
        seen.insert(key)
        return mapping[Node(key)]
    }

    mutating func require(_ key: String) throws -> Node {
        guard let node = value(key) else { throw YAMLMap.error(file, self.node, path, "the field \"\(key)\" is required") }
        return node
    }

    mutating func string(_ key: String) throws -> String? {
        guard let node = value(key) else { return nil }
        guard case .scalar(let scalar) = node else { throw error(node, key, "expected a string") }
        return scalar.string
    }

    mutating func requireString(_ key: String) throws -> String {
        let node = try require(key)
        guard case .scalar(let scalar) = node, !scalar.string.isEmpty else { throw error(node, key, "expected a non-empty string") }
        return scalar.string
    }

    mutating func int(_ key: String) throws -> Int? {
        guard let node = value(key) else { return nil }
        guard let int = node.int else { throw error(node, key, "expected a whole number") }
        return int
    }

    mutating func bool(_ key: String) throws -> Bool? {
        guard let node = value(key) else { return nil }
        guard let bool = node.bool else { throw error(node, key, "expected true or false") }
        return bool
    }

    mutating func strings(_ key: String) throws -> [String]? {
        guard let node = value(key) else { return nil }
        guard case .sequence(let sequence) = node else { throw error(node, key, "expected a list of strings") }
        return try sequence.map { item in
            guard case .scalar(let scalar) = item else { throw error(item, key, "expected a list of strings") }
            return scalar.string
        }
    }

    mutating func map(_ key: String) throws -> YAMLMap? {
        guard let node = value(key) else { return nil }
        return try YAMLMap(node, path: path.isEmpty ? key : "\(path).\(key)", file: file)
    }

    mutating func stringMap(_ key: String) throws -> [String: String]? {
        guard let node = value(key) else { return nil }
        guard case .mapping(let mapping) = node else { throw error(node, key, "expected a mapping of names to strings") }
        var result: [String: String] = [:]
        for (k, v) in mapping {
            guard let name = k.string, case .scalar(let scalar) = v else { throw error(v, key, "expected a mapping of names to strings") }
            result[name] = scalar.string
        }
        return result
    }

    /// Throws on any field that was never asked for: a typo must not silently disable a setting.
    /// Before the fields are read: a misspelt field is named as such, rather than reported as a
    /// required field that is missing.
    func rejectKeys(notIn allowed: [String]) throws {
        for (key, _) in mapping {
            let name = key.string ?? "?"
            if !allowed.contains(name) {
                throw YAMLMap.error(file, key, path, "unknown field \"\(name)\" (allowed here: \(allowed.sorted().joined(separator: ", ")))")
            }
        }
    }

    func rejectUnknown() throws {
        for (key, _) in mapping {
            let name = key.string ?? "?"
            if !seen.contains(name) {
                throw YAMLMap.error(file, key, path, "unknown field \"\(name)\" (allowed here: \(seen.sorted().joined(separator: ", ")))")
            }
        }
    }
}

/// The name of the first YAML alias (`*name`) in `text` that names an anchor (`&name`) of `text`,
/// or nil. A byte scan that finds every alias libyaml would (names are ASCII letters, digits, '-'
/// and '_', and cannot follow such a character); as it does not skip quotes or comments, a string
/// holding both `&x` and `*x` counts too, which no pipeline file needs.
func firstYAMLAlias(in text: String) -> String? {
    func isNameByte(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x2D || b == 0x5F
    }
    let bytes = Array(text.utf8)
    var anchors = Set<String>(), aliases: [String] = []
    var i = 0
    while i < bytes.count {
        let b = bytes[i]
        guard b == UInt8(ascii: "&") || b == UInt8(ascii: "*"), i == 0 || !isNameByte(bytes[i - 1]) else { i += 1; continue }
        var end = i + 1
        while end < bytes.count && isNameByte(bytes[end]) { end += 1 }
        if end > i + 1 {
            let name = String(decoding: bytes[(i + 1)..<end], as: UTF8.self)
            if b == UInt8(ascii: "&") { anchors.insert(name) } else { aliases.append(name) }
        }
        i = end
    }
    return aliases.first { anchors.contains($0) }
}

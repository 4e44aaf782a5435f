import Foundation
import CNBackupCore
import CNBackupStorage

/// Where a set's objects live, relative to the store's root:
/// `<node>/migration-<id>/serial-<n>/<set id>/<component>.zst.cnb`, `.../manifest.json` and
/// `.../manifest.json.sig`. (A store's URL prefix, such as `s3://bucket/mainnet`, comes before it.)
public struct SetLayout: Sendable, Equatable {
    public let node: String
    public let epoch: Epoch
    public let setId: String

    public static let manifestName = "manifest.json"
    public static let signatureName = "manifest.json.sig"
    public static let objectSuffix = ".zst.cnb"

    public init(node: String, epoch: Epoch, setId: String) {
        self.node = node; self.epoch = epoch; self.setId = setId
    }

    public var directory: String { "\(node)/migration-\(epoch.migrationId)/serial-\(epoch.serial)/\(setId)" }
    public var manifestKey: String { directory + "/" + Self.manifestName }
    public var signatureKey: String { directory + "/" + Self.signatureName }
    public func objectName(component: String) -> String { component + Self.objectSuffix }
    public func key(relative: String) -> String { directory + "/" + relative }

    /// Reads the layout back from a key inside a set's folder; nil for keys of other shapes.
    /// Only the exact shape cnbackup writes is read back: a valid node name, numbers without
    /// signs or leading zeros, a well-formed set id and a plain object name. Anything else under
    /// the prefix (a writer's `..`, control characters, `migration-03`) is not a set's key.
    public static func parse(key: String) -> (layout: SetLayout, name: String)? {
        let parts = key.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 5, (try? validateNodeName(parts[0])) != nil,
              parts[1].hasPrefix("migration-"), parts[2].hasPrefix("serial-"),
              let migration = canonicalNumber(parts[1].dropFirst("migration-".count)),
              let serial = canonicalNumber(parts[2].dropFirst("serial-".count)),
              isValidSetId(parts[3]),
              parts[4].range(of: #"^[a-z0-9][a-z0-9._-]{0,127}$"#, options: .regularExpression) != nil else { return nil }
        return (SetLayout(node: parts[0], epoch: Epoch(migrationId: migration, serial: serial), setId: parts[3]), parts[4])
    }

    /// Why a key under the prefix is not read as part of a set (for `list`'s ignored keys).
    public static func whyNotParsed(key: String) -> String {
        let parts = key.split(separator: "/", omittingEmptySubsequences: false)
        if key.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) { return "the key has control characters" }
        if parts.contains(where: { $0 == ".." || $0 == "." || $0.isEmpty }) { return "the key has empty, . or .. segments" }
        if parts.count != 5 { return "not NODE/migration-M/serial-S/SET/NAME" }
        return "a segment is not what cnbackup writes (node name, numbers without leading zeros, set id, object name)"
    }

    package static func canonicalNumber(_ text: Substring) -> Int? {
        guard text.range(of: #"^(0|[1-9][0-9]{0,8})$"#, options: .regularExpression) != nil else { return nil }
        return Int(text)
    }

    /// The capture start a set id names (to the second).
    public static func time(ofSetId id: String) -> Date? {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX"); f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        return f.date(from: String(id.prefix(16)))
    }

    /// A new set id: UTC capture start `YYYYMMDDTHHMMSSZ`, `-`, 8 random hex digits.
    public static func newSetId(start: Date) throws -> String {
        Timestamp.compact(start) + "-" + (try randomBytes(4)).hex
    }

    package static func isValidSetId(_ id: String) -> Bool {
        id.range(of: #"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}$"#, options: .regularExpression) != nil
    }
}

/// Node names become key segments and tag values: keep them to a safe alphabet.
package func validateNodeName(_ name: String) throws {
    guard name.range(of: #"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"#, options: .regularExpression) != nil else {
        throw CNBackupError(.invalidInput, "node name \"\(name)\" is not allowed: use letters, digits, '.', '_' and '-' (at most 63)")
    }
}

import Foundation
import CNBackupCore
import CNBackupStorage

/// Where a set's objects live, relative to the store's root:
/// `<node>/migration-<id>/serial-<n>/<set id>/<component>-<16 hex>.zst.cnb`,
/// `.../manifest-<16 hex>.json` and its `.sig` (docs/FORMAT.md, "Layout"). (A store's URL prefix,
/// such as `s3://bucket/mainnet`, comes before it.) The random part of each name is chosen as the
/// run writes it and recorded in the signed manifest: whoever can list the bucket sees a new set's
/// id as soon as its first object lands, and could otherwise occupy the names the run will write
/// next, so that its "only if absent" writes fail. Sets written before read as they were:
/// `<component>.zst.cnb`, `manifest.json`, `manifest.json.sig`.
public struct SetLayout: Sendable, Equatable {
    public let node: String
    public let epoch: Epoch
    public let setId: String

    /// The one manifest name of sets written before names had a random part.
    public static let legacyManifestName = "manifest.json"
    public static let signatureSuffix = ".sig"
    public static let objectSuffix = ".zst.cnb"

    /// `manifest.json` or `manifest-<16 hex>.json`: the names a manifest may have.
    public static func isManifestName(_ name: String) -> Bool {
        name == legacyManifestName || name.range(of: #"\Amanifest-[0-9a-f]{16}\.json\z"#, options: .regularExpression) != nil
    }

    /// The name of a manifest's detached signature.
    public static func signatureName(of manifestName: String) -> String { manifestName + signatureSuffix }

    /// Whether `name` is a manifest's signature, and of which manifest.
    public static func manifestName(ofSignature name: String) -> String? {
        guard name.hasSuffix(signatureSuffix) else { return nil }
        let manifest = String(name.dropLast(signatureSuffix.count))
        return isManifestName(manifest) ? manifest : nil
    }

    /// A new manifest name, its random part chosen now.
    public static func newManifestName() throws -> String { "manifest-" + (try randomBytes(8)).hex + ".json" }

    /// A new object name for `component`, its random part chosen now.
    public static func newObjectName(component: String) throws -> String { component + "-" + (try randomBytes(8)).hex + objectSuffix }

    /// A new name for a physical component's clear `backup_manifest` copy.
    public static func newBackupManifestName(component: String) throws -> String {
        component + "-" + (try randomBytes(8)).hex + ".backup_manifest"
    }

    /// The component a sealed object's name is for: `<component>-<16 hex>.zst.cnb`, or an older
    /// set's `<component>.zst.cnb`.
    public static func component(ofObjectName name: String) -> String? {
        guard name.hasSuffix(objectSuffix) else { return nil }
        let stem = String(name.dropLast(objectSuffix.count))
        if let range = stem.range(of: #"-[0-9a-f]{16}\z"#, options: .regularExpression) { return String(stem[..<range.lowerBound]) }
        return stem
    }

    public init(node: String, epoch: Epoch, setId: String) {
        self.node = node; self.epoch = epoch; self.setId = setId
    }

    public var directory: String { "\(node)/migration-\(epoch.migrationId)/serial-\(epoch.serial)/\(setId)" }
    public func key(relative: String) -> String { directory + "/" + relative }

    /// The key of a committed manifest (it names itself), or an older set's `manifest.json`.
    public func manifestKey(of manifest: Manifest) -> String { key(relative: manifest.manifestName ?? Self.legacyManifestName) }

    /// The key of a committed manifest's signature.
    public func signatureKey(of manifest: Manifest) -> String {
        key(relative: Self.signatureName(of: manifest.manifestName ?? Self.legacyManifestName))
    }

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
              parts[4].range(of: #"\A[a-z0-9][a-z0-9._-]{0,127}\z"#, options: .regularExpression) != nil else { return nil }
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
        guard text.range(of: #"\A(0|[1-9][0-9]{0,8})\z"#, options: .regularExpression) != nil else { return nil }
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
        id.range(of: #"\A[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}\z"#, options: .regularExpression) != nil
    }
}

/// Node names become key segments and tag values: keep them to a safe alphabet.
package func validateNodeName(_ name: String) throws {
    guard name.range(of: #"\A[A-Za-z0-9][A-Za-z0-9._-]{0,62}\z"#, options: .regularExpression) != nil else {
        throw CNBackupError(.invalidInput, "node name \"\(name)\" is not allowed: use letters, digits, '.', '_' and '-' (at most 63)")
    }
}

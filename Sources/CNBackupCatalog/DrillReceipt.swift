import Foundation
import CNBackupCore
import CNBackupStorage

/// What a restore drill found, written next to the set as `drill-<utc time>-<8 hex>.json` with a
/// detached Ed25519 signature `...json.sig` (the manifest's signature format) by the drill key.
/// Never part of what the set's manifest signs: a receipt is a later statement about the set.
public struct DrillReceipt: Codable, Sendable, Equatable {
    public static let currentFormatVersion = 1

    /// A drill's or a component's verdict; the raw values are what receipts store.
    public enum Status: String, Codable, Sendable, CustomStringConvertible {
        case passed, failed, skipped
        public var description: String { rawValue }
    }

    /// What a component's restored rows were compared with; the raw values are what receipts store.
    public enum Comparison: String, Codable, Sendable, CustomStringConvertible {
        /// The row counts the capture recorded in the signed manifest.
        case capture
        /// The previous passing drill of the same set (a base backup carries no row counts).
        case previousDrill = "previous-drill"
        case none
        public var description: String { rawValue }
    }

    public struct Component: Codable, Sendable, Equatable {
        public var name: String
        public var role: String
        public var status: Status
        /// From the start of its restore until its database answered a query.
        public var seconds: Double
        /// `schema.table` -> rows after the restore (for a physical backup: `database/schema.table`).
        public var rowCounts: [String: Int64]?
        /// The counts as stored: sealed to the drill's recipients, totals in clear.
        public var sealedRowCounts: SealedRowCounts? = nil
        /// What the rows were compared with.
        public var comparedWith: Comparison
        public var mismatches: [String]
        public var reason: String?
        /// What was checked, for humans.
        public var checked: [String]

        package init(name: String, role: String, status: Status, seconds: Double, rowCounts: [String: Int64]? = nil, comparedWith: Comparison, mismatches: [String], reason: String? = nil, checked: [String]) {
            self.name = name
            self.role = role
            self.status = status
            self.seconds = seconds
            self.rowCounts = rowCounts
            self.comparedWith = comparedWith
            self.mismatches = mismatches
            self.reason = reason
            self.checked = checked
        }
    }

    public var formatVersion: Int
    public var setId: String
    public var node: String
    public var epoch: Epoch
    /// SHA-256 of the manifest's exact bytes: the receipt speaks about this manifest only.
    public var manifestSHA256: String
    /// passed or failed.
    public var status: Status
    /// UTC, milliseconds.
    public var at: String
    public var toolVersion: String
    /// throwaway (instances the drill started) or server (HOST:PORT it was pointed at).
    public var scratch: String
    /// `server_version` of each scratch server used.
    public var postgresVersions: [String]
    public var checked: [String]
    public var failures: [String]
    public var components: [Component]
    /// The identities dump's node ids, when the set has one.
    public var identityIds: [String]?
    /// The whole node: from the first restore's start until the last component was queryable.
    public var restoreSeconds: Double
    /// Sampled drills (`--sample`) name it.
    public var sampled: Bool?

    public var passed: Bool { status == .passed }
    public var atDate: Date? { Timestamp.parse(at) }

    package init(formatVersion: Int, setId: String, node: String, epoch: Epoch, manifestSHA256: String, status: Status, at: String, toolVersion: String, scratch: String, postgresVersions: [String], checked: [String], failures: [String], components: [Component], identityIds: [String]? = nil, restoreSeconds: Double, sampled: Bool? = nil) {
        self.formatVersion = formatVersion
        self.setId = setId
        self.node = node
        self.epoch = epoch
        self.manifestSHA256 = manifestSHA256
        self.status = status
        self.at = at
        self.toolVersion = toolVersion
        self.scratch = scratch
        self.postgresVersions = postgresVersions
        self.checked = checked
        self.failures = failures
        self.components = components
        self.identityIds = identityIds
        self.restoreSeconds = restoreSeconds
        self.sampled = sampled
    }

    public func encoded() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return Array(try encoder.encode(self)) + [0x0A]
    }

    public static func decode(_ bytes: [UInt8]) throws -> DrillReceipt {
        guard let receipt = try? JSONDecoder().decode(DrillReceipt.self, from: Data(bytes)), receipt.formatVersion == currentFormatVersion else {
            throw CNBackupError(.integrity, "the drill receipt is not valid JSON of format version \(currentFormatVersion)")
        }
        return receipt
    }

    /// `drill-20261125t040000z-1a2b3c4d.json` (object names are lower case).
    public static func newName(at date: Date) throws -> String {
        "drill-" + Timestamp.compact(date).lowercased() + "-" + (try randomBytes(4)).hex + ".json"
    }

    public static func isReceiptName(_ name: String) -> Bool {
        name.range(of: #"\Adrill-[0-9]{8}t[0-9]{6}z-[0-9a-f]{8}\.json\z"#, options: .regularExpression) != nil
    }

    public static let signatureSuffix = ".sig"
}

/// A receipt as found in the store, with what its signature says.
public struct FoundReceipt: Sendable {
    public var key: String
    public var receipt: DrillReceipt

    package init(key: String, receipt: DrillReceipt) {
        self.key = key
        self.receipt = receipt
    }
}

/// Writes and reads receipts. Only receipts signed by a pinned drill signer, about the set they
/// sit in and its exact manifest, count; anything else (a forged or moved receipt) is ignored.
public struct DrillReceipts: Sendable {
    public let store: any ObjectStore
    public let signers: [SignerKey]
    public init(store: any ObjectStore, signers: [SignerKey]) { self.store = store; self.signers = signers }

    /// Writes the receipt and then its signature, each only if absent (the set's own objects are never touched).
    public static func write(_ receipt: DrillReceipt, layout: SetLayout, store: any ObjectStore, key: SigningKey, now: Date = Date()) throws -> String {
        let bytes = try receipt.encoded()
        let signature = try ManifestSignature.sign(bytes, with: key, use: .drillReceipt)
        let name = try DrillReceipt.newName(at: now)
        let tags = SetCommitter.tags(layout: layout, component: "drill")
        try store.putBytes(key: layout.key(relative: name), bytes, options: PutOptions(tags: tags, ifAbsent: true))
        try store.putBytes(key: layout.key(relative: name + DrillReceipt.signatureSuffix), signature.encoded(), options: PutOptions(tags: tags, ifAbsent: true))
        return layout.key(relative: name)
    }

    /// The trusted receipts of each set (by its folder), oldest first, from one listing of `prefix`.
    public func trusted(sets: [TrustedSet], prefix: String = "") throws -> [String: [DrillReceipt]] {
        guard !signers.isEmpty else { return [:] }
        let wanted = Dictionary(sets.map { ($0.layout.directory, $0) }, uniquingKeysWith: { a, _ in a })
        var keys = Set<String>()
        var candidates: [(TrustedSet, String)] = []
        for info in try store.list(prefix: prefix) {
            keys.insert(info.key)
            guard let (layout, name) = SetLayout.parse(key: info.key), DrillReceipt.isReceiptName(name),
                  let entry = wanted[layout.directory] else { continue }
            candidates.append((entry, info.key))
        }
        var result: [String: [DrillReceipt]] = [:]
        for (entry, key) in candidates where keys.contains(key + DrillReceipt.signatureSuffix) {
            if let receipt = load(key: key, for: entry) { result[entry.layout.directory, default: []].append(receipt) }
        }
        for key in result.keys { result[key]!.sort { $0.at < $1.at } }
        return result
    }

    /// The trusted receipts of one set, oldest first.
    public func trusted(set: TrustedSet) throws -> [DrillReceipt] {
        try trusted(sets: [set], prefix: set.layout.directory + "/")[set.layout.directory] ?? []
    }

    package func load(key: String, for entry: TrustedSet) -> DrillReceipt? {
        guard let bytes = try? store.getBytes(key: key, limit: 4 << 20),
              let signatureBytes = try? store.getBytes(key: key + DrillReceipt.signatureSuffix, limit: 4096),
              let signature = try? ManifestSignature.decode(signatureBytes),
              signers.contains(signature.signer), signature.isValid(for: bytes, as: .drillReceipt),
              let receipt = try? DrillReceipt.decode(bytes) else { return nil }
        guard receipt.setId == entry.layout.setId, receipt.node == entry.layout.node,
              receipt.epoch.migrationId == entry.layout.epoch.migrationId, receipt.epoch.serial == entry.layout.epoch.serial,
              receipt.manifestSHA256 == SHA256Hasher.hash(entry.manifestBytes).hex else { return nil }
        return receipt
    }
}

/// The newest trusted drill of a set, as `list --json` and `verify` show it.
public struct DrillSummary: Codable, Sendable, Equatable {
    public var status: DrillReceipt.Status
    public var at: String
    public var restoreSeconds: Double
    public var failures: [String]?

    public init(_ receipt: DrillReceipt) {
        status = receipt.status; at = receipt.at; restoreSeconds = receipt.restoreSeconds
        failures = receipt.failures.isEmpty ? nil : receipt.failures
    }
}

/// The newest drills of a node's sets, for check-freshness, list and metrics.
public struct DrillHistory: Sendable {
    public var newest: DrillReceipt?
    public var newestPassing: DrillReceipt?

    public init(receipts: [DrillReceipt]) {
        let sorted = receipts.sorted { $0.at < $1.at }
        newest = sorted.last
        newestPassing = sorted.last(where: \.passed)
    }
}

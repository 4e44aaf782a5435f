import Foundation
import CNBackupCore
import CNBackupStorage

/// Whether a manifest's signature makes it a trusted statement.
public enum SignatureStatus: Sendable, Equatable, CustomStringConvertible {
    case valid(KeyID)
    case missing
    case malformed
    case invalid
    case unpinnedSigner(KeyID)

    public var isValid: Bool { if case .valid = self { return true } else { return false } }

    public var description: String {
        switch self {
        case .valid(let id): return "valid (signer \(id))"
        case .missing: return "missing: the set has no manifest.json.sig"
        case .malformed: return "malformed signature file"
        case .invalid: return "INVALID: the manifest was changed after it was signed, or the signature forged"
        case .unpinnedSigner(let id): return "signed by \(id), which is not a pinned signer (--signer)"
        }
    }

    public var shortName: String {
        switch self {
        case .valid: return "valid"
        case .missing: return "missing"
        case .malformed: return "malformed"
        case .invalid: return "invalid"
        case .unpinnedSigner: return "unpinned-signer"
        }
    }
}

/// One set as found in a store.
public struct CatalogEntry: Sendable {
    public let layout: SetLayout
    /// The manifest, when it parsed; only trust it when `isTrusted`.
    public let manifest: Manifest?
    public let manifestBytes: [UInt8]
    public let signature: SignatureStatus
    /// Problems beyond the signature: a manifest that names another set than its place, unparsable JSON.
    public let problems: [String]

    public var isTrusted: Bool { signature.isValid && manifest != nil && problems.isEmpty }
    /// A backup counts only when its manifest is trusted and says complete.
    public var isCompleteBackup: Bool { isTrusted && manifest?.status == .complete }
    public var setId: String { layout.setId }
}

/// Reads sets from a store, deciding only from manifests signed by a pinned signer. S3 tags and
/// key names never decide anything: they are unsigned.
public struct Catalog: Sendable {
    public let store: any ObjectStore
    public let signers: [SignerKey]

    public init(store: any ObjectStore, signers: [SignerKey]) {
        self.store = store
        self.signers = signers
    }

    /// Every set with a manifest, oldest first (by set id, which starts with the capture time).
    public func entries(node: String? = nil) throws -> [CatalogEntry] {
        let prefix = node.map { $0 + "/" } ?? ""
        let manifests = try store.list(prefix: prefix).filter { $0.key.hasSuffix("/" + SetLayout.manifestName) }
        return try manifests.compactMap { info in
            guard let (layout, _) = SetLayout.parse(key: info.key) else { return nil }
            return try load(layout)
        }.sorted { ($0.layout.setId, $0.layout.directory) < ($1.layout.setId, $1.layout.directory) }
    }

    /// The set with this id; throws `.notFound` with a hint when there is none.
    public func entry(setId: String, node: String? = nil) throws -> CatalogEntry {
        guard SetLayout.isValidSetId(setId) else {
            throw CNBackupError(.invalidInput, "\"\(setId)\" is not a set id (they look like 20261125T040000Z-1a2b3c4d): run `cnbackup list` to see the sets")
        }
        let prefix = node.map { $0 + "/" } ?? ""
        let matches = try store.list(prefix: prefix).filter { $0.key.hasSuffix("/\(setId)/" + SetLayout.manifestName) }
        guard let first = matches.first, let (layout, _) = SetLayout.parse(key: first.key) else {
            throw CNBackupError(.notFound, "no set \(setId) with a manifest in \(store.displayName): run `cnbackup list --store \(store.displayName)` to see the sets")
        }
        guard matches.count == 1 else {
            throw CNBackupError(.integrity, "set id \(setId) appears \(matches.count) times in \(store.displayName): name the node with --node")
        }
        return try load(layout)
    }

    func load(_ layout: SetLayout) throws -> CatalogEntry {
        let bytes = try store.getBytes(key: layout.manifestKey)
        let signature: SignatureStatus
        do {
            let signatureBytes = try store.getBytes(key: layout.signatureKey, limit: 4096)
            let parsed = try ManifestSignature.decode(signatureBytes)
            if !signers.contains(parsed.signer) {
                signature = .unpinnedSigner(parsed.signer.keyID)
            } else if parsed.isValid(for: bytes) {
                signature = .valid(parsed.signer.keyID)
            } else {
                signature = .invalid
            }
        } catch let error as CNBackupError where error.code == .notFound {
            signature = .missing
        } catch let error as CNBackupError where error.code == .authentication || error.code == .invalidInput {
            signature = .malformed
        }
        var problems: [String] = []
        var manifest: Manifest?
        do {
            let decoded = try Manifest.decode(bytes)
            manifest = decoded
            if decoded.setId != layout.setId || decoded.node.name != layout.node
                || decoded.epoch.migrationId != layout.epoch.migrationId || decoded.epoch.serial != layout.epoch.serial {
                problems.append("the manifest describes set \(decoded.setId) of \(decoded.node.name) epoch \(decoded.epoch) but sits at \(layout.directory): it was moved")
            }
        } catch {
            problems.append("the manifest does not parse: \(error)")
        }
        return CatalogEntry(layout: layout, manifest: manifest, manifestBytes: bytes, signature: signature, problems: problems)
    }
}

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

/// A set that passed every trust check of docs/FORMAT.md: a manifest that parses, signed by a
/// signer pinned for its node, sitting where it says it belongs, captured no later than now. Only
/// the catalog makes one (`CatalogEntry.trusted`, `Catalog.trustedSet`), so whatever takes a
/// `TrustedSet` acts on a trusted manifest without checking again.
public struct TrustedSet: Sendable {
    public let layout: SetLayout
    public let manifest: Manifest
    /// The manifest as stored and signed (receipts bind its digest).
    public let manifestBytes: [UInt8]
    /// Where the manifest is stored in the set's folder (its signature is beside it).
    public let manifestName: String
    /// The signer that vouches for it.
    public let signer: KeyID
    public var setId: String { layout.setId }
    public var node: String { layout.node }
    /// Rebuilt by `recover` from what the store held, not committed by the run that captured it.
    public var recovered: Bool { manifest.recovered == true }

    fileprivate init(layout: SetLayout, manifest: Manifest, manifestBytes: [UInt8], manifestName: String, signer: KeyID) {
        self.layout = layout
        self.manifest = manifest
        self.manifestBytes = manifestBytes
        self.manifestName = manifestName
        self.signer = signer
    }

    /// The component named `name`; `.notFound` lists the names the set has.
    public func component(_ name: String) throws -> ComponentRecord {
        guard let record = manifest.components.first(where: { $0.name == name }) else {
            throw CNBackupError(.notFound, "set \(setId) has no component \"\(name)\"; it has: \(manifest.components.map(\.name).joined(separator: ", "))")
        }
        return record
    }
}

/// One set as found in a store.
public struct CatalogEntry: Sendable {
    public let layout: SetLayout
    /// The manifest candidate this entry was read from (`manifest-<16 hex>.json`, or an older set's `manifest.json`).
    public let manifestName: String
    public var manifestKey: String { layout.key(relative: manifestName) }
    public var signatureKey: String { layout.key(relative: SetLayout.signatureName(of: manifestName)) }
    /// The manifest, when it parsed; only trust it when `isTrusted`.
    public let manifest: Manifest?
    public let manifestBytes: [UInt8]
    public let signature: SignatureStatus
    /// Problems beyond the signature: a manifest that names another set than its place, unparsable
    /// JSON, a capture time in the future or that disagrees with the set id.
    public let problems: [String]
    /// The set claims a capture time (in its id or its manifest) beyond now plus the clock-skew
    /// allowance: never fresh, never the newest for retention.
    public let isFutureDated: Bool
    /// Whether recovered sets count as complete backups (an operator's explicit choice).
    package let countsRecovered: Bool
    /// The store did not answer for this set (time-outs, 5xx after retries): an outage, not an
    /// attack, and not a verdict on the set. While any entry is unreadable, `prune --apply`
    /// deletes nothing and `check-freshness` fails with an error rather than STALE.
    public let isUnreadable: Bool

    public var isTrusted: Bool { trusted != nil }
    /// A backup counts only when its manifest is trusted and says complete; a set rebuilt by
    /// `recover` counts only when the operator said so (`--count-recovered`).
    public var isCompleteBackup: Bool {
        isTrusted && manifest?.status == .complete && (countsRecovered || manifest?.recovered != true)
    }
    public var setId: String { layout.setId }

    /// The set as a `TrustedSet`, when every trust check passed.
    public var trusted: TrustedSet? {
        guard problems.isEmpty, case .valid(let signer) = signature, let manifest else { return nil }
        return TrustedSet(layout: layout, manifest: manifest, manifestBytes: manifestBytes, manifestName: manifestName, signer: signer)
    }

    /// The set as a `TrustedSet`, or `.authentication` saying why it cannot be trusted.
    public func requireTrusted() throws -> TrustedSet {
        guard let trusted else {
            throw CNBackupError(.authentication,
                "set \(setId) cannot be trusted: signature \(signature)\(problems.isEmpty ? "" : "; " + problems.joined(separator: "; "))")
        }
        return trusted
    }

    package init(layout: SetLayout, manifestName: String, manifest: Manifest?, manifestBytes: [UInt8], signature: SignatureStatus,
                 problems: [String], isFutureDated: Bool, countsRecovered: Bool, isUnreadable: Bool = false) {
        self.isUnreadable = isUnreadable
        self.layout = layout
        self.manifestName = manifestName
        self.manifest = manifest
        self.manifestBytes = manifestBytes
        self.signature = signature
        self.problems = problems
        self.isFutureDated = isFutureDated
        self.countsRecovered = countsRecovered
    }
}

/// The signers readers trust: some for any node, some pinned to one node (`--signer NODE=PUB`).
/// A node with pins of its own trusts only those: a set of node A signed by node B's key is not A's.
public struct SignerPins: Sendable, Equatable {
    public var anyNode: [SignerKey]
    public var perNode: [String: [SignerKey]]

    public init(anyNode: [SignerKey], perNode: [String: [SignerKey]] = [:]) { self.anyNode = anyNode; self.perNode = perNode }

    public func trusted(for node: String) -> [SignerKey] { perNode[node] ?? anyNode }
    public var all: [SignerKey] { anyNode + perNode.values.flatMap { $0 } }
}

/// A key under the prefix that is not read as part of any set, and why.
public struct IgnoredKey: Sendable, Codable, Equatable {
    public var key: String
    public var reason: String

    package init(key: String, reason: String) {
        self.key = key
        self.reason = reason
    }
}

/// Reads sets from a store, deciding only from manifests signed by a pinned signer. S3 tags and
/// key names never decide anything: they are unsigned.
public struct Catalog: Sendable {
    public let store: any ObjectStore
    public let pins: SignerPins
    /// Recovered sets count as complete backups for freshness and retention.
    public var countRecovered = false
    /// How far in the future a signed capture time may be before the set is refused (clocks of the
    /// cluster and of the reader differ a little).
    public static let clockSkewAllowance: TimeInterval = 300
    /// The largest manifest read (a real one is a few KiB; thousands of components stay far below).
    public static let manifestLimit = 4 << 20

    public var signers: [SignerKey] { pins.all }

    public init(store: any ObjectStore, signers: [SignerKey]) {
        self.init(store: store, pins: SignerPins(anyNode: signers))
    }

    public init(store: any ObjectStore, pins: SignerPins, countRecovered: Bool = false) {
        self.store = store
        self.pins = pins
        self.countRecovered = countRecovered
    }

    /// Every set with a manifest, oldest first (by set id, which starts with the capture time).
    /// Whatever else a writer put under the prefix is left out (`scan` says why); one bad set never
    /// hides the others.
    public func entries(node: String? = nil, now: Date = Date()) throws -> [CatalogEntry] {
        try scan(node: node, now: now).entries
    }

    /// At most this many manifest candidates are read per set: a writer can add candidates, but
    /// not make a reader fetch without end.
    public static let manifestCandidatesPerSet = 8

    /// The sets, and the keys that are not part of any set with the reason.
    public func scan(node: String? = nil, now: Date = Date()) throws -> (entries: [CatalogEntry], ignored: [IgnoredKey]) {
        let prefix = node.map { $0 + "/" } ?? ""
        var ignored: [IgnoredKey] = []
        var sets: [String: (layout: SetLayout, names: [String])] = [:]
        var signatures: [(SetLayout, String)] = []
        var keys = Set<String>()
        var sizes: [String: Int64] = [:]
        for info in try store.list(prefix: prefix) {
            // Deduplicated chunks: bound by the sets' indexes, never part of a set themselves.
            if info.key.hasPrefix(SetLayout.chunkRoot) { continue }
            keys.insert(info.key)
            sizes[info.key] = info.size
            guard let (layout, name) = SetLayout.parse(key: info.key) else {
                ignored.append(IgnoredKey(key: Self.printable(info.key), reason: SetLayout.whyNotParsed(key: info.key)))
                continue
            }
            if SetLayout.isManifestName(name) { sets[layout.directory, default: (layout, [])].names.append(name) }
            if let manifest = SetLayout.manifestName(ofSignature: name) { signatures.append((layout, manifest)) }
        }
        for (layout, manifest) in signatures where !keys.contains(layout.key(relative: manifest)) {
            ignored.append(IgnoredKey(key: layout.key(relative: SetLayout.signatureName(of: manifest)),
                                      reason: "a signature without a manifest: not a set (a run that died, or a writer's)"))
        }
        var entries: [CatalogEntry] = []
        for (layout, names) in sets.values.sorted(by: { $0.layout.directory < $1.layout.directory }) {
            let (entry, decoys) = try resolve(layout, candidates: names, sizes: sizes, now: now)
            entries.append(entry)
            ignored += decoys
        }
        entries.sort { ($0.layout.setId, $0.layout.directory) < ($1.layout.setId, $1.layout.directory) }
        return (entries, ignored)
    }

    /// One set from its manifest candidates: the set is the one candidate that verifies (identical
    /// copies count once); when none does, the set is untrusted (or unreadable, when the store did
    /// not answer for one); when two different ones do, untrusted too. The other candidates are
    /// returned as ignored, each with its reason.
    func resolve(_ layout: SetLayout, candidates: [String], sizes: [String: Int64], now: Date) throws -> (CatalogEntry, [IgnoredKey]) {
        let names = candidates.sorted()
        var ignored = names.dropFirst(Self.manifestCandidatesPerSet).map {
            IgnoredKey(key: layout.key(relative: $0), reason: "more than \(Self.manifestCandidatesPerSet) manifest candidates in one set: not read")
        }
        let loaded = try names.prefix(Self.manifestCandidatesPerSet).map {
            try load(layout, manifestName: $0, listedSize: sizes[layout.key(relative: $0)], now: now)
        }
        let trusted = loaded.filter(\.isTrusted)
        let chosen: CatalogEntry
        if let first = trusted.first, trusted.allSatisfy({ $0.manifestBytes == first.manifestBytes }) {
            chosen = first
        } else if let first = trusted.first {
            chosen = CatalogEntry(layout: layout, manifestName: first.manifestName, manifest: first.manifest, manifestBytes: first.manifestBytes,
                                  signature: first.signature,
                                  problems: ["\(Set(trusted.map(\.manifestBytes)).count) different signed manifests: the set is ambiguous (\(trusted.map(\.manifestName).joined(separator: ", ")))"],
                                  isFutureDated: first.isFutureDated, countsRecovered: countRecovered)
        } else {
            chosen = loaded.first(where: \.isUnreadable) ?? loaded[0]
        }
        for entry in loaded where entry.manifestName != chosen.manifestName {
            let why = entry.isTrusted ? "an identical copy of the set's manifest"
                : "a manifest candidate that does not verify (signature \(entry.signature.shortName)\(entry.problems.isEmpty ? "" : "; " + entry.problems.joined(separator: "; "))): a decoy or a squatter"
            ignored.append(IgnoredKey(key: Self.printable(entry.manifestKey), reason: why))
        }
        return (chosen, ignored)
    }

    /// Keys as a writer chose them may hold control characters: shown escaped, never raw.
    package static func printable(_ key: String) -> String {
        String(key.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7f ? "\\u{\(String($0.value, radix: 16))}" : String($0) }.joined().prefix(300))
    }

    /// The set with this id; throws `.notFound` with a hint when there is none.
    public func entry(setId: String, node: String? = nil) throws -> CatalogEntry {
        guard SetLayout.isValidSetId(setId) else {
            throw CNBackupError(.invalidInput, "\"\(setId)\" is not a set id (they look like 20261125T040000Z-1a2b3c4d): run `cnbackup list` to see the sets")
        }
        let prefix = node.map { $0 + "/" } ?? ""
        var sets: [String: (layout: SetLayout, names: [String])] = [:]
        var sizes: [String: Int64] = [:]
        for info in try store.list(prefix: prefix) {
            guard let (layout, name) = SetLayout.parse(key: info.key), layout.setId == setId, SetLayout.isManifestName(name) else { continue }
            sets[layout.directory, default: (layout, [])].names.append(name)
            sizes[info.key] = info.size
        }
        guard !sets.isEmpty else {
            throw CNBackupError(.notFound, "no set \(setId) with a manifest in \(store.displayName): run `cnbackup list --store \(store.displayName)` to see the sets")
        }
        let loaded = try sets.values.sorted { $0.layout.directory < $1.layout.directory }
            .map { try resolve($0.layout, candidates: $0.names, sizes: sizes, now: Date()).0 }
        if loaded.count == 1 { return loaded[0] }
        // A writer can copy a manifest under another node or epoch: such a decoy is untrusted (it
        // sits elsewhere than it says), so one trusted match is the set.
        let trusted = loaded.filter(\.isTrusted)
        if trusted.count == 1 { return trusted[0] }
        throw CNBackupError(.integrity, "set id \(setId) appears \(loaded.count) times in \(store.displayName) (\(trusted.count) trusted): name the node with --node")
    }

    /// The set with this id, trusted, or an error saying why not (`.notFound`, `.authentication`).
    public func trustedSet(setId: String, node: String? = nil) throws -> TrustedSet {
        try entry(setId: setId, node: node).requireTrusted()
    }

    package func load(_ layout: SetLayout, manifestName: String, listedSize: Int64? = nil, now: Date = Date()) throws -> CatalogEntry {
        var problems: [String] = []
        let manifestKey = layout.key(relative: manifestName), signatureKey = layout.key(relative: SetLayout.signatureName(of: manifestName))
        func unusable(_ reason: String, unreadable: Bool = false) -> CatalogEntry {
            CatalogEntry(layout: layout, manifestName: manifestName, manifest: nil, manifestBytes: [], signature: .missing, problems: [reason],
                         isFutureDated: false, countsRecovered: countRecovered, isUnreadable: unreadable)
        }
        if let listedSize, listedSize > Self.manifestLimit {
            return unusable("the manifest is listed at \(listedSize) bytes, more than any manifest (\(Self.manifestLimit)): not read")
        }
        let bytes: [UInt8]
        do {
            bytes = try store.getBytes(key: manifestKey, limit: Self.manifestLimit)
        } catch let error as CNBackupError where error.isTransient {
            return unusable("the store did not answer for the manifest: \(error.message)", unreadable: true)
        } catch let error as CNBackupError {
            // Whatever the object makes the store answer (too large, vanished, a storage class that
            // needs a restore, a customer key it was written with, an unreadable file): this set
            // is untrusted with the reason, the others stand.
            return unusable("the manifest cannot be read: \(error.message)")
        }
        let signature: SignatureStatus
        do {
            let signatureBytes = try store.getBytes(key: signatureKey, limit: 4096)
            let parsed = try ManifestSignature.decode(signatureBytes)
            if !pins.trusted(for: layout.node).contains(parsed.signer) {
                signature = .unpinnedSigner(parsed.signer.keyID)
            } else if parsed.isValid(for: bytes, as: .manifest) {
                signature = .valid(parsed.signer.keyID)
            } else {
                signature = .invalid
            }
        } catch let error as CNBackupError where error.code == .notFound {
            signature = .missing
        } catch let error as CNBackupError where error.isTransient {
            return unusable("the store did not answer for the signature: \(error.message)", unreadable: true)
        } catch let error as CNBackupError where error.code == .authentication || error.code == .invalidInput || error.code == .integrity {
            signature = .malformed
        } catch let error as CNBackupError {
            signature = .malformed
            problems.append("the signature cannot be read: \(error.message)")
        }
        var manifest: Manifest?
        var future = false
        if let idTime = SetLayout.time(ofSetId: layout.setId), idTime.timeIntervalSince(now) > Self.clockSkewAllowance {
            future = true
            problems.append("the set id says it was captured at \(Timestamp.format(idTime)), in the future: a clock is wrong or someone wrote it")
        }
        do {
            let decoded = try Manifest.decode(bytes)
            manifest = decoded
            if decoded.setId != layout.setId || decoded.node.name != layout.node
                || decoded.epoch.migrationId != layout.epoch.migrationId || decoded.epoch.serial != layout.epoch.serial {
                problems.append("the manifest describes set \(decoded.setId) of \(decoded.node.name) epoch \(decoded.epoch) but sits at \(layout.directory): it was moved")
            }
            if (decoded.manifestName ?? SetLayout.legacyManifestName) != manifestName {
                problems.append("the manifest was signed as \(decoded.manifestName ?? SetLayout.legacyManifestName) but sits at \(manifestName): a copy, not the set's")
            }
            if let captured = Timestamp.parse(decoded.captureStart) {
                if captured.timeIntervalSince(now) > Self.clockSkewAllowance, !future {
                    future = true
                    problems.append("the manifest says it was captured at \(decoded.captureStart), in the future: a clock is wrong or someone wrote it")
                }
                if let idTime = SetLayout.time(ofSetId: layout.setId), abs(captured.timeIntervalSince(idTime)) >= 1 {
                    problems.append("the manifest's capture time \(decoded.captureStart) disagrees with its set id \(layout.setId)")
                }
            } else {
                problems.append("the manifest's capture time \(decoded.captureStart) cannot be read")
            }
        } catch {
            problems.append("the manifest does not parse: \(error)")
        }
        return CatalogEntry(layout: layout, manifestName: manifestName, manifest: manifest, manifestBytes: bytes, signature: signature, problems: problems,
                            isFutureDated: future, countsRecovered: countRecovered)
    }
}

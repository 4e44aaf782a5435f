import Foundation
import CNBackupCore
import CNBackupStorage
import CNBackupPostgres
import CNBackupCatalog

/// What the server says before a physical capture, for the chain choice.
struct PhysicalServerState: Sendable, Equatable {
    var systemIdentifier: String
    var timeline: Int
    var major: Int
    /// `summarize_wal` is on (PostgreSQL 17+); false when the setting does not exist.
    var summarizeWAL: Bool
}

/// One set as the chain choice sees it (from the Catalog: only trusted manifests carry a manifest here).
struct ChainSet: Sendable {
    var layout: SetLayout
    var manifest: Manifest?
    var trusted: Bool
    var complete: Bool
}

/// Which backup a physical capture configured for incrementals takes.
enum ChainChoice: Equatable {
    /// An incremental against `parent` (its component `record`), recording `link`.
    case incremental(parent: SetLayout, record: ComponentRecord, link: IncrementalLink)
    /// A full backup; `reason` says why not an incremental, `expected` when it is the planned
    /// rotation (the first backup, `fullEvery`, `maxChain`) rather than a problem worth a warning.
    case full(reason: String, expected: Bool)
}

/// The chain choice (pure: no I/O, no clock). The parent is the newest trusted, complete set of
/// the node whose component of this name is physical; it must be of the same instance (system
/// identifier), timeline, epoch and major version, carry a clear backup_manifest object, and its
/// own chain must be whole back to its full (every link trusted, complete, and the digests the
/// links record). The chain's full must be younger than `fullEvery`, and the chain shorter than
/// `maxChain`. Anything else gives a full backup: never a broken chain.
enum ChainChooser {
    static func choose(sets: [ChainSet], component: String, epoch: Epoch, server: PhysicalServerState,
                       policy: IncrementalPolicy, now: Date) -> ChainChoice {
        guard server.major >= 17 else {
            return .full(reason: "PostgreSQL \(server.major) cannot take incremental backups (17 or later can): a full backup is taken", expected: false)
        }
        guard server.summarizeWAL else {
            return .full(reason: "the server has summarize_wal off: incremental backups need WAL summaries (ALTER SYSTEM SET summarize_wal = on; SELECT pg_reload_conf()): a full backup is taken", expected: false)
        }
        // Newest first: by the signed capture start (milliseconds), then the set id (seconds).
        func time(_ set: ChainSet) -> String {
            set.manifest?.captureStart ?? SetLayout.time(ofSetId: set.layout.setId).map(Timestamp.format) ?? ""
        }
        let ordered = sets.sorted { (time($0), $0.layout.setId) > (time($1), $1.layout.setId) }
        var byId: [String: ChainSet] = [:]
        for set in ordered where set.trusted { byId[set.layout.setId] = set }
        func physical(_ set: ChainSet) -> (ComponentRecord, PhysicalEvidence)? {
            guard let record = set.manifest?.components.first(where: { $0.name == component }), let evidence = record.physical else { return nil }
            return (record, evidence)
        }
        guard let index = ordered.firstIndex(where: { $0.trusted && $0.complete && physical($0) != nil }) else {
            return .full(reason: "no trusted, complete earlier backup of \(component) in the store: a full backup starts the chain", expected: true)
        }
        // A newer run whose capture of this component failed (an incremental the server refused,
        // say): take a full rather than fail the same way again.
        for newer in ordered[..<index] where newer.trusted {
            if let failure = newer.manifest?.failures.first(where: { $0.component == component }) {
                return .full(reason: "the newer set \(newer.layout.setId) failed to capture \(component) (\(failure.reason.prefix(200))): a full backup is taken rather than an incremental on the older \(ordered[index].layout.setId)", expected: false)
            }
        }
        let parentSet = ordered[index]
        let (record, evidence) = physical(parentSet)!
        let parentId = parentSet.layout.setId
        let parentEpoch = record.epoch ?? parentSet.layout.epoch
        if evidence.systemIdentifier != server.systemIdentifier {
            return .full(reason: "the newest backup \(parentId) is of system \(evidence.systemIdentifier), the server is \(server.systemIdentifier) (another or a rebuilt instance): a full backup is taken", expected: false)
        }
        if evidence.timeline != server.timeline {
            return .full(reason: "the newest backup \(parentId) ended on timeline \(evidence.timeline), the server is on \(server.timeline) (a promotion or point-in-time recovery): a full backup is taken", expected: false)
        }
        if parentEpoch != epoch {
            return .full(reason: "the newest backup \(parentId) is of epoch \(parentEpoch), this capture of \(epoch): a full backup is taken", expected: false)
        }
        if PostgresClients.majorVersion(in: evidence.serverVersion) != server.major {
            return .full(reason: "the newest backup \(parentId) is of PostgreSQL \(evidence.serverVersion), the server is \(server.major): a full backup is taken", expected: false)
        }
        guard evidence.backupManifestObject != nil else {
            return .full(reason: "the newest backup \(parentId) has no clear backup_manifest object (it was taken before incrementals, or its manifest was too large): a full backup is taken", expected: false)
        }
        // The parent's own chain must be whole, back to its full.
        var link = evidence
        var linkSet = parentId
        var seen: Set<String> = [parentId]
        while let up = link.incremental {
            guard let upSet = byId[up.parentSetId], upSet.complete, !seen.contains(up.parentSetId),
                  let (_, upEvidence) = Optional(upSet).flatMap({ set -> (ComponentRecord, PhysicalEvidence)? in
                      guard let r = set.manifest?.components.first(where: { $0.name == up.parentComponent }), let e = r.physical else { return nil }
                      return (r, e)
                  }),
                  upEvidence.backupManifestSHA256 == up.parentBackupManifestSHA256,
                  upEvidence.chainPosition == up.position - 1 else {
                return .full(reason: "the chain of the newest backup \(parentId) is broken at \(linkSet): its parent \(up.parentSetId) is missing, untrusted, incomplete or does not match: a full backup is taken", expected: false)
            }
            seen.insert(up.parentSetId)
            link = upEvidence
            linkSet = up.parentSetId
        }
        let fullSetId = evidence.incremental?.fullSetId ?? parentId
        let fullStart = evidence.incremental?.fullCaptureStart ?? parentSet.manifest!.captureStart
        if linkSet != fullSetId {
            return .full(reason: "the chain of the newest backup \(parentId) does not end at the full \(fullSetId) it names: a full backup is taken", expected: false)
        }
        guard let fullTime = Timestamp.parse(fullStart) else {
            return .full(reason: "the chain's full \(fullSetId) has no readable capture time: a full backup is taken", expected: false)
        }
        if now.timeIntervalSince(fullTime) >= policy.fullEvery {
            return .full(reason: "the chain's full \(fullSetId) is \(DurationText.format(now.timeIntervalSince(fullTime))) old (fullEvery \(DurationText.format(policy.fullEvery))): a new full backup starts a chain", expected: true)
        }
        let position = evidence.chainPosition + 1
        if let maxChain = policy.maxChain, position + 1 > maxChain {
            return .full(reason: "the chain of \(fullSetId) holds \(position) backups (maxChain \(maxChain)): a new full backup starts a chain", expected: true)
        }
        return .incremental(parent: parentSet.layout, record: record,
                            link: IncrementalLink(parentSetId: parentId, parentComponent: component,
                                                  parentBackupManifestSHA256: evidence.backupManifestSHA256, position: position,
                                                  fullSetId: fullSetId, fullCaptureStart: fullStart))
    }
}

/// A private temporary file (mode 0600 in a 0700 folder, registered with LastResort), removed when released.
final class PrivateTemporaryFile {
    let path: String
    private let directory: String

    init(name: String, contents: [UInt8]) throws {
        directory = try PrivateFolder.create(prefix: "cnbackup-incr-")
        path = directory + "/" + name
        LastResort.register(file: path, inPrivateFolder: true)
        do {
            try KeyFile.writeSecretFile(path: path, contents: contents, what: "copy of the parent's backup_manifest")
        } catch {
            LastResort.unregister(file: path); unlink(path); rmdir(directory)
            throw error
        }
    }

    deinit {
        unlink(path)
        rmdir(directory)
        LastResort.unregister(file: path)
    }
}

/// The run's view of earlier sets, for incrementals: the node's sets in its store, trusted only
/// when signed by the run's own signer (the public half of the signing key the run holds).
final class IncrementalChains: @unchecked Sendable {
    // @unchecked: the cache is only touched under `lock`.
    private let catalog: Catalog
    private let node: String
    private let now: Date
    private let lock = NSLock()
    private var loaded: [ChainSet]?

    /// The largest clear backup_manifest read (a real one is a few MiB even for thousands of relations).
    static let manifestLimit = 64 << 20

    init(store: any ObjectStore, node: String, signer: SignerKey, now: Date) {
        catalog = Catalog(store: store, pins: SignerPins(anyNode: [], perNode: [node: [signer]]))
        self.node = node; self.now = now
    }

    private func sets() throws -> [ChainSet] {
        lock.lock(); defer { lock.unlock() }
        if let loaded { return loaded }
        let entries = try catalog.entries(node: node, now: now)
        let result = entries.filter { !$0.isFutureDated }.map {
            ChainSet(layout: $0.layout, manifest: $0.isTrusted ? $0.manifest : nil, trusted: $0.isTrusted, complete: $0.isCompleteBackup)
        }
        loaded = result
        return result
    }

    /// What the capture of `component` takes: an incremental (with the parent's backup_manifest in a
    /// private file, checked against the parent's signed manifest) or a full backup and why.
    enum Start {
        case incremental(IncrementalLink, parentManifest: PrivateTemporaryFile)
        case full(reason: String, expected: Bool)
    }

    func prepare(component: String, epoch: Epoch, server: PhysicalServerState, policy: IncrementalPolicy) -> Start {
        let all: [ChainSet]
        do { all = try sets() } catch {
            return .full(reason: "the store's earlier sets cannot be read (\(error)): a full backup is taken", expected: false)
        }
        switch ChainChooser.choose(sets: all, component: component, epoch: epoch, server: server, policy: policy, now: now) {
        case .full(let reason, let expected):
            return .full(reason: reason, expected: expected)
        case .incremental(let parent, let record, let link):
            let evidence = record.physical!
            let key = parent.key(relative: evidence.backupManifestObject!)
            do {
                let bytes = try catalog.store.getBytes(key: key, limit: Self.manifestLimit)
                guard Int64(bytes.count) == evidence.backupManifestSize, SHA256Hasher.hash(bytes).hex == evidence.backupManifestSHA256 else {
                    return .full(reason: "the clear backup_manifest of \(parent.setId) is not the one its signed manifest records (SHA-256 differs): a full backup is taken", expected: false)
                }
                return .incremental(link, parentManifest: try PrivateTemporaryFile(name: "parent_backup_manifest", contents: bytes))
            } catch let error as CNBackupError where error.code == .notFound {
                return .full(reason: "the clear backup_manifest of \(parent.setId) is missing: a full backup is taken", expected: false)
            } catch {
                return .full(reason: "the clear backup_manifest of \(parent.setId) cannot be read (\(error)): a full backup is taken", expected: false)
            }
        }
    }
}

import Foundation
import CNBackupCore
import CNBackupStorage
import CNBackupCatalog

/// Rebuilds the manifest of an orphan set (objects stored, manifest never written: the run was
/// killed, or lost its connection, before the commit) from what each object says of itself.
///
/// Every object's header names its set, node, epoch, component, role and capture start; opening it
/// with a private key authenticates every segment and gives the plaintext size and digest that a
/// manifest records. Objects that do not open, or that name another set, are listed as failures
/// and left out. The manifest is flagged `recovered` (readers show it), has no barrier evidence
/// (the run's order counter died with it) and is signed with the operator's signing key.
public struct Recoverer: Sendable {
    public let store: any ObjectStore
    public init(store: any ObjectStore) { self.store = store }

    public struct Options: Sendable {
        public var identities: [Identity]
        public var signingKey: SigningKey
        /// The node's kind, for the roles a complete set needs; nil infers it from the roles found.
        public var kind: NodeKind?
        /// Write nothing; return the manifest that would be written.
        public var dryRun: Bool
        /// A set whose newest object is younger may belong to a run still going: it is refused.
        public var olderThan: TimeInterval
        /// Go on although multipart uploads are open under the set (anyone who can write to the
        /// bucket can open one, so they must not block a recovery forever: the operator decides).
        public var ignoreOpenUploads = false
        /// Recover objects no journal entry vouches for (sets written before journals): what the
        /// store holds is then all there is to go on, and a writer's object passes as the run's.
        public var withoutJournal = false

        public init(identities: [Identity], signingKey: SigningKey, kind: NodeKind? = nil, dryRun: Bool = false,
                    olderThan: TimeInterval = 3600) {
            self.identities = identities; self.signingKey = signingKey; self.kind = kind; self.dryRun = dryRun
            self.olderThan = olderThan
        }
    }

    public func recover(setId: String, node: String? = nil, options: Options, now: Date = Date()) throws -> Manifest {
        guard SetLayout.isValidSetId(setId) else {
            throw CNBackupError(.invalidInput, "\"\(setId)\" is not a set id (they look like 20261125T040000Z-1a2b3c4d)")
        }
        let found = try store.list(prefix: node.map { $0 + "/" } ?? "").compactMap { info -> (SetLayout, String, ObjectInfo)? in
            guard let (layout, name) = SetLayout.parse(key: info.key), layout.setId == setId else { return nil }
            return (layout, name, info)
        }
        let directories = Set(found.map(\.0.directory))
        guard let layout = found.first?.0 else {
            throw CNBackupError(.notFound, "no objects of set \(setId) in \(store.displayName): `cnbackup cleanup` lists orphan sets")
        }
        guard directories.count == 1 else {
            throw CNBackupError(.integrity, "set id \(setId) appears under \(directories.count) folders: name the node with --node")
        }
        if found.contains(where: { SetLayout.isManifestName($0.1) }) {
            throw CNBackupError(.alreadyExists, "set \(setId) has a manifest: it is not an orphan, nothing to recover (see `cnbackup verify`)")
        }
        // Nothing stored is ever replaced: a signature left by the run (it signs just before its
        // manifest) or by anyone else stays, and recover stops.
        if found.contains(where: { SetLayout.manifestName(ofSignature: $0.1) != nil }) {
            throw CNBackupError(.alreadyExists,
                "set \(setId) has a signature but no manifest: recover never replaces a stored object; inspect it, and remove it with the pruner's credentials if it must go")
        }
        // An upload still open under the set means its run may still be going.
        if let uploads = store as? any MultipartUploadCleaning {
            let open = try uploads.staleMultipartUploads(olderThan: now.addingTimeInterval(1)).filter { $0.key.hasPrefix(layout.directory + "/") }
            if !open.isEmpty, !options.ignoreOpenUploads {
                throw CNBackupError(.invalidInput,
                    "set \(setId) has \(open.count) multipart upload(s) still open (\(open.prefix(3).map(\.key).joined(separator: ", "))): its run may still be going; wait, abort them with `cnbackup cleanup --apply` once it is surely dead, or pass --ignore-open-uploads (anyone who can write to the bucket can open one)")
            }
        }
        let objects = found.filter { $0.1.hasSuffix(SetLayout.objectSuffix) || $0.1.hasSuffix(SetLayout.indexSuffix) }.sorted { $0.1 < $1.1 }
        guard !objects.isEmpty else { throw CNBackupError(.notFound, "set \(setId) holds no sealed objects") }
        if let newest = found.map(\.2.lastModified).max(), now.timeIntervalSince(newest) < options.olderThan {
            throw CNBackupError(.invalidInput,
                "set \(setId) was written to \(Int(now.timeIntervalSince(newest)))s ago: its run may still be going; wait, or lower --older-than if you know it died")
        }

        var failures: [ComponentFailure] = []
        // Only objects the run's own signed journal vouches for are signed now; what it left out,
        // and why, goes into the manifest's failures.
        let journal = JournalEntry.load(names: found.map(\.1), layout: layout, store: store, signer: options.signingKey.publicKey)
        for reason in journal.refused {
            failures.append(ComponentFailure(component: "journal", role: "unknown", reason: "left out: \(reason)"))
        }
        var candidates: [(name: String, info: ObjectInfo, component: String)] = []
        for (_, name, info) in objects {
            guard let component = SetLayout.component(ofObjectName: name) else { continue }
            guard journal.entries[name] != nil || options.withoutJournal else {
                failures.append(ComponentFailure(component: component, role: "unknown",
                    reason: "left out: no journal entry signed by the node vouches for \(name) (a writer's object, or a set written before journals: --without-journal)"))
                continue
            }
            candidates.append((name, info, component))
        }
        // Two candidates claiming one component (a decoy beside the run's object, named like it,
        // when there is no journal to tell them apart): neither is recovered.
        let claims = Dictionary(grouping: candidates, by: \.component).filter { $0.value.count > 1 }
        for (component, claimants) in claims.sorted(by: { $0.key < $1.key }) {
            failures.append(ComponentFailure(component: component, role: "unknown",
                                             reason: "not recovered: several objects claim this component (\(claimants.map(\.name).joined(separator: ", ")))"))
        }
        var records: [ComponentRecord] = []
        var captureStarts: [String] = []
        for (name, info, component) in candidates where claims[component] == nil {
            do {
                let record = try rebuild(component: component, name: name, info: info, layout: layout, identities: options.identities)
                if let vouched = journal.entries[name], vouched.record.headerSHA256 != record.headerSHA256
                    || vouched.record.storedSize != record.storedSize || vouched.record.storedSHA256 != record.storedSHA256 {
                    failures.append(ComponentFailure(component: component, role: record.role.rawValue,
                                                     reason: "left out: \(name) is not the object its journal entry vouches for"))
                    continue
                }
                records.append(record)
                captureStarts.append(record.started)
            } catch {
                failures.append(ComponentFailure(component: component, role: "unknown", reason: "not recovered: \(error)"))
            }
        }
        // Deduplicated components: an index is not named like an object, so only its journal entry
        // (signed by the node) says what it is; the record it vouches for is kept once the whole
        // plaintext has been read through the index, every chunk proven, and the chunk table matches.
        let names = Set(found.map(\.1))
        for (name, vouched) in journal.entries.sorted(by: { $0.key < $1.key })
        where vouched.record.dedup != nil && name.hasSuffix(SetLayout.indexSuffix) && names.contains(name) {
            do {
                var record = vouched.record
                record.readBack = .recovered
                let provisional = Manifest(
                    formatVersion: Manifest.currentFormatVersion, setId: setId, node: NodeInfo(name: layout.node, kind: .generic),
                    epoch: layout.epoch, status: .partial, failures: [], toolVersion: cnbackupVersion,
                    captureStart: record.started, captureEnd: record.ended, recovered: true, components: [record], barrier: nil)
                let reader = try ComponentReader(store: store, key: layout.key(relative: name),
                                                 expect: .record(record, manifest: provisional, layout: layout),
                                                 keys: .identities(options.identities))
                try reader.plaintext.forEachChunk { _ in }
                try reader.finish()
                try Catalog(store: store, signers: []).readChunkTable(record.dedup!, layout: layout) { _ in }
                records.append(record)
                captureStarts.append(record.started)
            } catch {
                failures.append(ComponentFailure(component: vouched.record.name, role: vouched.record.role.rawValue,
                                                 reason: "not recovered: \(error)"))
            }
        }
        guard !records.isEmpty else {
            throw CNBackupError(.invalidInput, "nothing of set \(setId) can be recovered: " + failures.map(\.reason).joined(separator: "; "))
        }
        let roles = Set(records.map(\.role))
        let kind = options.kind ?? Self.inferKind(roles)
        for role in PipelineDefinition.requiredRoles(kind) where !roles.contains(role) {
            failures.append(ComponentFailure(component: role.rawValue, role: role.rawValue,
                                             reason: "no recovered object of this role: a \(kind.rawValue) set needs one"))
        }
        let manifest = Manifest(
            formatVersion: Manifest.currentFormatVersion, setId: setId, node: NodeInfo(name: layout.node, kind: kind),
            epoch: layout.epoch, status: failures.isEmpty ? .complete : .partial, failures: failures,
            toolVersion: cnbackupVersion, captureStart: captureStarts.min() ?? Timestamp.format(objects.map(\.2.lastModified).min()!),
            captureEnd: Timestamp.format(objects.map(\.2.lastModified).max()!), recovered: true,
            components: records, barrier: nil)
        if options.dryRun { return manifest }
        // The signature, then the manifest (the commit point), each only if absent.
        return try SetCommitter(store: store).commit(manifest, layout: layout, signingKey: options.signingKey)
    }

    /// Reads one object whole: header checked against its place, every segment authenticated,
    /// the zstd frame decompressed, the plaintext counted and hashed.
    private func rebuild(component: String, name: String, info: ObjectInfo, layout: SetLayout,
                         identities: [Identity]) throws -> ComponentRecord {
        let reader = try ComponentReader(store: store, key: info.key, expect: .place(layout: layout, component: component),
                                         keys: .identities(identities))
        try reader.plaintext.forEachChunk { _ in }
        let totals = try reader.finish()
        let d = reader.header.description
        let record = ComponentRecord(
            name: component, role: d.role.flatMap(ComponentRole.init(rawValue:)) ?? .other, source: "recovered from the object header",
            objectKey: name, storedSize: totals.storedSize, storedSHA256: totals.storedSHA256.hex,
            headerSHA256: SHA256Hasher.hash(reader.header.bytes).hex, etag: info.etag,
            plaintextSize: totals.plaintextSize, plaintextDigestHMAC: try reader.dataKey.plaintextDigestMAC(totals.plaintextSHA256).hex,
            // The level is not in the object; zstd frames decode whatever the level.
            codec: CodecInfo(name: "zstd", level: 0), keyIds: reader.header.keyIDs, segmentSize: reader.header.segmentSize,
            // Times the object proves: it was stored at lastModified; the start its header claims
            // (anyone can seal a header) counts only when it is not later than that.
            started: d.captureStart.flatMap { claimed in Timestamp.parse(claimed).map { $0 <= info.lastModified ? claimed : Timestamp.format(info.lastModified) } }
                ?? Timestamp.format(info.lastModified),
            ended: Timestamp.format(info.lastModified),
            startOrder: 0, endOrder: 0, readBack: .recovered, postgres: nil)
        return record
    }

    /// An SV's set has sequencer, mediator or CometBFT components; a validator's has apps or a
    /// participant without them.
    static func inferKind(_ roles: Set<ComponentRole>) -> NodeKind {
        if !roles.isDisjoint(with: [.sequencer, .mediator, .cometbft]) { return .sv }
        if !roles.isDisjoint(with: [.apps, .participant]) { return .validator }
        return .generic
    }
}

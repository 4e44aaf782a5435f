import Foundation
import CNBackupCore
import CNBackupStorage
import CNBackupCatalog

/// The outcome of checking one set.
public struct VerifyReport: Codable, Sendable {
    public struct ComponentCheck: Codable, Sendable {
        public var component: String
        public var ok: Bool
        public var checked: [String]
        public var error: String?
        /// The key ids the object was sealed for: the private keys that must be kept.
        public var keyIds: [KeyID]
    }

    public var setId: String
    /// The set's newest restore drill signed by a pinned drill key (`--drill-signer`), when there is one.
    public var drill: DrillSummary? = nil
    public var node: String?
    public var epoch: String?
    public var status: String?
    public var signature: String
    /// The manifest's signature verified under a pinned signer (the decision; `signature` says why).
    public var signatureValid: Bool = false
    public var deep: Bool
    public var components: [ComponentCheck]
    public var problems: [String]
    /// The keys that can open every component of the set (each component lists its own).
    public var openableBy: [KeyID]
    /// Everything checked holds, and the set is complete.
    public var ok: Bool
}

/// What to check beyond the shallow checks.
public struct VerifyOptions: Sendable {
    /// Private keys: open every object (deep verify).
    public var identities: [Identity]?
    /// The key ids the operator still holds: a set that none of them can open fails. The
    /// identities' own ids count as held.
    public var heldKeys: [KeyID]?
    /// Where pg_restore is, for `pg_restore --list` on dumps (deep); default PATH.
    public var pgBinDirectory: String?

    public init(identities: [Identity]? = nil, heldKeys: [KeyID]? = nil, pgBinDirectory: String? = nil) {
        self.identities = identities; self.heldKeys = heldKeys; self.pgBinDirectory = pgBinDirectory
    }

    var allHeldKeys: Set<KeyID>? {
        guard heldKeys != nil || identities != nil else { return nil }
        return Set((heldKeys ?? []) + (identities ?? []).map(\.keyID))
    }
}

/// Checks a set against its signed manifest. Shallow: the signature by a pinned signer, the barrier
/// evidence, and every object's presence, size, SHA-256 and header (which names its set and
/// component, so objects swapped between sets or components fail). Deep: also opens every object
/// with a private key, decompresses it and checks the plaintext's size and digest HMAC, runs
/// `pg_restore --list` on dumps and checks an identities dump's shape.
public struct Verifier: Sendable {
    public let catalog: Catalog
    public init(catalog: Catalog) { self.catalog = catalog }

    public func verify(setId: String, node: String? = nil, identities: [Identity]? = nil) throws -> VerifyReport {
        try verify(entry: catalog.entry(setId: setId, node: node), options: VerifyOptions(identities: identities))
    }

    public func verify(entry: CatalogEntry, options: VerifyOptions) throws -> VerifyReport {
        let identities = options.identities
        let deep = identities != nil
        var report = VerifyReport(setId: entry.setId, node: entry.manifest?.node.name, epoch: entry.manifest?.epoch.description,
                                  status: entry.manifest?.status.rawValue, signature: entry.signature.description,
                                  signatureValid: entry.signature.isValid,
                                  deep: deep, components: [], problems: entry.problems, openableBy: [], ok: false)
        guard let set = entry.trusted else {
            if !entry.signature.isValid { report.problems.insert("signature \(entry.signature)", at: 0) }
            return report
        }
        let manifest = set.manifest
        if manifest.status != .complete {
            report.problems.append("the set is partial: " + manifest.failures.map { "\($0.component): \($0.reason)" }.joined(separator: "; "))
        }
        if let barrier = manifest.barrier {
            let outcome = BarrierRule.evaluate(manifest.components, apps: barrier.appsComponents)
            if let appsEnd = outcome.appsCompletedOrder, let participantStart = outcome.participantStartedOrder, appsEnd >= participantStart {
                report.problems.append("the apps capture ended (event \(appsEnd)) after the participant capture started (event \(participantStart)): the set breaks the apps-before-participant rule")
            } else if !barrier.holds || !outcome.holds && manifest.status == .complete {
                report.problems.append("the barrier evidence says the apps-before-participant rule does not hold")
            }
        }
        if manifest.order == .canton, let evidence = manifest.sequencerBarrier {
            let outcome = BarrierRule.evaluateSequencer(manifest.components, before: evidence.beforeComponents)
            if let end = outcome.beforeCompletedOrder, let start = outcome.sequencerStartedOrder, end >= start {
                report.problems.append("the participant or mediator capture ended (event \(end)) after the sequencer capture started (event \(start)): the set breaks order: canton")
            } else if !evidence.holds || !outcome.holds && manifest.status == .complete {
                report.problems.append("the evidence says order: canton (participant and mediator before the sequencer) does not hold")
            }
        } else if manifest.order == .canton, manifest.components.contains(where: { $0.role == .sequencer }) {
            report.problems.append("the set says order: canton and carries no evidence of it")
        }
        if manifest.recovered == true {
            report.status = (report.status ?? "") + " (recovered from object headers by `cnbackup recover`)"
        }
        for record in manifest.components {
            report.components.append(check(record, entry: entry, manifest: manifest, options: options))
            // An incremental restores only with every link of its chain, back to its full.
            if record.physical?.incremental != nil {
                do {
                    _ = try IncrementalChainLinks.resolve(record: record, set: set, catalog: catalog)
                } catch {
                    report.problems.append("the incremental chain of \(record.name) is broken: \(error)")
                }
            }
        }
        let perComponent = manifest.components.map { Set($0.keyIds) }
        report.openableBy = perComponent.first.map { first in perComponent.dropFirst().reduce(first) { $0.intersection($1) } }
            .map { Array($0).sorted { $0.description < $1.description } } ?? []
        if let held = options.allHeldKeys {
            for record in manifest.components where held.isDisjoint(with: record.keyIds) {
                report.problems.append("none of the keys you hold can open \(record.name): it was sealed to \(record.keyIds.map(\.description).joined(separator: ", "))")
            }
        }
        report.ok = report.problems.isEmpty && report.components.allSatisfy(\.ok)
        return report
    }

    private func check(_ record: ComponentRecord, entry: CatalogEntry, manifest: Manifest, options: VerifyOptions) -> VerifyReport.ComponentCheck {
        var result = VerifyReport.ComponentCheck(component: record.name, ok: false, checked: [], error: nil, keyIds: record.keyIds)
        do {
            let key = entry.layout.key(relative: record.objectKey)
            guard let head = try catalog.store.head(key: key) else {
                throw CNBackupError(.integrity, "object \(record.objectKey) is missing")
            }
            guard head.size == record.storedSize else {
                throw CNBackupError(.integrity, "object \(record.objectKey) holds \(head.size) bytes, the manifest says \(record.storedSize)")
            }
            result.checked.append("size")
            if let dedup = record.dedup {
                try checkChunks(dedup, entry: entry, node: manifest.node.name)
                result.checked += ["chunk table", "chunks present"]
            }
            if let identities = options.identities {
                let reader = try ComponentReader(store: catalog.store, key: key, expect: .record(record, manifest: manifest, layout: entry.layout),
                                                 keys: .identities(identities))
                let content = ContentChecks(record: record, pgBinDirectory: options.pgBinDirectory)
                do {
                    try reader.plaintext.forEachChunk { try content.consume($0) }
                } catch let error as CNBackupError where record.dedup != nil {
                    // A damaged chunk is every set's problem that uses it: say which.
                    guard let range = error.message.range(of: #"\.chunks/[^ )]+"#, options: .regularExpression) else { throw error }
                    let chunk = String(error.message[range])
                    throw CNBackupError(error.code, error.message + "; sets using this chunk: " + (try sets(using: [chunk], node: manifest.node.name)).joined(separator: ", "),
                                        cause: error.cause)
                }
                try reader.finish()
                try content.finish()
                result.checked += ["sha256", "header", "authenticated", "zstd checksum", "plaintext digest"] + content.checked
            } else {
                let stored = DigestingStream(LimitedStream(try catalog.store.get(key: key), limit: record.storedSize,
                                                           what: "object \(record.objectKey)"))
                let reader = ChunkReader(stored)
                let header = try SealedHeader.read(from: reader)
                try ComponentReader.check(header: header, against: .record(record, manifest: manifest, layout: entry.layout))
                try reader.skipToEnd()
                try checkStoredDigest(stored, record)
                result.checked += ["sha256", "header"] + (record.headerSHA256 != nil ? ["header bound"] : [])
            }
            if let clear = record.physical?.backupManifestObject {
                try checkClearBackupManifest(clear, record: record, entry: entry)
                result.checked.append("clear backup_manifest")
            }
            result.ok = true
        } catch {
            result.error = "\(error)"
        }
        return result
    }

    /// A deduplicated component's chunk table must be the one the manifest binds, and every chunk
    /// it lists must be in the store with its size (a deep verify then opens each one).
    private func checkChunks(_ dedup: DedupRecord, entry: CatalogEntry, node: String) throws {
        var present: [String: Int64] = [:]
        for info in try catalog.store.list(prefix: SetLayout.chunkFolder(node: node)) { present[info.key] = info.size }
        var bad: [String] = []
        try catalog.readChunkTable(dedup, layout: entry.layout) { reference in
            if present[reference.key] != reference.storedSize { bad.append(reference.key) }
        }
        guard bad.isEmpty else {
            throw CNBackupError(.integrity, "\(bad.count) chunk(s) are missing or have the wrong size (\(bad.prefix(3).joined(separator: ", "))\(bad.count > 3 ? ", ..." : "")); sets using them: \((try sets(using: bad, node: node)).joined(separator: ", "))")
        }
    }

    /// The trusted sets of `node` whose chunk tables list any of `chunks`.
    private func sets(using chunks: [String], node: String) throws -> [String] {
        let wanted = Set(chunks)
        var using: [String] = []
        for set in try catalog.entries(node: node).compactMap(\.trusted) {
            var uses = false
            for record in set.manifest.components {
                guard let dedup = record.dedup, !uses else { continue }
                try? catalog.readChunkTable(dedup, layout: set.layout) { if wanted.contains($0.key) { uses = true } }
            }
            if uses { using.append(set.setId) }
        }
        return using
    }

    /// The clear copy of a physical backup's backup_manifest must be the one the signed manifest records.
    private func checkClearBackupManifest(_ name: String, record: ComponentRecord, entry: CatalogEntry) throws {
        let evidence = record.physical!
        let bytes: [UInt8]
        do {
            bytes = try catalog.store.getBytes(key: entry.layout.key(relative: name), limit: IncrementalChains.manifestLimit)
        } catch let error as CNBackupError where error.code == .notFound {
            throw CNBackupError(.integrity, "the clear backup_manifest \(name) is missing (the next incremental of \(record.name) falls back to a full backup)")
        }
        guard Int64(bytes.count) == evidence.backupManifestSize, SHA256Hasher.hash(bytes).hex == evidence.backupManifestSHA256 else {
            throw CNBackupError(.integrity, "the clear backup_manifest \(name) is not the one the signed manifest records (SHA-256 differs)")
        }
    }

    private func checkStoredDigest(_ stored: DigestingStream, _ record: ComponentRecord) throws {
        guard stored.digest?.hex == record.storedSHA256 else {
            throw CNBackupError(.integrity, "object \(record.objectKey) has other bytes than the manifest records (SHA-256 differs)")
        }
    }
}

extension Verifier {
    /// The sets to check in a long history: `percent` of them at random, at least one, and always
    /// the newest (the one a restore would use first). Untrusted sets are always included: they
    /// are what verify is for.
    public static func sample(_ entries: [CatalogEntry], percent: Double) -> [CatalogEntry] {
        guard percent < 100, entries.count > 1 else { return entries }
        let wanted = max(1, Int((Double(entries.count) * percent / 100).rounded(.up)))
        var chosen = Set(entries.indices.shuffled().prefix(wanted))
        // The newest trusted set (a decoy copy of it elsewhere may sort after it: decoys are
        // untrusted and come in below anyway).
        chosen.insert(entries.lastIndex(where: \.isTrusted) ?? entries.count - 1)
        for (index, entry) in entries.enumerated() where !entry.isTrusted { chosen.insert(index) }
        return chosen.sorted().map { entries[$0] }
    }
}

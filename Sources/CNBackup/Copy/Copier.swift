import Foundation
import CNBackupCore
import CNBackupStorage
import CNBackupCatalog

/// Copies sets between stores byte for byte (same set ids, objects, manifests and signatures; no
/// key needed): the off-cluster disaster copy. Only sets whose manifest is signed by a pinned
/// signer are copied. Objects already at the destination with the right size and digest are
/// skipped, so an interrupted copy resumes; the signature and then the manifest go last, so the
/// destination never shows a set as committed before all its objects are there. Each copied set
/// is verified at the destination against its manifest.
public struct Copier: Sendable {
    public let source: Catalog
    public let destination: any ObjectStore

    /// Copy sets that `recover` rebuilt too (an operator's explicit choice).
    public var allowRecovered = false

    public init(source: Catalog, destination: any ObjectStore) {
        self.source = source; self.destination = destination
    }

    public struct Outcome: Sendable, Codable {
        public var setId: String
        public var copiedObjects: Int
        public var skippedObjects: Int
        public var verified: Bool
        public var error: String?
    }

    /// Copies `setIds`, or every trusted set the destination lacks when nil.
    public func copy(setIds: [String]?, node: String? = nil) throws -> [Outcome] {
        let entries: [CatalogEntry]
        if let setIds {
            entries = try setIds.map { try source.entry(setId: $0, node: node) }
        } else {
            entries = try source.entries(node: node)
        }
        let destinationCatalog = Catalog(store: destination, pins: source.pins, countRecovered: source.countRecovered)
        return entries.map { entry in
            var outcome = Outcome(setId: entry.setId, copiedObjects: 0, skippedObjects: 0, verified: false, error: nil)
            do {
                guard let set = entry.trusted else {
                    throw CNBackupError(.authentication, "not copied: signature \(entry.signature)")
                }
                let manifest = set.manifest
                if set.recovered, !allowRecovered {
                    throw CNBackupError(.authentication, "not copied: the set was rebuilt by `cnbackup recover` (pass --allow-recovered to copy it)")
                }
                if setIds == nil, try destination.head(key: entry.manifestKey) != nil {
                    outcome.copiedObjects += try copyDrillReceipts(of: set)
                    outcome.skippedObjects = manifest.components.count + 2
                    outcome.verified = try Verifier(catalog: destinationCatalog).verify(setId: entry.setId, node: entry.layout.node).ok
                    return outcome
                }
                for record in manifest.components {
                    let key = entry.layout.key(relative: record.objectKey)
                    if let existing = try destination.head(key: key), existing.size == record.storedSize,
                       try digest(of: key) == record.storedSHA256 {
                        outcome.skippedObjects += 1
                        continue
                    }
                    // Tags are unsigned: the copy gets the ones the signed manifest implies, never the source's.
                    let tags = SetCommitter.tags(layout: set.layout, component: record.name)
                    let stream = Progress.track(try source.store.get(key: key), name: "\(entry.setId)/\(record.name)", total: record.storedSize)
                    try destination.put(key: key, from: stream, options: PutOptions(tags: tags, sizeHint: record.storedSize))
                    outcome.copiedObjects += 1
                }
                // Deduplicated components: the chunk table, then every chunk it lists that the
                // destination lacks (its key is kept, so the destination deduplicates too).
                for record in manifest.components {
                    guard let dedup = record.dedup else { continue }
                    let tags = SetCommitter.tags(layout: set.layout, component: record.name)
                    try source.readChunkTable(dedup, layout: set.layout) { chunk in
                        if let existing = try destination.head(key: chunk.key), existing.size == chunk.storedSize,
                           try digest(of: chunk.key) == chunk.storedSHA256 {
                            outcome.skippedObjects += 1
                            return
                        }
                        let bytes = try source.store.getBytes(key: chunk.key, limit: Int(chunk.storedSize))
                        guard SHA256Hasher.hash(bytes).hex == chunk.storedSHA256 else {
                            throw CNBackupError(.integrity, "chunk \(chunk.key) in the source has other bytes than set \(entry.setId) records: not copied")
                        }
                        try destination.putBytes(key: chunk.key, bytes, options: PutOptions(tags: tags, ifAbsent: true))
                        outcome.copiedObjects += 1
                    }
                    let key = entry.layout.key(relative: dedup.chunkTable)
                    if try destination.head(key: key) == nil {
                        let table = try source.store.getBytes(key: key, limit: Int(dedup.chunkTableSize))
                        guard SHA256Hasher.hash(table).hex == dedup.chunkTableSHA256 else {
                            throw CNBackupError(.integrity, "the chunk table of \(record.name) in \(entry.setId) has other bytes than its manifest records: not copied")
                        }
                        try destination.putBytes(key: key, table, options: PutOptions(tags: tags, ifAbsent: true))
                        outcome.copiedObjects += 1
                    } else {
                        outcome.skippedObjects += 1
                    }
                }
                // The clear copies of physical backups' backup_manifest (what the next incremental reads).
                for record in manifest.components {
                    guard let name = record.physical?.backupManifestObject, let size = record.physical?.backupManifestSize else { continue }
                    let key = entry.layout.key(relative: name)
                    if let existing = try destination.head(key: key), existing.size == size,
                       try digest(of: key) == record.physical!.backupManifestSHA256 {
                        outcome.skippedObjects += 1
                        continue
                    }
                    let tags = SetCommitter.tags(layout: set.layout, component: record.name)
                    try destination.putBytes(key: key, try source.store.getBytes(key: key, limit: IncrementalChains.manifestLimit),
                                             options: PutOptions(tags: tags))
                    outcome.copiedObjects += 1
                }
                // The signature, then the manifest bytes that were verified (not a second read of them).
                let tags = SetCommitter.tags(layout: set.layout, component: "manifest")
                let signatureKey = set.layout.key(relative: SetLayout.signatureName(of: set.manifestName))
                try destination.putBytes(key: signatureKey, try source.store.getBytes(key: signatureKey, limit: 4096),
                                         options: PutOptions(tags: tags, ifAbsent: true))
                try destination.putBytes(key: set.layout.key(relative: set.manifestName), set.manifestBytes, options: PutOptions(tags: tags, ifAbsent: true))
                outcome.copiedObjects += 2
                outcome.copiedObjects += try copyDrillReceipts(of: set)
                let report = try Verifier(catalog: destinationCatalog).verify(setId: entry.setId, node: entry.layout.node)
                outcome.verified = report.components.allSatisfy(\.ok) && report.signatureValid
                if !outcome.verified { outcome.error = "verification at the destination failed" }
            } catch {
                outcome.error = "\(error)"
            }
            return outcome
        }
    }

    /// The set's drill receipts and their signatures that the destination lacks, so that
    /// `check-freshness --max-drill-age` holds against the disaster copy too. Readers there check
    /// each receipt's signature against their pinned drill keys, as they do here; the receipts
    /// are copied as they are (a receipt speaks about the manifest bytes, which the copy keeps).
    private func copyDrillReceipts(of set: TrustedSet) throws -> Int {
        var copied = 0
        for info in try source.store.list(prefix: set.layout.directory + "/") {
            guard let (_, name) = SetLayout.parse(key: info.key) else { continue }
            let receipt = name.hasSuffix(DrillReceipt.signatureSuffix) ? String(name.dropLast(DrillReceipt.signatureSuffix.count)) : name
            guard DrillReceipt.isReceiptName(receipt), try destination.head(key: info.key) == nil else { continue }
            try destination.putBytes(key: info.key, try source.store.getBytes(key: info.key, limit: 4 << 20),
                                     options: PutOptions(tags: SetCommitter.tags(layout: set.layout, component: "drill"), ifAbsent: true))
            copied += 1
        }
        return copied
    }

    private func digest(of key: String) throws -> String {
        let hasher = SHA256Hasher()
        try destination.get(key: key).forEachChunk { hasher.update($0) }
        return hasher.finalize().hex
    }
}

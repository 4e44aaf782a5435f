import Foundation
import CNBackupCore
import CNBackupStorage
import CNBackupCatalog

/// Which of a node's deduplicated chunks prune may delete, on a defined clock (docs/FORMAT.md,
/// "Deduplicated components"). With G the longest grace period any set records:
/// - runs reuse only chunks of sets younger than G and commit within G;
/// - a chunk is deleted only when no remaining set's chunk table references it (trusted or not), its own object is
///   older than 2G (it may belong to a run still going, whose tables are not written yet), and no
///   set folder without a manifest has an object younger than 2G (a run still going may reuse
///   any chunk of the sets it started from, some of which this prune may be deleting).
/// Anything that cannot be read (a set, a chunk table) stops chunk deletion altogether.
public struct ChunkCollector: Sendable {
    public let catalog: Catalog

    public init(catalog: Catalog) { self.catalog = catalog }

    public struct Plan: Sendable, Codable {
        public var node: String
        public var referenced: Int
        /// Chunk keys to delete, and their bytes.
        public var unreferenced: [String]
        public var bytes: Int64
        /// Unreferenced chunks kept because they are younger than 2G.
        public var tooYoung: Int
        /// Why nothing is deleted, when so.
        public var refused: String?
    }

    /// - Parameter deleting: the sets prune deletes in the same pass (their references do not count).
    public func plan(node: String, entries: [CatalogEntry], deleting: Set<String>, now: Date = Date()) throws -> Plan {
        var plan = Plan(node: node, referenced: 0, unreferenced: [], bytes: 0, tooYoung: 0, refused: nil)
        let chunks = try catalog.store.list(prefix: SetLayout.chunkFolder(node: node))
        guard !chunks.isEmpty else { return plan }
        var referenced = Set<String>()
        var grace: TimeInterval = 0
        for entry in entries {
            if entry.isUnreadable {
                plan.refused = "the store did not answer for set \(entry.setId): no chunk is deleted until every set reads"
                return plan
            }
            guard !deleting.contains(entry.setId), let manifest = entry.trusted?.manifest ?? entry.manifest else { continue }
            // An untrusted set's references count too (a set whose signer is no longer pinned is
            // still a set); a forged one can only keep chunks alive, never get one deleted.
            for record in manifest.components {
                guard let dedup = record.dedup else { continue }
                if entry.isTrusted { grace = max(grace, dedup.graceSeconds) }
                // An unsigned claim does not get to make prune read without end.
                if !entry.isTrusted && dedup.chunkTableSize > 256 << 20 { continue }
                do {
                    try catalog.readChunkTable(dedup, layout: entry.layout) { referenced.insert($0.key) }
                } catch where !entry.isTrusted {
                    continue
                } catch {
                    plan.refused = "the chunk table of \(record.name) in \(entry.setId) cannot be read (\(error)): no chunk is deleted"
                    return plan
                }
            }
        }
        for entry in entries where deleting.contains(entry.setId) {
            for record in entry.trusted?.manifest.components ?? [] { if let dedup = record.dedup { grace = max(grace, dedup.graceSeconds) } }
        }
        if grace == 0 { grace = DedupSettings.defaultGrace }
        plan.referenced = referenced.count
        // A run still going: a set folder with objects but no manifest, written to within 2G.
        let young = now.addingTimeInterval(-2 * grace)
        var folders: [String: (hasManifest: Bool, newest: Date)] = [:]
        for info in try catalog.store.list(prefix: node + "/") {
            guard let (layout, name) = SetLayout.parse(key: info.key) else { continue }
            var folder = folders[layout.directory] ?? (false, .distantPast)
            if SetLayout.isManifestName(name) { folder.hasManifest = true }
            folder.newest = max(folder.newest, info.lastModified)
            folders[layout.directory] = folder
        }
        if let (directory, _) = folders.first(where: { !$0.value.hasManifest && $0.value.newest > young }) {
            plan.refused = "\(directory) has no manifest yet and was written to within twice the grace period (\(Int(2 * grace / 3600))h): a run may still be going and reusing chunks; no chunk is deleted"
            return plan
        }
        for chunk in chunks where !referenced.contains(chunk.key) {
            if chunk.lastModified > young { plan.tooYoung += 1; continue }
            plan.unreferenced.append(chunk.key)
            plan.bytes += chunk.size
        }
        return plan
    }

    /// Deletes what the plan lists; a chunk still retained (Object Lock) stays and is reported.
    public func apply(_ plan: Plan) throws -> Int {
        guard plan.refused == nil else { return 0 }
        var deleted = 0
        for key in plan.unreferenced {
            if let until = try catalog.store.head(key: key)?.retainUntil, until > Date() { continue }
            try catalog.store.delete(keys: [key])
            deleted += 1
        }
        return deleted
    }
}

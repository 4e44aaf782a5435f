import Foundation
import CNBackupCore

/// The links of an incremental's chain, full first, each from its own trusted, complete signed
/// manifest, each the parent its child names (set, component, backup_manifest digest, position).
public enum IncrementalChainLinks {
    public struct Link: Sendable {
        /// The set that holds this link.
        public var inSet: TrustedSet
        public var record: ComponentRecord
        public var manifest: Manifest { inSet.manifest }

        package init(inSet: TrustedSet, record: ComponentRecord) {
            self.inSet = inSet
            self.record = record
        }
    }

    public static func resolve(record: ComponentRecord, set: TrustedSet, catalog: Catalog) throws -> [Link] {
        var links = [Link(inSet: set, record: record)]
        var current = record
        var seen: Set<String> = [set.setId]
        while let up = current.physical?.incremental {
            guard !seen.contains(up.parentSetId), links.count <= 10_000 else {
                throw CNBackupError(.integrity, "the chain of \(record.name) loops at \(up.parentSetId)")
            }
            seen.insert(up.parentSetId)
            let parent: CatalogEntry
            do {
                parent = try catalog.entry(setId: up.parentSetId, node: set.node)
            } catch let error as CNBackupError where error.code == .notFound {
                throw CNBackupError(.notFound, "link \(up.position - 1) of the chain, set \(up.parentSetId), is gone (the full is \(up.fullSetId))")
            }
            guard let parentSet = parent.trusted else {
                throw CNBackupError(.authentication, "link \(up.position - 1) of the chain, set \(up.parentSetId), is untrusted: signature \(parent.signature)")
            }
            let parentManifest = parentSet.manifest
            guard parentManifest.status == .complete else {
                throw CNBackupError(.integrity, "link \(up.position - 1) of the chain, set \(up.parentSetId), is partial")
            }
            guard let parentRecord = parentManifest.components.first(where: { $0.name == up.parentComponent }), let evidence = parentRecord.physical else {
                throw CNBackupError(.integrity, "set \(up.parentSetId) has no physical component \(up.parentComponent)")
            }
            guard evidence.backupManifestSHA256 == up.parentBackupManifestSHA256 else {
                throw CNBackupError(.integrity, "set \(up.parentSetId)'s \(up.parentComponent) has another backup_manifest than its child was taken against")
            }
            guard evidence.chainPosition == up.position - 1 else {
                throw CNBackupError(.integrity, "set \(up.parentSetId) is at chain position \(evidence.chainPosition), its child says \(up.position - 1)")
            }
            if evidence.incremental == nil, up.parentSetId != up.fullSetId {
                throw CNBackupError(.integrity, "the chain ends at the full \(up.parentSetId), but its child names the full \(up.fullSetId)")
            }
            links.append(Link(inSet: parentSet, record: parentRecord))
            current = parentRecord
        }
        return links.reversed()
    }
}

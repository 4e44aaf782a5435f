import Foundation
import CNBackupCore
import CNBackupStorage
import CNBackupCatalog

/// What `cleanup` would remove: objects of sets that never got a manifest and are older than the
/// longest run could take, and multipart uploads left behind. Sets with a manifest (complete or
/// partial, trusted or not) are never touched here: that is `prune`'s job, which checks signatures.
public struct CleanupPlan: Sendable, Codable {
    public struct OrphanSet: Sendable, Codable {
        public var directory: String
        public var keys: [String]
        public var bytes: Int64
        public var newest: Date
    }
    public var orphanSets: [OrphanSet]
    public var staleUploads: [StaleUpload]
    /// For a store whose unfinished uploads cannot be listed (GCS), what becomes of them.
    public var uploadSessionsNote: String?
}

public struct Cleaner: Sendable {
    public let store: any ObjectStore
    /// Orphans younger than this may belong to a run still going: they are left alone.
    public let olderThan: TimeInterval

    public init(store: any ObjectStore, olderThan: TimeInterval) {
        self.store = store; self.olderThan = olderThan
    }

    public func plan(now: Date = Date()) throws -> CleanupPlan {
        let cutoff = now.addingTimeInterval(-olderThan)
        var bySet: [String: [ObjectInfo]] = [:]
        for object in try store.list(prefix: "") {
            guard let (layout, _) = SetLayout.parse(key: object.key) else { continue }
            bySet[layout.directory, default: []].append(object)
        }
        var orphans: [CleanupPlan.OrphanSet] = []
        for (directory, objects) in bySet.sorted(by: { $0.key < $1.key }) {
            if objects.contains(where: { SetLayout.parse(key: $0.key).map { SetLayout.isManifestName($0.name) } == true }) { continue }
            let newest = objects.map(\.lastModified).max() ?? .distantPast
            guard newest < cutoff else { continue }
            orphans.append(.init(directory: directory, keys: objects.map(\.key), bytes: objects.reduce(0) { $0 + $1.size }, newest: newest))
        }
        let uploads = try (store as? any MultipartUploadCleaning)?.staleMultipartUploads(olderThan: cutoff) ?? []
        return CleanupPlan(orphanSets: orphans, staleUploads: uploads,
                           uploadSessionsNote: (store as? any UnlistedUploadSessions)?.uploadSessionsNote)
    }

    /// Removes what the plan lists, re-checking each set for a manifest first (a run could have
    /// committed it since the plan was made).
    public func apply(_ plan: CleanupPlan) throws {
        for upload in plan.staleUploads { try (store as? any MultipartUploadCleaning)?.abort(upload) }
        for orphan in plan.orphanSets {
            let now = try store.list(prefix: orphan.directory + "/")
            if now.contains(where: { SetLayout.parse(key: $0.key).map { SetLayout.isManifestName($0.name) } == true }) { continue }
            try store.delete(keys: orphan.keys)
        }
    }
}

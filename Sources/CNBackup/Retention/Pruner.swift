import Foundation
import CNBackupCore
import CNBackupStorage
import CNBackupCatalog

/// Applies retention to a node's sets in a store, deciding only from signed manifests.
public struct Pruner: Sendable {
    public let catalog: Catalog
    public let policy: RetentionPolicy

    public init(catalog: Catalog, policy: RetentionPolicy) {
        self.catalog = catalog; self.policy = policy
    }

    public func plan(node: String, now: Date = Date()) throws -> (RetentionPlan, [CatalogEntry]) {
        let entries = try catalog.entries(node: node)
        var plan = RetentionPlanner.plan(Self.candidates(entries), policy: policy, now: now)
        // A set the store did not answer for could be the one that makes others redundant, or be
        // redundant itself: nothing is decided on a partial view.
        let unreadable = entries.filter(\.isUnreadable).map(\.setId)
        if !unreadable.isEmpty {
            plan.refusedToDelete = "the store did not answer for \(unreadable.count) set(s) (\(unreadable.prefix(5).joined(separator: ", "))): prune deletes nothing until every set reads"
            plan.decisions = plan.decisions.map { RetentionDecision(setId: $0.setId, keep: true, reasons: $0.keep ? $0.reasons : ["kept: the store did not answer for every set"] + $0.reasons) }
        }
        // Before deleting anything, the newest complete set must still be whole in the store.
        if plan.refusedToDelete == nil, !plan.deletedSetIds.isEmpty,
           let newest = entries.filter(\.isCompleteBackup).max(by: { ($0.manifest?.captureStart ?? "") < ($1.manifest?.captureStart ?? "") }) {
            let report = try Verifier(catalog: catalog).verify(setId: newest.setId, node: node)
            if !report.ok {
                plan.refusedToDelete = "the newest complete set \(newest.setId) does not verify: prune deletes nothing until it does"
                plan.decisions = plan.decisions.map { RetentionDecision(setId: $0.setId, keep: true, reasons: $0.keep ? $0.reasons : ["kept: newest set does not verify"] + $0.reasons) }
            }
        }
        // Object Lock: a set whose objects are retained is not tried before its retain-until date.
        let doomed = Set(plan.deletedSetIds)
        for entry in entries where doomed.contains(entry.setId) {
            guard let until = try catalog.store.head(key: entry.manifestKey)?.retainUntil, until > now else { continue }
            plan.decisions = plan.decisions.map { decision in
                guard decision.setId == entry.setId else { return decision }
                return RetentionDecision(setId: decision.setId, keep: true,
                                         reasons: ["kept: Object Lock retains it until \(Timestamp.format(until)); prune can delete it after that"] + decision.reasons)
            }
        }
        return (plan, entries)
    }

    /// Deletes each set the plan deletes: its manifest first (so it stops counting at once),
    /// then its signature and objects.
    public func apply(_ plan: RetentionPlan, entries: [CatalogEntry]) throws -> Int {
        guard plan.refusedToDelete == nil else { return 0 }
        let doomed = Set(plan.deletedSetIds)
        var deleted = 0
        for entry in entries where doomed.contains(entry.setId) && entry.isTrusted {
            try catalog.store.delete(keys: [entry.manifestKey])
            let rest = try catalog.store.list(prefix: entry.layout.directory + "/").map(\.key)
            try catalog.store.delete(keys: rest)
            deleted += 1
        }
        return deleted
    }

    /// The planner's view of the sets: capture times from trusted manifests only.
    /// A set dated in the future never counts as the newest: it would hold every deletion back
    /// (or, were it trusted, make old sets look covered).
    static func candidates(_ entries: [CatalogEntry]) -> [RetentionCandidate] {
        entries.filter { !$0.isFutureDated }.map { entry in
            RetentionCandidate(setId: entry.setId, migrationId: entry.layout.epoch.migrationId, serial: entry.layout.epoch.serial,
                               captureTime: (entry.isTrusted ? entry.manifest?.captureStartDate : nil) ?? Self.timeFromSetId(entry.setId),
                               complete: entry.isCompleteBackup, trusted: entry.isTrusted,
                               dependsOn: entry.isTrusted ? Self.dependencies(entry.manifest) : [])
        }
    }

    /// The parent sets of a manifest's incremental components.
    static func dependencies(_ manifest: Manifest?) -> [String] {
        var result: [String] = []
        for record in manifest?.components ?? [] {
            if let parent = record.physical?.incremental?.parentSetId, !result.contains(parent) { result.append(parent) }
        }
        return result
    }

    static func timeFromSetId(_ id: String) -> Date {
        SetLayout.time(ofSetId: id) ?? .distantPast
    }
}

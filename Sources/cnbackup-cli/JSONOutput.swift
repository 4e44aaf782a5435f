import CNBackup
import CNBackupCore
import CNBackupStorage
import Foundation
import CNBackupCatalog

// The one JSON contract of every `--json` output (docs/JSON.md, docs/schemas/*.schema.json):
// one object with `schemaVersion: 1`; timestamps RFC 3339 UTC strings; a set's own id is `id`
// (`setId` stays beside it where scripts already read it: verify, prune decisions); a set id that
// names another set is `<role>SetId`; an epoch is the object {migrationId, serial[, synchronizerId]}.

let jsonSchemaVersion = 1

/// An epoch as JSON: always the object.
struct EpochJSON: Encodable {
    var migrationId: Int
    var serial: Int
    var synchronizerId: String?
    init(_ epoch: Epoch) { migrationId = epoch.migrationId; serial = epoch.serial; synchronizerId = epoch.synchronizerId }
    init(migrationId: Int, serial: Int) { self.migrationId = migrationId; self.serial = serial }
}

struct GapJSON: Encodable {
    var epoch: EpochJSON
    var fromSetId: String
    var fromTime: Date
    var toSetId: String
    var toTime: Date
    var seconds: Double
    init(_ gap: HistoryGap) {
        epoch = EpochJSON(migrationId: gap.migrationId, serial: gap.serial)
        fromSetId = gap.fromSetId; fromTime = gap.fromTime; toSetId = gap.toSetId; toTime = gap.toTime; seconds = gap.seconds
    }
}

struct ListJSON: Encodable {
    var schemaVersion = jsonSchemaVersion
    var sets: [SetSummary]
    var ignored: [IgnoredKey]
}

struct VerifySetJSON: Encodable {
    var id: String
    /// The same as `id`, kept for scripts that read it.
    var setId: String
    var node: String?
    var epoch: EpochJSON?
    var status: String?
    var signature: String
    var deep: Bool
    var components: [VerifyReport.ComponentCheck]
    var problems: [String]
    var openableBy: [KeyID]
    var ok: Bool
    /// The newest drill signed by a pinned drill key (with --drill-signer).
    var drill: DrillSummary?
    init(_ r: VerifyReport) {
        id = r.setId; setId = r.setId; node = r.node; epoch = r.epoch.flatMap { try? Epoch(parsing: $0) }.map(EpochJSON.init)
        status = r.status; signature = r.signature; deep = r.deep; components = r.components; problems = r.problems
        openableBy = r.openableBy; ok = r.ok; drill = r.drill
    }
}

struct VerifyJSON: Encodable {
    var schemaVersion = jsonSchemaVersion
    var sets: [VerifySetJSON]
    var checked: Int
    var failed: Int
    var ok: Bool
}

struct RestorePlanJSON: Encodable {
    var schemaVersion = jsonSchemaVersion
    var id: String
    var node: String
    var epoch: EpochJSON
    var steps: [String]
}

struct PruneJSON: Encodable {
    struct Decision: Encodable {
        var id: String
        /// The same as `id`, kept for scripts that read it.
        var setId: String
        var keep: Bool
        var reasons: [String]
    }
    var schemaVersion = jsonSchemaVersion
    var node: String
    var decisions: [Decision]
    var gaps: [GapJSON]
    var refusedToDelete: String?
    /// Incrementals whose parent is untrusted or gone: they cannot be restored.
    var brokenChains: [String]
    var applied: Bool
    /// Deduplicated chunks no remaining set references (absent for nodes without dedup).
    var chunks: ChunkCollector.Plan?
    init(node: String, plan: RetentionPlan, applied: Bool, chunks: ChunkCollector.Plan? = nil) {
        self.node = node
        self.chunks = chunks
        decisions = plan.decisions.map { Decision(id: $0.setId, setId: $0.setId, keep: $0.keep, reasons: $0.reasons) }
        gaps = plan.gaps.map(GapJSON.init)
        refusedToDelete = plan.refusedToDelete
        brokenChains = plan.brokenChains
        self.applied = applied
    }
}

struct FreshnessJSON: Encodable {
    /// The drill a verdict rests on.
    struct DrillRef: Encodable {
        var setId: String
        var at: String
    }
    var schemaVersion = jsonSchemaVersion
    var node: String
    var newestCompleteSetId: String?
    var newestCompleteCapture: Date?
    var ageSeconds: Double?
    var maxAgeSeconds: Double
    /// The whole verdict: the sets are fresh (and, with --max-drill-age, so are the drills); exit 0.
    var fresh: Bool
    /// The newest complete set is younger than --max-age and the history has no gap.
    var setFresh: Bool
    /// With --max-drill-age: the newest drill of a recent set passed and is recent enough.
    var drillFresh: Bool?
    /// With --max-drill-age: passed, failed, or none.
    var drillStatus: String?
    var drillAgeSeconds: Double?
    var drill: DrillRef?
    var untrustedSets: Int
    var partialSets: Int
    var components: [FreshnessReport.Component]
    var gaps: [GapJSON]?
    init(_ r: FreshnessReport, setFresh: Bool, fresh: Bool, drill verdict: DrillFreshness?) {
        node = r.node; newestCompleteSetId = r.newestCompleteSetId; newestCompleteCapture = r.newestCompleteCapture
        ageSeconds = r.ageSeconds; maxAgeSeconds = r.maxAgeSeconds; self.fresh = fresh; self.setFresh = setFresh
        untrustedSets = r.untrustedSets; partialSets = r.partialSets; components = r.components; gaps = r.gaps?.map(GapJSON.init)
        if let verdict {
            drillFresh = verdict.fresh
            drillStatus = verdict.newest.map(\.status.rawValue) ?? "none"
            drillAgeSeconds = verdict.ageSeconds
            drill = verdict.newest.map { DrillRef(setId: $0.setId, at: $0.at) }
        }
    }
}

struct CleanupJSON: Encodable {
    var schemaVersion = jsonSchemaVersion
    var orphanSets: [CleanupPlan.OrphanSet]
    var staleUploads: [StaleUpload]
    /// Set for stores whose unfinished uploads cannot be listed (GCS): what happens to them instead.
    var uploadSessions: String?
    var applied: Bool
}

struct CheckStoreJSON: Encodable {
    var schemaVersion = jsonSchemaVersion
    var store: String
    var versioning: String?
    var objectLock: String?
    var canWrite: Bool
    var overwriteRefused: Bool?
    var canDelete: Bool?
    var probeLeft: String?
    var credentials: String?
    var permissions: [String]?
    var warnings: [String]
    init(_ r: StoreCheckReport) {
        store = r.store; versioning = r.versioning; objectLock = r.objectLock; canWrite = r.canWrite
        overwriteRefused = r.overwriteRefused; canDelete = r.canDelete; probeLeft = r.probeLeft; warnings = r.warnings
        credentials = r.credentials; permissions = r.permissions
    }
}

struct CopyJSON: Encodable {
    struct Set: Encodable {
        var id: String
        var copiedObjects: Int
        var skippedObjects: Int
        var verified: Bool
        var error: String?
    }
    var schemaVersion = jsonSchemaVersion
    var sets: [Set]
    var ok: Bool
    init(_ outcomes: [Copier.Outcome], ok: Bool) {
        sets = outcomes.map { Set(id: $0.setId, copiedObjects: $0.copiedObjects, skippedObjects: $0.skippedObjects, verified: $0.verified, error: $0.error) }
        self.ok = ok
    }
}

struct RecoverJSON: Encodable {
    var schemaVersion = jsonSchemaVersion
    var id: String
    var dryRun: Bool
    /// The manifest as signed and stored (docs/FORMAT.md): its own field names.
    var manifest: Manifest
}

struct DrillJSON: Encodable {
    var schemaVersion = jsonSchemaVersion
    /// The signed receipts as stored (docs/FORMAT.md): their own field names.
    var receipts: [DrillReceipt]
}

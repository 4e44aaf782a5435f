import Foundation
import CNBackupCore
import CNBackupStorage

/// What `cnbackup check-store` finds: whether the bucket keeps history (versioning, Object Lock)
/// and what the credentials in use may do, tried with a probe object under `.cnbackup-check/`.
/// The in-cluster writer should be able to write, never to overwrite, never to delete.
public struct StoreCheckReport: Sendable, Codable {
    public var store: String
    public var versioning: String?
    public var objectLock: String?
    public var canWrite: Bool
    /// A second put of other bytes under the same key with `If-None-Match: *` was refused.
    public var overwriteRefused: Bool?
    public var canDelete: Bool?
    /// The probe stays when it cannot be deleted (tiny; a pruner's cleanup removes it).
    public var probeLeft: String?
    /// GCS: the credentials in use (never a secret) and which of the storage permissions
    /// `testIamPermissions` says they hold (nil when the server cannot say).
    public var credentials: String?
    public var permissions: [String]?
    public var warnings: [String]
}

public enum StoreCheck {
    public static let probeFolder = ".cnbackup-check"

    /// Lifecycle rules that the in-cluster writer could aim: it may tag any object and write under
    /// the prefix, so an expiring rule keyed on a tag, or on a prefix its keys can reach, lets it
    /// delete history without the delete right.
    static func lifecycleWarnings(_ rules: [S3Store.LifecycleRule]?, prefix: String) -> [String] {
        guard let rules else { return ["the bucket's lifecycle rules cannot be read with these credentials: check that none expires objects by tag or under the backups' prefix"] }
        return rules.filter { $0.enabled && $0.expires }.compactMap { rule in
            if !rule.tags.isEmpty {
                return "lifecycle rule \"\(rule.id)\" expires objects by tag (\(rule.tags.joined(separator: ", "))): the writer holds s3:PutObjectTagging and can tag any backup for deletion; key it on something the writer cannot set, or remove it"
            }
            if prefix.hasPrefix(rule.prefix) || rule.prefix.hasPrefix(prefix) {
                return "lifecycle rule \"\(rule.id)\" expires objects under \"\(rule.prefix)\", where the backups are: history goes with it whatever retention says; let `cnbackup prune` delete instead"
            }
            return nil
        }
    }

    /// The permissions whose presence or absence `check-store` reports for a GCS writer: the
    /// writer's custom role has the first three; delete (which an overwrite needs too) and update
    /// (which sets `customTime`, a lifecycle condition) are the pruner's or nobody's.
    static let gcsPermissions = ["storage.objects.create", "storage.objects.get", "storage.objects.list",
                                 "storage.objects.delete", "storage.objects.update", "storage.objects.setRetention",
                                 "storage.buckets.update"]

    static func gcsFindings(_ gcs: GCSStore, into report: inout StoreCheckReport) throws -> [String] {
        var warnings: [String] = []
        report.credentials = gcs.credentialsDescription
        let bucket = try gcs.bucketProtection()
        if bucket.readable {
            report.versioning = bucket.versioning == true ? "Enabled" : "Suspended"
            var lock: [String] = []
            if let policy = bucket.retentionPolicy { lock.append("retention policy \(policy)") }
            if bucket.objectRetention { lock.append("object retention enabled") }
            report.objectLock = lock.isEmpty ? nil : lock.joined(separator: "; ")
            if lock.isEmpty {
                warnings.append("the bucket has neither a retention policy nor object retention: whoever holds delete rights (or the bucket's owner) can erase history; lock a retention policy, or enable object retention and set store.objectLock")
            } else if bucket.retentionPolicy != nil && !bucket.retentionPolicyLocked && !bucket.objectRetention {
                warnings.append("the bucket's retention policy is not locked: anyone with storage.buckets.update can shorten or remove it")
            }
            if bucket.versioning != true {
                warnings.append("versioning (object versioning or soft delete) is off: an overwrite or delete through other tools replaces history for good")
            }
            for rule in bucket.deletingRules ?? [] {
                warnings.append("lifecycle rule deletes objects (\(rule)): history goes with it whatever retention says, and a condition on customTime can be aimed by anyone with storage.objects.update; let `cnbackup prune` delete instead")
            }
        } else {
            report.versioning = "unknown (access denied)"
            report.objectLock = "unknown (access denied)"
            warnings.append("the bucket's settings cannot be read with these credentials (storage.buckets.get): check its retention and lifecycle rules by hand")
        }
        if let granted = try gcs.grantedPermissions(gcsPermissions) {
            report.permissions = granted.sorted()
            for (permission, why) in [("storage.objects.delete", "delete (and so overwrite) backups"),
                                      ("storage.objects.update", "set customTime, which lifecycle rules can act on"),
                                      ("storage.buckets.update", "change the bucket's retention and lifecycle")] where granted.contains(permission) {
                warnings.append("the credentials hold \(permission): they can \(why); fine for the off-cluster pruner, wrong for the in-cluster writer (examples/gcp/iam-writer-role.yaml)")
            }
        }
        return warnings
    }

    public static func run(_ store: any ObjectStore) throws -> StoreCheckReport {
        var report = StoreCheckReport(store: store.displayName, canWrite: false, warnings: [])
        if let s3 = store as? S3Store {
            (report.versioning, report.objectLock) = try s3.bucketProtection()
            if report.objectLock == nil {
                report.warnings.append("Object Lock is off: whoever holds delete rights (or the bucket's owner) can erase history; turn it on for a new bucket and set store.objectLock")
            }
            if report.versioning != "Enabled" {
                report.warnings.append("versioning is not enabled: an overwrite through other tools replaces history for good")
            }
            report.warnings += lifecycleWarnings(try s3.lifecycleRules(), prefix: s3.settings.prefix)
        } else if let gcs = store as? GCSStore {
            report.warnings += try gcsFindings(gcs, into: &report)
        } else {
            report.versioning = "none (file store)"
            report.objectLock = "none (file store)"
            report.warnings.append("a file store has no versioning or Object Lock: protect it with the file system's own snapshots or immutability")
        }
        let key = "\(probeFolder)/probe-\(try randomBytes(6).hex)"
        do {
            try store.putBytes(key: key, Array("cnbackup store check probe\n".utf8), options: PutOptions(ifAbsent: true))
            report.canWrite = true
        } catch let error as CNBackupError {
            report.warnings.append("the credentials cannot write: \(error.message)")
            return report
        }
        do {
            try store.putBytes(key: key, Array("a different body\n".utf8), options: PutOptions(ifAbsent: true))
            report.overwriteRefused = false
            report.warnings.append("a put with If-None-Match replaced an existing object: this store does not honour it; history can be overwritten")
        } catch let error as CNBackupError where error.code == .alreadyExists {
            report.overwriteRefused = true
        }
        do {
            try store.delete(keys: [key])
            report.canDelete = try store.head(key: key) == nil
        } catch {
            report.canDelete = false
        }
        if report.canDelete == true {
            let writerRole = store is GCSStore ? "examples/gcp/iam-writer-role.yaml" : "examples/kubernetes/iam-writer-policy.json"
            report.warnings.append("the credentials in use may DELETE objects: fine for the off-cluster pruner, wrong for the in-cluster writer (\(writerRole))")
        } else {
            report.probeLeft = key
        }
        return report
    }
}

extension StoreCheckReport {
    /// `cnbackup_store_object_lock_enabled` and `cnbackup_store_versioning_enabled` (1 or 0) and
    /// `cnbackup_store_can_delete` (1 when these credentials deleted the probe: for the in-cluster
    /// writer, an alert), labelled with the store's display name (never credentials).
    public var prometheusText: String {
        let s = "store=\"\(PrometheusText.label(store))\""
        var lines: [String] = []
        lines += PrometheusText.gauge("cnbackup_store_object_lock_enabled", "1 when the bucket has Object Lock enabled (objects cannot be deleted before their retention).",
                                      [(s, objectLock.map { $0.hasPrefix("none") } ?? true ? "0" : "1")])
        lines += PrometheusText.gauge("cnbackup_store_versioning_enabled", "1 when the bucket keeps versions.",
                                      [(s, versioning == "Enabled" ? "1" : "0")])
        if let canDelete {
            lines += PrometheusText.gauge("cnbackup_store_can_delete", "1 when the credentials check-store ran with could delete an object.",
                                          [(s, canDelete ? "1" : "0")])
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

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
    public var warnings: [String]
}

public enum StoreCheck {
    public static let probeFolder = ".cnbackup-check"

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
        } else {
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
            report.warnings.append("the credentials in use may DELETE objects: fine for the off-cluster pruner, wrong for the in-cluster writer (examples/kubernetes/iam-writer-policy.json)")
        } else {
            report.probeLeft = key
        }
        return report
    }
}

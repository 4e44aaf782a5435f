import ArgumentParser
import CNBackup
import Foundation
import CNBackupCore
import CNBackupStorage

struct CheckStoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-store",
        abstract: "Report whether the bucket keeps history (versioning, Object Lock) and what these credentials may do.",
        discussion: "Writes a small probe under .cnbackup-check/, tries to overwrite it with If-None-Match and to delete it. Run it with the in-cluster writer's credentials (it should write, never overwrite, never delete) and with the pruner's. Exit 2 when there is a warning.")

    @OptionGroup var storeOptions: StoreOptions
    @Flag(help: "JSON output.") var json = false
    @Option(help: "Write the bucket's protection (cnbackup_store_object_lock_enabled, cnbackup_store_versioning_enabled, cnbackup_store_can_delete) to this file (Prometheus text, atomically).")
    var metricsFile: String?

    func run() throws {
        var warnings = 0
        try reporting {
            let report = try StoreCheck.run(try storeOptions.open())
            warnings = report.warnings.count
            if let metricsFile { try writeMetricsFile(report.prometheusText, to: metricsFile) }
            if json {
                try printJSON(CheckStoreJSON(report))
            } else {
                print("store \(report.store)")
                print("  versioning:  \(report.versioning ?? "off")")
                print("  object lock: \(report.objectLock ?? "off")")
                if let credentials = report.credentials { print("  credentials: \(credentials)") }
                if let permissions = report.permissions { print("  permissions: \(permissions.isEmpty ? "none of those tested" : permissions.joined(separator: ", "))") }
                print("  write: \(report.canWrite ? "yes" : "no")  overwrite refused: \(report.overwriteRefused.map { $0 ? "yes" : "NO" } ?? "-")  delete: \(report.canDelete.map { $0 ? "YES" : "no" } ?? "-")")
                if let probe = report.probeLeft { print("  the probe \(probe) stays (these credentials cannot delete it)") }
                for warning in report.warnings { print("warning: \(warning)") }
            }
        }
        if warnings > 0 { throw ExitCause.warning.exit }
    }
}

import ArgumentParser
import CNBackup
import Foundation
import CNBackupCore
import CNBackupStorage

struct CleanupCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cleanup",
        abstract: "List (and with --apply remove) objects of sets that never got a manifest, and stale multipart uploads.",
        discussion: "Dry-run by default. Only orphans older than --older-than (default 24h, longer than any run) are touched; sets with a manifest never are.")

    @OptionGroup var storeOptions: StoreOptions
    @Option(help: "Leave orphans younger than this alone (e.g. 24h, 2d).") var olderThan = "24h"
    @Flag(help: "Remove what the plan lists.") var apply = false
    @Flag(help: "JSON output.") var json = false

    func run() throws {
        try reporting {
            let cleaner = Cleaner(store: try storeOptions.openForReading(), olderThan: try DurationText.parse(olderThan))
            let plan = try cleaner.plan()
            if json {
                try printJSON(CleanupJSON(orphanSets: plan.orphanSets, staleUploads: plan.staleUploads, applied: apply))
            } else {
                for orphan in plan.orphanSets {
                    print("orphan set \(orphan.directory): \(orphan.keys.count) objects, \(orphan.bytes) bytes, newest \(orphan.newest)")
                }
                for upload in plan.staleUploads { print("stale multipart upload \(upload.key) (\(upload.uploadId))") }
                if plan.orphanSets.isEmpty && plan.staleUploads.isEmpty { print("nothing to clean up") }
            }
            if apply {
                try cleaner.apply(plan)
                printError("removed \(plan.orphanSets.count) orphan set(s), aborted \(plan.staleUploads.count) upload(s)")
            } else if !(plan.orphanSets.isEmpty && plan.staleUploads.isEmpty) {
                printError("dry run: nothing removed; pass --apply to remove")
            }
        }
    }
}

struct CheckStoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-store",
        abstract: "Report whether the bucket keeps history (versioning, Object Lock) and what these credentials may do.",
        discussion: "Writes a small probe under .cnbackup-check/, tries to overwrite it with If-None-Match and to delete it. Run it with the in-cluster writer's credentials (it should write, never overwrite, never delete) and with the pruner's. Exit 2 when there is a warning.")

    @OptionGroup var storeOptions: StoreOptions
    @Flag(help: "JSON output.") var json = false

    func run() throws {
        var warnings = 0
        try reporting {
            let report = try StoreCheck.run(try storeOptions.open())
            warnings = report.warnings.count
            if json {
                try printJSON(CheckStoreJSON(report))
            } else {
                print("store \(report.store)")
                print("  versioning:  \(report.versioning ?? "off")")
                print("  object lock: \(report.objectLock ?? "off")")
                print("  write: \(report.canWrite ? "yes" : "no")  overwrite refused: \(report.overwriteRefused.map { $0 ? "yes" : "NO" } ?? "-")  delete: \(report.canDelete.map { $0 ? "YES" : "no" } ?? "-")")
                if let probe = report.probeLeft { print("  the probe \(probe) stays (these credentials cannot delete it)") }
                for warning in report.warnings { print("warning: \(warning)") }
            }
        }
        if warnings > 0 { throw ExitCode(Exit.incomplete) }
    }
}

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
                try printJSON(CleanupJSON(orphanSets: plan.orphanSets, staleUploads: plan.staleUploads,
                                          uploadSessions: plan.uploadSessionsNote, applied: apply))
            } else {
                for orphan in plan.orphanSets {
                    print("orphan set \(orphan.directory): \(orphan.keys.count) objects, \(orphan.bytes) bytes, newest \(orphan.newest)")
                }
                for upload in plan.staleUploads { print("stale multipart upload \(upload.key) (\(upload.uploadId))") }
                if plan.orphanSets.isEmpty && plan.staleUploads.isEmpty { print("nothing to clean up") }
                if let note = plan.uploadSessionsNote { print("note: \(note)") }
            }
            if apply {
                try cleaner.apply(plan)
                printToStandardError("removed \(plan.orphanSets.count) orphan set(s), aborted \(plan.staleUploads.count) upload(s)")
            } else if !(plan.orphanSets.isEmpty && plan.staleUploads.isEmpty) {
                printToStandardError("dry run: nothing removed; pass --apply to remove")
            }
        }
    }
}

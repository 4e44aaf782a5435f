import ArgumentParser
import CNBackup
import Foundation
import CNBackupCore
import CNBackupStorage
import CNBackupCatalog

struct CopyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "copy",
        abstract: "Copy signed sets byte for byte to another store (the off-cluster disaster copy); resumable; verified at the destination.",
        discussion: "Stores are URLs; settings go in their query (s3://b/p?endpoint=...&region=...). Without SET ids, copies every trusted set the destination lacks (--missing).")

    @Option(help: "The source store URL.") var from: String
    @Option(help: "The destination store URL.") var to: String
    @OptionGroup var signerOptions: SignerOptions
    @Option(help: "Only this node's sets.") var node: String?
    @Flag(help: "Copy every trusted set the destination lacks (the default without SET ids).") var missing = false
    @Argument(help: "Set ids to copy.") var sets: [String] = []
    @Flag(help: "Copy sets that `cnbackup recover` rebuilt too.") var allowRecovered = false
    @Flag(help: "JSON output.") var json = false
    @Option(help: "Write how far the copy is behind its source, per node (cnbackup_copy_lag_seconds), to this file (Prometheus text, atomically).")
    var metricsFile: String?
    @Option(help: "Push the same to this Prometheus Pushgateway (job cnbackup_copy, a group per node).") var pushgateway: String?
    @Option(help: "A CA bundle for the Pushgateway's TLS certificate.") var pushgatewayCaFile: String?

    @OptionGroup var progress: ProgressOptions
    func run() throws {
        if !json { progress.install() }
        var ok = false
        try reporting {
            let source = try signerOptions.catalog(try StoreSettings(parsing: from).open())
            let destinationStore = try StoreSettings(parsing: to).open()
            let gateway = try pushgateway.map { try Pushgateway(url: $0, caFile: pushgatewayCaFile) }
            var copier = Copier(source: source, destination: destinationStore)
            copier.allowRecovered = allowRecovered
            let outcomes = try copier.copy(setIds: sets.isEmpty ? nil : sets, node: node)
            ok = outcomes.allSatisfy { $0.error == nil && $0.verified }
            if metricsFile != nil || gateway != nil {
                // Measured after the copy, against the same pinned signers on both sides.
                let lags = try CopyLag.measure(source: source, destination: try signerOptions.catalog(destinationStore), node: node)
                if let metricsFile { try writeMetricsFile(copyLagMetricsText(lags), to: metricsFile) }
                for lag in lags { try gateway?.push(copyLagMetricsText([lag]), job: "cnbackup_copy", node: lag.node) }
            }
            if json { try printJSON(CopyJSON(outcomes, ok: ok)) } else {
                for o in outcomes {
                    print("\(o.setId): \(o.error == nil && o.verified ? "copied and verified" : "FAILED: \(o.error ?? "not verified")") (\(o.copiedObjects) copied, \(o.skippedObjects) already there)")
                }
                if outcomes.isEmpty { print("nothing to copy") }
            }
        }
        if !ok { throw ExitCause.checkFailed.exit }
    }
}

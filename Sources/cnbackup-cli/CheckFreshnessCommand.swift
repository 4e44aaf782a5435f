import ArgumentParser
import CNBackup
import Foundation
import CNBackupCore
import CNBackupStorage
import CNBackupCatalog

struct CheckFreshnessCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-freshness",
        abstract: "Exit non-zero when the node's newest complete, signed set is older than --max-age.",
        discussion: "Exit code 0 fresh; 2 stale or no complete set. --metrics-file writes Prometheus text for node_exporter's textfile collector.")

    @OptionGroup var storeOptions: StoreOptions
    @OptionGroup var signerOptions: SignerOptions
    @Option(help: "The node.") var node: String
    @Option(help: "The most age allowed, e.g. 4h.") var maxAge: String
    @Option(help: "Write Prometheus metrics to this file (atomically).") var metricsFile: String?
    @Option(help: "Push the metrics to this Prometheus Pushgateway (job cnbackup_freshness).") var pushgateway: String?
    @Option(help: "A CA bundle for the Pushgateway's TLS certificate.") var pushgatewayCaFile: String?
    @Option(help: "The node's pruning retention period, e.g. 30d: also report gaps in the history longer than it allows (exit 2).") var retentionPeriod: String?
    @Option(help: "Safety margin below the retention period.") var margin = "1d"
    @Option(help: "Also fail (exit 2) when the node's newest restore drill (signed by a --drill-signer key, of a set captured within this plus --max-age) failed or is older than this, e.g. 7d.") var maxDrillAge: String?
    @OptionGroup var drillSignerOptions: DrillSignerOptions
    @Flag(help: "JSON output.") var json = false

    func validate() throws {
        if maxDrillAge != nil, (try? drillSignerOptions.load())?.isEmpty != false {
            throw ValidationError("--max-drill-age needs --drill-signer PUB (or CNBACKUP_DRILL_SIGNER): only receipts signed by a pinned drill key count")
        }
    }

    func run() throws {
        var fresh = false
        try reporting {
            let catalog = try signerOptions.catalog(try storeOptions.openForReading())
            let policy = try retentionPeriod.map { RetentionPolicy(retentionPeriod: try DurationText.parse($0), margin: try DurationText.parse(margin)) }
            if let problem = policy?.problem { throw CNBackupError(.invalidInput, flagNames(problem)) }
            let gateway = try pushgateway.map { try Pushgateway(url: $0, caFile: pushgatewayCaFile) }
            let report = try FreshnessCheck(catalog: catalog).check(node: node, maxAge: try DurationText.parse(maxAge), retention: policy)
            let setFresh = report.fresh && (report.gaps ?? []).isEmpty
            fresh = setFresh
            var text = report.prometheusText
            var drillLine: String?
            var drillVerdict: DrillFreshness?
            let drillSigners = try drillSignerOptions.load()
            if !drillSigners.isEmpty {
                let entries = try catalog.entries(node: node)
                let receipts = try DrillReceipts(store: catalog.store, signers: drillSigners).trusted(sets: entries.compactMap(\.trusted), prefix: node + "/").values.flatMap { $0 }
                let history = DrillHistory(receipts: receipts)
                text += drillMetricsText(node: node, newest: history.newest, newestPassing: history.newestPassing)
                if let maxDrillAge {
                    let verdict = DrillFreshness.judge(receipts: receipts, sets: entries.compactMap(\.trusted),
                                                       maxDrillAge: try DurationText.parse(maxDrillAge), maxAge: try DurationText.parse(maxAge))
                    drillVerdict = verdict
                    fresh = fresh && verdict.fresh
                    if let newest = verdict.newest, let age = verdict.ageSeconds {
                        let why = !newest.passed ? "FAILED (\(newest.failures.first ?? "see its receipt"))" : verdict.fresh ? "recent" : "TOO OLD (more than \(maxDrillAge))"
                        drillLine = "\(node): newest drill \(newest.setId) at \(newest.at), \(DurationText.format(age)) old: \(why)"
                    } else {
                        drillLine = "\(node): no restore drill of a recent set signed by a pinned drill key: TOO OLD"
                    }
                }
            }
            if let metricsFile { try writeMetricsFile(text, to: metricsFile) }
            try gateway?.push(text, job: "cnbackup_freshness", node: node)
            defer { if let drillLine, !json { print(drillLine) } }
            if json {
                try printJSON(FreshnessJSON(report, setFresh: setFresh, fresh: fresh, drill: drillVerdict))
            } else if let id = report.newestCompleteSetId, let age = report.ageSeconds {
                print("\(node): newest complete set \(id), \(Int(age / 60)) minutes old: \(setFresh ? "fresh" : report.fresh ? "fresh, but the history has gaps" : "STALE (more than \(maxAge))")")
            } else {
                print("\(node): no complete, signed set in \(storeOptions.store): STALE")
                // Sets rebuilt by `recover` count only when the operator says so.
                let recovered = try catalog.entries(node: node).filter { $0.trusted?.recovered == true && $0.manifest?.status == .complete }
                if !recovered.isEmpty, !signerOptions.countRecovered {
                    printToStandardError("note: \(recovered.count) complete set(s) of \(node) were rebuilt by `cnbackup recover` (newest \(recovered.last!.setId)): they count only with --count-recovered")
                }
            }
            if report.untrustedSets > 0 { printToStandardError("warning: \(report.untrustedSets) untrusted set(s) ignored") }
            for gap in report.gaps ?? [] {
                printToStandardError("GAP in epoch \(gap.migrationId)/\(gap.serial): \(gap.fromSetId) -> \(gap.toSetId), \(RetentionPlanner.describe(gap.seconds)): a restore from before it could not catch up")
            }
        }
        if !fresh { throw ExitCause.stale.exit }
    }
}

import ArgumentParser
import CNBackup
import Foundation
import CNBackupCore
import CNBackupStorage
import CNBackupCatalog

/// The drill keys whose receipts readers trust: `--drill-signer PUB` (repeatable) or CNBACKUP_DRILL_SIGNER (comma-separated).
struct DrillSignerOptions: ParsableArguments {
    @Option(name: .customLong("drill-signer"), help: "A pinned drill key (cnb1-ed25519-pub-...): receipts signed by it count; repeat for several. Default: $CNBACKUP_DRILL_SIGNER.")
    var drillSigners: [String] = []

    func load() throws -> [SignerKey] {
        var texts = drillSigners
        if texts.isEmpty, let fromEnvironment = ProcessInfo.processInfo.environment["CNBACKUP_DRILL_SIGNER"] {
            texts = fromEnvironment.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
        return try texts.map { try SignerKey(parsing: $0) }
    }
}

struct DrillCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drill",
        abstract: "Restore a set's databases into scratch PostgreSQL, check every restore, row count and the identities dump, and write a signed receipt.",
        discussion: """
        Without a SET, the newest complete set (of --node); --sample PERCENT drills a random share of the history, always with the newest. \
        By default the drill starts throwaway PostgreSQL instances itself (initdb of the dump's major version on a free loopback port, in a private \
        temporary folder, as the postgres or nobody user when run as root); with --pg-host it creates uniquely named databases on that server and drops \
        them afterwards (roles are not created there: it restores with --no-owner --no-privileges). The receipt drill-<time>-<hex>.json and its .sig go \
        next to the set, signed with --drill-key; nothing of the set itself is touched. Exit code 0 every drill passed; 2 a drill failed; 1 it could not run.
        """)

    @OptionGroup var storeOptions: StoreOptions
    @OptionGroup var signerOptions: SignerOptions
    @OptionGroup var drillSignerOptions: DrillSignerOptions
    @Argument(help: "The set id (default: the newest complete set).") var set: String?
    @Option(help: "The node (needed when the store holds several).") var node: String?
    @Option(help: "Drill a random PERCENT of the node's complete sets, always with the newest.") var sample: Double?
    @Option(name: .customLong("identity"), help: "Private key file that opens the set; repeat to offer several.") var identities: [String] = []
    @Option(help: "The drill's Ed25519 signing key (cnbackup keys generate --signing).") var drillKey: String
    @Option(help: "A scratch server to restore into instead of throwaway instances.") var pgHost: String?
    @Option(help: "The scratch server's port.") var pgPort = 5432
    @Option(help: "The scratch server's user (needs CREATEDB).") var pgUser = "postgres"
    @Option(help: "A file holding the scratch server user's password.") var pgPasswordFile: String?
    @Option(help: "Folder of the PostgreSQL tools (initdb, postgres, pg_restore, psql); default PATH and /usr/lib/postgresql/*/bin.") var pgBin: String?
    @Option(help: "The role a physical backup's restored server is queried as.") var physicalUser = "postgres"
    @Flag(help: "Drill a set that `cnbackup recover` rebuilt (its manifest was signed after the fact, from what the store held).")
    var allowRecovered = false
    @Flag(help: "Run a throwaway server as cnbackup's own user when it is not root (code from the backup could then read cnbackup's keys).")
    var scratchSameUser = false
    @Option(help: "Write the drill metrics (cnbackup_drill_*) to this file.") var metricsFile: String?
    @Option(help: "Push the drill metrics to this Prometheus Pushgateway (job cnbackup_drill).") var pushgateway: String?
    @Option(help: "A CA bundle for the Pushgateway's TLS certificate.") var pushgatewayCaFile: String?
    @Flag(help: "JSON output (the receipts).") var json = false

    func validate() throws {
        if identities.isEmpty { throw ValidationError("give --identity KEYFILE: the drill opens the set") }
        if set != nil && sample != nil { throw ValidationError("give a SET or --sample, not both") }
        if let sample, !(sample > 0 && sample <= 100) { throw ValidationError("--sample takes a percentage above 0 and at most 100") }
    }

    func run() throws {
        var passed = false
        var nodeName = node ?? "unknown"
        // A bad --pushgateway is an error, as for run and check-freshness: drill metrics must not vanish silently.
        let gateway: Pushgateway?
        do { gateway = try pushgateway.map { try Pushgateway(url: $0, caFile: pushgatewayCaFile) } } catch let error as CNBackupError {
            printToStandardError("cnbackup: error: \(error)")
            throw ExitCause.error.exit
        }
        func publish(_ text: String) {
            if let metricsFile { try? writeMetricsFile(text, to: metricsFile) }
            if let gateway { do { try gateway.push(text, job: "cnbackup_drill", node: nodeName) } catch { printToStandardError("cnbackup: warning: cannot push the drill metrics: \(error)") } }
        }
        do {
            try reporting {
                let catalog = try signerOptions.catalog(try storeOptions.open())
                let drillKeyValue = try KeyFile.loadSigningKey(path: drillKey)
                // A receipt is a statement about a set, not the set: signed by the node's key it
                // would make the drill job able to sign sets too.
                if try signerOptions.load().contains(drillKeyValue.publicKey) {
                    throw CNBackupError(.invalidInput,
                        "--drill-key is a pinned node signer (--signer): give the drill its own key (cnbackup keys generate --signing --out drill.key) and pin it with --drill-signer")
                }
                let keys = try identities.map { try KeyFile.loadIdentity(path: $0) }
                let scratch: DrillScratch = pgHost.map { .server(host: $0, port: pgPort, user: pgUser, passwordFile: pgPasswordFile, binDirectory: pgBin) }
                    ?? .throwaway(binDirectory: pgBin)
                var options = DrillOptions(identities: keys, scratch: scratch, pgBinDirectory: pgBin, drillKey: drillKeyValue,
                                           drillSigners: try drillSignerOptions.load(), sampled: sample != nil, physicalUser: physicalUser)
                options.scratchSameUser = scratchSameUser
                let entries: [CatalogEntry]
                if let set {
                    entries = [try catalog.entry(setId: set, node: node)]
                } else {
                    let complete = try catalog.entries(node: node).filter(\.isCompleteBackup)
                    guard !complete.isEmpty else { throw CNBackupError(.notFound, "no complete, trusted set in \(storeOptions.store)\(node.map { " for node \($0)" } ?? "")") }
                    if node == nil, Set(complete.map(\.layout.node)).count > 1 {
                        throw CNBackupError(.invalidInput, "the store holds several nodes (\(Set(complete.map(\.layout.node)).sorted().joined(separator: ", "))): name one with --node")
                    }
                    entries = sample.map { Verifier.sample(complete, percent: $0) } ?? [complete.last!]
                }
                nodeName = entries.last?.layout.node ?? nodeName
                var receipts: [DrillReceipt] = []
                for entry in entries {
                    let trusted = try entry.requireTrusted()
                    if trusted.recovered, !allowRecovered {
                        throw CNBackupError(.authentication,
                            "set \(trusted.setId) was rebuilt by `cnbackup recover`, from what the store held: pass --allow-recovered to drill it anyway")
                    }
                    let outcome = try Driller(catalog: catalog).drill(trusted, options: options) { line in
                        if !json { printToStandardError("drill \(entry.setId): \(line)") }
                    }
                    receipts.append(outcome.receipt)
                    if !json { printText(outcome) }
                }
                passed = receipts.allSatisfy(\.passed)
                if json {
                    try printJSON(DrillJSON(receipts: receipts))
                }
                let history = DrillHistory(receipts: receipts)
                publish(drillMetricsText(node: nodeName, newest: history.newest, newestPassing: history.newestPassing))
            }
        } catch {
            // A drill that cannot run is a failed drill for the metrics, never a silent pass.
            publish(drillMetricsText(node: nodeName, newest: nil, newestPassing: nil, failedToRun: true))
            throw error
        }
        if !passed { throw ExitCause.drillFailed.exit }
    }

    func printText(_ outcome: Driller.Outcome) {
        let r = outcome.receipt
        print("\(r.setId) (\(r.node)): drill \(r.passed ? "PASSED" : "FAILED") in \(String(format: "%.1f", r.restoreSeconds)) s on PostgreSQL \(r.postgresVersions.joined(separator: ", ")) (\(r.scratch))")
        for c in r.components {
            print("  \(c.name) [\(c.role)]: \(c.status) in \(String(format: "%.1f", c.seconds)) s, \(c.rowCounts?.count ?? 0) tables, \(c.rowCounts?.values.reduce(0, +) ?? 0) rows, compared with \(c.comparedWith)\(c.reason.map { ": " + $0 } ?? "")")
            for note in c.checked where ["no capture counts", "restored and counted as", "configuration replaced"].contains(where: note.hasPrefix) {
                print("    \(note)")
            }
            for m in c.mismatches.prefix(20) { print("    mismatch: \(m)") }
        }
        for f in r.failures { print("  failure: \(f)") }
        print("  receipt: \(outcome.receiptKey)")
    }
}

import ArgumentParser
import CNBackup
import Foundation
import CNBackupCore
import CNBackupStorage
import CNBackupCatalog

struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify", abstract: "Check sets against their signed manifests; --deep opens every object with a private key.",
        discussion: """
        Give set ids, or --all (every set of the store or --node), or --sample PERCENT (a random share, always with the newest). \
        --deep also runs pg_restore --list on every dump and checks the identities dump's shape. --held-key names the keys \
        you still hold: a set none of them can open fails. Exit code 0 only when every check holds and every set is complete.
        """)

    @OptionGroup var storeOptions: StoreOptions
    @OptionGroup var signerOptions: SignerOptions
    @Argument(help: "Set ids.") var sets: [String] = []
    @Option(help: "The node, when set ids could clash across nodes, or to choose the sets for --all/--sample.") var node: String?
    @Flag(help: "Check every set (of --node, if given).") var all = false
    @Option(help: "Check a random PERCENT of the sets (of --node, if given), always with the newest.") var sample: Double?
    @Flag(help: "Decrypt and decompress every object and check its plaintext.") var deep = false
    @Option(name: .customLong("identity"), help: "Private key file for --deep; repeat to offer several.") var identities: [String] = []
    @Option(name: .customLong("held-key"), help: "A key id or recipient public key you still hold the private key of; repeat.") var heldKeys: [String] = []
    @Option(help: "Folder of pg_restore for --deep (default: PATH).") var pgBin: String?
    @OptionGroup var drillSignerOptions: DrillSignerOptions
    @Flag(help: "JSON output.") var json = false

    @OptionGroup var progress: ProgressOptions
    func validate() throws {
        if deep && identities.isEmpty { throw ValidationError("--deep needs --identity KEYFILE") }
        if !sets.isEmpty && (all || sample != nil) { throw ValidationError("give set ids, or --all, or --sample; not several") }
        if sets.isEmpty && !all && sample == nil { throw ValidationError("give a set id (see `cnbackup list`), --all or --sample PERCENT") }
        if let sample, !(sample > 0 && sample <= 100) { throw ValidationError("--sample takes a percentage above 0 and at most 100") }
    }

    func run() throws {
        if deep && !json { progress.install() }
        var ok = false
        try reporting {
            let catalog = try signerOptions.catalog(try storeOptions.openForReading())
            let options = VerifyOptions(identities: deep ? try identities.map { try KeyFile.loadIdentity(path: $0) } : nil,
                                        heldKeys: heldKeys.isEmpty ? nil : try heldKeys.map { try KeyID(parsing: $0) },
                                        pgBinDirectory: pgBin)
            let entries: [CatalogEntry]
            if sets.isEmpty {
                let every = try catalog.entries(node: node)
                guard !every.isEmpty else { throw CNBackupError(.notFound, "no sets in \(storeOptions.store)\(node.map { " for node \($0)" } ?? "")") }
                entries = all ? every : Verifier.sample(every, percent: sample ?? 100)
            } else {
                entries = try sets.map { try catalog.entry(setId: $0, node: node) }
            }
            let verifier = Verifier(catalog: catalog)
            let drillSigners = try drillSignerOptions.load()
            var reports: [VerifyReport] = []
            for entry in entries {
                var report = try verifier.verify(entry: entry, options: options)
                if !drillSigners.isEmpty, let trusted = entry.trusted {
                    report.drill = try DrillReceipts(store: catalog.store, signers: drillSigners).trusted(set: trusted).last.map(DrillSummary.init)
                }
                reports.append(report)
                if !json { printText(report) }
            }
            ok = reports.allSatisfy(\.ok)
            if json {
                try printJSON(VerifyJSON(sets: reports.map(VerifySetJSON.init), checked: reports.count,
                                         failed: reports.filter { !$0.ok }.count, ok: ok))
            } else if reports.count > 1 {
                print("\(reports.count) set(s) checked, \(reports.filter { !$0.ok }.count) failed")
            }
        }
        if !ok { throw ExitCause.checkFailed.exit }
    }

    private func printText(_ report: VerifyReport) {
        print("set \(report.setId): signature \(report.signature)")
        if let status = report.status { print("status: \(terminalSafe(status))") }
        for problem in report.problems { print("problem: \(terminalSafe(problem))") }
        for c in report.components {
            print(terminalSafe("  \(c.ok ? "ok  " : "FAIL") \(c.component) [\(c.checked.joined(separator: ", "))] keys \(c.keyIds.map(\.description).joined(separator: ","))\(c.error.map { ": " + $0 } ?? "")"))
        }
        if let drill = report.drill {
            print("newest drill: \(drill.status) at \(drill.at), whole node restored in \(String(format: "%.1f", drill.restoreSeconds)) s\((drill.failures ?? []).isEmpty ? "" : ": " + drill.failures!.joined(separator: "; "))")
        }
        print("can be opened by: \(report.openableBy.isEmpty ? "no single key" : report.openableBy.map(\.description).joined(separator: ", "))")
        print(report.ok ? "verified\(report.deep ? " (deep)" : "")" : "NOT verified")
    }
}

import ArgumentParser
import CNBackup
import Foundation
import CNBackupCore
import CNBackupStorage
import CNBackupCatalog

struct SetSummary: Encodable {
    var id: String
    var node: String
    var kind: String?
    var epoch: Epoch
    var captureStart: String?
    var status: String?
    var complete: Bool
    /// Rebuilt by `cnbackup recover` from object headers.
    var recovered: Bool
    var signature: String
    /// Signed by a pinned signer and without problems: the one decision readers act on.
    var trusted: Bool
    var problems: [String]
    var components: [String]
    var keyIds: [String]
    /// Bytes the set takes in the store: the sum of its components' stored (sealed) sizes.
    var storedBytes: Int64
    /// Seconds since the capture started, when the manifest says when.
    var ageSeconds: Int?
    /// The newest drill signed by a pinned drill key (with --drill-signer).
    var drill: DrillSummary?

    init(_ entry: CatalogEntry, drill: DrillReceipt? = nil) {
        self.drill = drill.map(DrillSummary.init)
        id = entry.setId
        node = entry.layout.node
        kind = entry.manifest?.node.kind.rawValue
        epoch = entry.layout.epoch
        captureStart = entry.manifest?.captureStart
        status = entry.manifest?.status.rawValue
        complete = entry.isCompleteBackup
        recovered = entry.manifest?.recovered == true
        signature = entry.signature.shortName
        trusted = entry.isTrusted
        problems = entry.problems
        components = entry.manifest?.components.map(\.name) ?? []
        keyIds = Array(Set(entry.manifest?.components.flatMap { $0.keyIds.map(\.description) } ?? [])).sorted()
        storedBytes = entry.manifest?.components.reduce(Int64(0)) { $0 + $1.storedSize } ?? 0
        ageSeconds = captureStart.flatMap(parseInstant).map { max(0, Int(Date().timeIntervalSince($0))) }
    }
}

struct ListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "List the sets in a store, oldest first, trusting only manifests signed by a pinned signer.",
        discussion: "Exit code 2 when a manifest's signature is missing, invalid or by an unpinned signer.")

    @OptionGroup var storeOptions: StoreOptions
    @OptionGroup var signerOptions: SignerOptions
    @Option(help: "Only this node's sets.") var node: String?
    @Option(help: "Only sets of this epoch (MIGRATION/SERIAL).") var epoch: String?
    @OptionGroup var drillSignerOptions: DrillSignerOptions
    @Flag(help: "JSON output.") var json = false

    func validate() throws { try checkEpochText(epoch) }

    func run() throws {
        var untrusted = 0
        try reporting {
            let catalog = try signerOptions.catalog(try storeOptions.openForReading())
            var (entries, ignored) = try catalog.scan(node: node)
            if let epoch {
                let wanted = try Epoch(parsing: epoch)
                entries = entries.filter { $0.layout.epoch.migrationId == wanted.migrationId && $0.layout.epoch.serial == wanted.serial }
            }
            untrusted = entries.filter { !$0.isTrusted }.count
            let drills = try DrillReceipts(store: catalog.store, signers: try drillSignerOptions.load())
                .trusted(entries: entries, prefix: node.map { $0 + "/" } ?? "")
            let summaries = entries.map { SetSummary($0, drill: drills[$0.layout.directory]?.last) }
            if json {
                try printJSON(ListJSON(sets: summaries, ignored: ignored))
            } else {
                if summaries.isEmpty { print("no sets in \(storeOptions.store)") }
                if !ignored.isEmpty {
                    printError("note: \(ignored.count) key(s) under the prefix are not part of any set (first: \(ignored[0].key): \(ignored[0].reason)); --json lists them")
                }
                for s in summaries {
                    let state = !s.trusted ? "UNTRUSTED (signature \(s.signature))"
                        : (s.complete ? "complete" : (s.status ?? "unreadable")) + (s.recovered ? " (recovered)" : "")
                    let age = s.ageSeconds.map { DurationText.format(TimeInterval($0)) + " ago" } ?? "-"
                    let drill = s.drill.map { "  drill \($0.status) \($0.at) (\(String(format: "%.1f", $0.restoreSeconds)) s)" } ?? ""
                    print("\(s.id)  \(s.node)  epoch \(s.epoch)  \(s.captureStart ?? "-")  \(age)  \(byteText(s.storedBytes))  \(state)  [\(s.components.joined(separator: ", "))]  keys \(s.keyIds.joined(separator: ","))\(drill)")
                    for problem in s.problems { print("    problem: \(problem)") }
                }
            }
        }
        if untrusted > 0 {
            printError("cnbackup: \(untrusted) set(s) cannot be trusted: their manifests are unsigned, altered or signed by an unpinned key")
            throw ExitCode(Exit.incomplete)
        }
    }
}

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
                if !drillSigners.isEmpty, entry.isTrusted {
                    report.drill = try DrillReceipts(store: catalog.store, signers: drillSigners).trusted(entry: entry).last.map(DrillSummary.init)
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
        if !ok { throw ExitCode(Exit.incomplete) }
    }

    private func printText(_ report: VerifyReport) {
        print("set \(report.setId): signature \(report.signature)")
        if let status = report.status { print("status: \(status)") }
        for problem in report.problems { print("problem: \(problem)") }
        for c in report.components {
            print("  \(c.ok ? "ok  " : "FAIL") \(c.component) [\(c.checked.joined(separator: ", "))] keys \(c.keyIds.map(\.description).joined(separator: ","))\(c.error.map { ": " + $0 } ?? "")")
        }
        if let drill = report.drill {
            print("newest drill: \(drill.status) at \(drill.at), whole node restored in \(String(format: "%.1f", drill.restoreSeconds)) s\((drill.failures ?? []).isEmpty ? "" : ": " + drill.failures!.joined(separator: "; "))")
        }
        print("can be opened by: \(report.openableBy.isEmpty ? "no single key" : report.openableBy.map(\.description).joined(separator: ", "))")
        print(report.ok ? "verified\(report.deep ? " (deep)" : "")" : "NOT verified")
    }
}

struct RestoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore", abstract: "Restore one component of a set to a file (or - for standard output).",
        discussion: "A file appears only once every byte authenticated and matched the manifest. With --to -, bytes stream as they authenticate: only exit code 0 means the output is whole.")

    @OptionGroup var storeOptions: StoreOptions
    @OptionGroup var signerOptions: SignerOptions
    @Argument(help: "The set id.") var set: String
    @Option(help: "The component name (as in the manifest); with --to-database, a parallel dump's name (<capture>-<db>) or any of its parts restores the whole dump.") var component: String?
    @Option(help: "Where to write: a path, or - for standard output.") var to: String?
    @Option(help: "Restore a pg_dump component into this NEW database (created; dropped again on failure).") var toDatabase: String?
    @Option(help: "Restore a physical component (pg_basebackup) as a data directory into this new or empty folder, checked by pg_verifybackup.")
    var toDirectory: String?
    @Option(help: "Postgres host for --to-database.") var pgHost = "127.0.0.1"
    @Option(help: "Postgres port for --to-database.") var pgPort = 5432
    @Option(help: "Postgres user for --to-database.") var pgUser = "postgres"
    @Option(help: "A file holding that user's password.") var pgPasswordFile: String?
    @Option(help: "Parallel pg_restore jobs (a parallel dump: its data parts this many at once, then post-data with pg_restore -j).") var jobs = 1
    @Flag(help: "pg_restore --no-owner: objects belong to --pg-user (when the dump's roles are not there).") var noOwner = false
    @Flag(help: "pg_restore --no-privileges: no GRANTs (with --no-owner, as Splice's Postgres migration guide restores).") var noPrivileges = false
    @Option(help: "Write the identities dump as the Kubernetes Secret NAME (key content) that participantIdentitiesDumpImport reads, to --to.")
    var asKubernetesSecret: String?
    @Option(help: "The namespace to put in that Secret.") var secretNamespace: String?
    @Flag(help: "With --as-kubernetes-secret and an SV dump: the participant's identities alone (jq '.identities.participant').")
    var participantOnly = false
    @Option(help: "The sequencers' pruning retention (default 30d): restore refuses an older set, which could not catch up.")
    var retentionPeriod: String = "30d"
    @Flag(help: "Restore a set older than --retention-period anyway (it cannot catch up with the synchronizer).")
    var allowOldSet = false
    @Option(help: "Restore this globals component (roles) first, e.g. apps-globals.") var globals: String?
    @Option(help: "Folder of the PostgreSQL tools (default: PATH).") var pgBin: String?
    @Option(help: "The node, when set ids could clash across nodes.") var node: String?
    @Option(name: .customLong("identity"), help: "Private key file; repeat to offer several.") var identities: [String] = []
    @Flag(help: "Replace an existing file at --to.") var force = false
    @Flag(help: "Print the whole node's restore from this set, in runbook order, and stop.") var plan = false
    @Flag(help: "JSON output (with --plan).") var json = false

    @OptionGroup var progress: ProgressOptions
    func validate() throws {
        guard jobs >= 1 else { throw ValidationError("--jobs must be 1 or more") }
        guard (1...65535).contains(pgPort) else { throw ValidationError("--pg-port must be 1 to 65535") }
        if plan { return }
        if component == nil { throw ValidationError("give --component NAME (see `cnbackup list`), or --plan") }
        if identities.isEmpty { throw ValidationError("give the private key file with --identity") }
        let destinations = [to, toDatabase, toDirectory].compactMap { $0 }.count
        if destinations == 0 {
            throw ValidationError("give --to PATH (or - for standard output), --to-database NAME or --to-directory DIR")
        }
        if destinations > 1 { throw ValidationError("give one of --to, --to-database and --to-directory, not several") }
        if participantOnly && asKubernetesSecret == nil { throw ValidationError("--participant-only goes with --as-kubernetes-secret NAME") }
        if asKubernetesSecret != nil && to == "-" { throw ValidationError("--as-kubernetes-secret writes a file: give --to PATH") }
    }

    func run() throws {
        progress.install()
        try reporting {
            let catalog = try signerOptions.catalog(try storeOptions.openForReading())
            if plan {
                let entry = try catalog.entry(setId: set, node: node)
                guard entry.isTrusted, let manifest = entry.manifest else {
                    throw CNBackupError(.authentication, "set \(set) cannot be trusted: signature \(entry.signature)")
                }
                var chains: [String: [Int64]] = [:]
                for record in manifest.components where record.physical?.incremental != nil {
                    chains[record.name] = (try? PhysicalRestorer(catalog: catalog).chainSizes(setId: set, component: record.name, node: node)) ?? []
                }
                let steps = RestorePlan.steps(for: manifest, store: storeOptions.store, retention: try DurationText.parse(retentionPeriod),
                                              chains: chains)
                if json {
                    try printJSON(RestorePlanJSON(id: manifest.setId, node: manifest.node.name, epoch: EpochJSON(manifest.epoch), steps: steps))
                } else {
                    for (index, step) in steps.enumerated() { print("\(index + 1). \(step)") }
                }
                return
            }
            guard let component else { throw CNBackupError(.invalidInput, "give --component NAME (or --plan)") }
            guard !identities.isEmpty else { throw CNBackupError(.invalidInput, "give the private key file with --identity") }
            if !allowOldSet {
                let entry = try catalog.entry(setId: set, node: node)
                if let manifest = entry.manifest, entry.isTrusted,
                   let problem = RestorePlan.ageProblem(of: manifest, retention: try DurationText.parse(retentionPeriod)) {
                    throw CNBackupError(.invalidInput, "\(problem); pick a newer set, or pass --allow-old-set (for data recovery only)")
                }
            }
            if participantOnly && asKubernetesSecret == nil { throw CNBackupError(.invalidInput, "--participant-only goes with --as-kubernetes-secret NAME") }
            let keys = try identities.map { try KeyFile.loadIdentity(path: $0) }
            if let toDirectory {
                let outcome = try PhysicalRestorer(catalog: catalog).restore(setId: set, component: component, node: node, identities: keys,
                                                                             directory: toDirectory, binDirectory: pgBin)
                printError("restored \(component) of \(set) to the data directory \(toDirectory): \(outcome.plaintextBytes) bytes, \(outcome.members) tar members; verified by \(outcome.verification)")
                printError("start it with a PostgreSQL \(outcome.serverVersion) server as the owner of the folder (chown -R postgres \(toDirectory); pg_ctl -D \(toDirectory) start): it replays the backup's WAL, then opens")
                return
            }
            if let toDatabase {
                var target = DatabaseRestorer.Target(host: pgHost, port: pgPort, user: pgUser, passwordFile: pgPasswordFile,
                                                     database: toDatabase, jobs: jobs, noOwner: noOwner, globalsComponent: globals,
                                                     binDirectory: pgBin)
                target.noPrivileges = noPrivileges
                try DatabaseRestorer(restorer: Restorer(catalog: catalog)).restore(setId: set, component: component, node: node,
                                                                                   identities: keys, into: target)
                printError("restored \(component) of \(set) into database \(toDatabase) on \(pgHost):\(pgPort)")
                return
            }
            guard let to else { throw CNBackupError(.invalidInput, "give --to PATH (or - for standard output), --to-database NAME or --to-directory DIR") }
            let destination: Restorer.Destination
            if let name = asKubernetesSecret {
                guard to != "-" else { throw CNBackupError(.invalidInput, "--as-kubernetes-secret writes a file: give --to PATH") }
                destination = .kubernetesSecret(path: to, overwrite: force,
                                                secret: IdentitiesSecret(name: name, namespace: secretNamespace, participantOnly: participantOnly))
            } else {
                destination = to == "-" ? .standardOutput : .file(path: to, overwrite: force)
            }
            let bytes = try Restorer(catalog: catalog).restore(setId: set, component: component, node: node,
                                                               identities: keys, to: destination)
            printError("restored \(component) of \(set): \(bytes) bytes\(to == "-" ? " to standard output" : " to \(to)")")
        }
    }
}

/// Sizes for people: 1.5 GiB, 120 KiB, 42 B.
func byteText(_ bytes: Int64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var value = Double(bytes), unit = 0
    while value >= 1024 && unit < units.count - 1 { value /= 1024; unit += 1 }
    return unit == 0 ? "\(bytes) B" : String(format: "%.1f", value) + " " + units[unit]
}

/// An RFC 3339 instant, with or without fractional seconds.
func parseInstant(_ text: String) -> Date? {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    if let date = formatter.date(from: text) { return date }
    formatter.formatOptions = [.withInternetDateTime]
    return formatter.date(from: text)
}

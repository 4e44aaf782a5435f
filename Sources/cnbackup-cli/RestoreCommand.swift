import ArgumentParser
import CNBackup
import Foundation
import CNBackupCore
import CNBackupStorage
import CNBackupCatalog
import CNBackupPostgres

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
    @Option(help: "Restore as this existing role (LOGIN, no superuser, CREATEDB or CREATEROLE): it owns the new database, --pg-user only creates it; code in the dump then runs with no more rights than that role. Implies --no-owner --no-privileges.")
    var restoreRole: String?
    @Option(help: "A file holding the --restore-role's password.") var restoreRolePasswordFile: String?
    @Flag(help: "Restore a component of a set that `cnbackup recover` rebuilt (its manifest was signed after the fact, from what the store held).")
    var allowRecovered = false
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
        if let toDatabase, toDatabase.range(of: #"\A[A-Za-z_][A-Za-z0-9_-]{0,62}\z"#, options: .regularExpression) == nil {
            throw ValidationError("--to-database takes a database name (letters, digits, _ and -, at most 63), not a connection string or an option")
        }
        if restoreRole != nil && toDatabase == nil { throw ValidationError("--restore-role goes with --to-database") }
        if restoreRolePasswordFile != nil && restoreRole == nil { throw ValidationError("--restore-role-password-file goes with --restore-role") }
        if asKubernetesSecret != nil && to == "-" { throw ValidationError("--as-kubernetes-secret writes a file: give --to PATH") }
    }

    func run() throws {
        progress.install()
        try reporting {
            let catalog = try signerOptions.catalog(try storeOptions.openForReading())
            // One listing and one manifest read: every step below acts on this trusted set.
            let trusted = try catalog.trustedSet(setId: set, node: node)
            let manifest = trusted.manifest
            if plan {
                var chains: [String: [Int64]] = [:]
                for record in manifest.components where record.physical?.incremental != nil {
                    chains[record.name] = (try? PhysicalRestorer(catalog: catalog).chainSizes(trusted, component: record.name)) ?? []
                }
                let signer = try signerOptions.pins().all.first { $0.keyID == trusted.signer }?.description ?? "PUB"
                let steps = RestorePlan.steps(for: manifest, store: storeOptions.store, signer: signer,
                                              retention: try DurationText.parse(retentionPeriod), chains: chains)
                if json {
                    try printJSON(RestorePlanJSON(id: manifest.setId, node: manifest.node.name, epoch: EpochJSON(manifest.epoch), steps: steps))
                } else {
                    for (index, step) in steps.enumerated() { print("\(index + 1). \(step)") }
                }
                return
            }
            guard let component else { throw CNBackupError(.invalidInput, "give --component NAME (or --plan)") }
            guard !identities.isEmpty else { throw CNBackupError(.invalidInput, "give the private key file with --identity") }
            if trusted.recovered, !allowRecovered {
                throw CNBackupError(.authentication,
                    "set \(trusted.setId) was rebuilt by `cnbackup recover`: its manifest was signed after the fact from what the store held, which the bucket's writer could have planted; check it (verify --deep) and pass --allow-recovered to restore it anyway")
            }
            if !allowOldSet, let problem = RestorePlan.ageProblem(of: manifest, retention: try DurationText.parse(retentionPeriod)) {
                throw CNBackupError(.invalidInput, "\(problem); pick a newer set, or pass --allow-old-set (for data recovery only)")
            }
            if participantOnly && asKubernetesSecret == nil { throw CNBackupError(.invalidInput, "--participant-only goes with --as-kubernetes-secret NAME") }
            let keys = try identities.map { try KeyFile.loadIdentity(path: $0) }
            if let toDirectory {
                let outcome = try PhysicalRestorer(catalog: catalog).restore(trusted, component: component, identities: keys,
                                                                             directory: toDirectory, binDirectory: pgBin)
                printToStandardError("restored \(component) of \(set) to the data directory \(toDirectory): \(outcome.plaintextBytes) bytes, \(outcome.members) tar members; verified by \(outcome.verification)")
                printToStandardError("start it with a PostgreSQL \(outcome.serverVersion) server as the owner of the folder (chown -R postgres \(toDirectory); pg_ctl -D \(toDirectory) start): it replays the backup's WAL, then opens")
                return
            }
            if toDatabase != nil, let record = try? trusted.component(component), record.role == .identities || record.physical != nil {
                throw CNBackupError(.invalidInput,
                    "\(component) is \(record.physical != nil ? "a physical base backup: restore it with --to-directory DIR" : "not a database dump: restore it with --to PATH"); --to-database takes a pg_dump component")
            }
            if let toDatabase {
                var target = DatabaseRestorer.Target(host: pgHost, port: pgPort, user: pgUser, passwordFile: pgPasswordFile,
                                                     database: toDatabase, jobs: jobs, noOwner: noOwner, globalsComponent: globals,
                                                     binDirectory: pgBin)
                target.noPrivileges = noPrivileges
                target.restoreRole = try restoreRole.map { try RestoreRole(name: $0, passwordFile: restoreRolePasswordFile) }
                try DatabaseRestorer(restorer: Restorer(catalog: catalog)).restore(trusted, component: component,
                                                                                   identities: keys, into: target)
                printToStandardError("restored \(component) of \(set) into database \(toDatabase) on \(pgHost):\(pgPort)")
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
            let bytes = try Restorer(catalog: catalog).restore(trusted, component: component,
                                                               identities: keys, to: destination)
            printToStandardError("restored \(component) of \(set): \(bytes) bytes\(to == "-" ? " to standard output" : " to \(to)")")
        }
    }
}

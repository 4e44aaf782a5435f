import ArgumentParser
import CNBackup
import Foundation

struct SetSummary: Encodable {
    var id: String
    var node: String
    var kind: String?
    var epoch: Epoch
    var captureStart: String?
    var status: String?
    var complete: Bool
    var signature: String
    var problems: [String]
    var components: [String]
    var keyIds: [String]

    init(_ entry: CatalogEntry) {
        id = entry.setId
        node = entry.layout.node
        kind = entry.manifest?.node.kind.rawValue
        epoch = entry.layout.epoch
        captureStart = entry.manifest?.captureStart
        status = entry.manifest?.status.rawValue
        complete = entry.isCompleteBackup
        signature = entry.signature.shortName
        problems = entry.problems
        components = entry.manifest?.components.map(\.name) ?? []
        keyIds = Array(Set(entry.manifest?.components.flatMap { $0.keyIds.map(\.description) } ?? [])).sorted()
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
    @Flag(help: "JSON output.") var json = false

    func run() throws {
        var untrusted = 0
        try reporting {
            let catalog = Catalog(store: try storeOptions.open(), signers: try signerOptions.load())
            var entries = try catalog.entries(node: node)
            if let epoch {
                let wanted = try Epoch(parsing: epoch)
                entries = entries.filter { $0.layout.epoch.migrationId == wanted.migrationId && $0.layout.epoch.serial == wanted.serial }
            }
            untrusted = entries.filter { !$0.isTrusted }.count
            let summaries = entries.map(SetSummary.init)
            if json {
                struct Listing: Encodable { var sets: [SetSummary] }
                try printJSON(Listing(sets: summaries))
            } else {
                if summaries.isEmpty { print("no sets in \(storeOptions.store)") }
                for s in summaries {
                    let state = s.signature != "valid" ? "UNTRUSTED (signature \(s.signature))"
                        : (s.complete ? "complete" : (s.status ?? "unreadable"))
                    print("\(s.id)  \(s.node)  epoch \(s.epoch)  \(s.captureStart ?? "-")  \(state)  [\(s.components.joined(separator: ", "))]  keys \(s.keyIds.joined(separator: ","))")
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
        commandName: "verify", abstract: "Check a set against its signed manifest; --deep opens every object with a private key.",
        discussion: "Exit code 0 only when every check holds and the set is complete.")

    @OptionGroup var storeOptions: StoreOptions
    @OptionGroup var signerOptions: SignerOptions
    @Argument(help: "The set id.") var set: String
    @Option(help: "The node, when set ids could clash across nodes.") var node: String?
    @Flag(help: "Decrypt and decompress every object and check its plaintext.") var deep = false
    @Option(name: .customLong("identity"), help: "Private key file for --deep; repeat to offer several.") var identities: [String] = []
    @Flag(help: "JSON output.") var json = false

    func validate() throws {
        if deep && identities.isEmpty { throw ValidationError("--deep needs --identity KEYFILE") }
    }

    func run() throws {
        var ok = false
        try reporting {
            let catalog = Catalog(store: try storeOptions.open(), signers: try signerOptions.load())
            let keys = deep ? try identities.map { try KeyFile.loadIdentity(path: $0) } : nil
            let report = try Verifier(catalog: catalog).verify(setId: set, node: node, identities: keys)
            ok = report.ok
            if json {
                try printJSON(report)
            } else {
                print("set \(report.setId): signature \(report.signature)")
                if let status = report.status { print("status: \(status)") }
                for problem in report.problems { print("problem: \(problem)") }
                for c in report.components {
                    print("  \(c.ok ? "ok  " : "FAIL") \(c.component) [\(c.checked.joined(separator: ", "))] keys \(c.keyIds.map(\.description).joined(separator: ","))\(c.error.map { ": " + $0 } ?? "")")
                }
                print(report.ok ? "verified\(report.deep ? " (deep)" : "")" : "NOT verified")
            }
        }
        if !ok { throw ExitCode(Exit.incomplete) }
    }
}

struct RestoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore", abstract: "Restore one component of a set to a file (or - for standard output).",
        discussion: "A file appears only once every byte authenticated and matched the manifest. With --to -, bytes stream as they authenticate: only exit code 0 means the output is whole.")

    @OptionGroup var storeOptions: StoreOptions
    @OptionGroup var signerOptions: SignerOptions
    @Argument(help: "The set id.") var set: String
    @Option(help: "The component name (as in the manifest).") var component: String?
    @Option(help: "Where to write: a path, or - for standard output.") var to: String?
    @Option(help: "Restore a pg_dump component into this NEW database (created; dropped again on failure).") var toDatabase: String?
    @Option(help: "Postgres host for --to-database.") var pgHost = "127.0.0.1"
    @Option(help: "Postgres port for --to-database.") var pgPort = 5432
    @Option(help: "Postgres user for --to-database.") var pgUser = "postgres"
    @Option(help: "A file holding that user's password.") var pgPasswordFile: String?
    @Option(help: "Parallel pg_restore jobs.") var jobs = 1
    @Flag(help: "Do not restore owners and privileges (when the roles are not there).") var noOwner = false
    @Option(help: "Restore this globals component (roles) first, e.g. apps-globals.") var globals: String?
    @Option(help: "Folder of the PostgreSQL tools (default: PATH).") var pgBin: String?
    @Option(help: "The node, when set ids could clash across nodes.") var node: String?
    @Option(name: .customLong("identity"), help: "Private key file; repeat to offer several.") var identities: [String] = []
    @Flag(help: "Replace an existing file at --to.") var force = false
    @Flag(help: "Print the whole node's restore from this set, in runbook order, and stop.") var plan = false

    func run() throws {
        try reporting {
            let catalog = Catalog(store: try storeOptions.open(), signers: try signerOptions.load())
            if plan {
                let entry = try catalog.entry(setId: set, node: node)
                guard entry.isTrusted, let manifest = entry.manifest else {
                    throw CNBackupError(.authentication, "set \(set) cannot be trusted: signature \(entry.signature)")
                }
                for (index, step) in RestorePlan.steps(for: manifest, store: storeOptions.store).enumerated() { print("\(index + 1). \(step)") }
                return
            }
            guard let component else { throw CNBackupError(.invalidInput, "give --component NAME (or --plan)") }
            guard !identities.isEmpty else { throw CNBackupError(.invalidInput, "give the private key file with --identity") }
            let keys = try identities.map { try KeyFile.loadIdentity(path: $0) }
            if let toDatabase {
                let target = DatabaseRestorer.Target(host: pgHost, port: pgPort, user: pgUser, passwordFile: pgPasswordFile,
                                                     database: toDatabase, jobs: jobs, noOwner: noOwner, globalsComponent: globals,
                                                     binDirectory: pgBin)
                try DatabaseRestorer(restorer: Restorer(catalog: catalog)).restore(setId: set, component: component, node: node,
                                                                                   identities: keys, into: target)
                printError("restored \(component) of \(set) into database \(toDatabase) on \(pgHost):\(pgPort)")
                return
            }
            guard let to else { throw CNBackupError(.invalidInput, "give --to PATH (or - for standard output) or --to-database NAME") }
            let destination: Restorer.Destination = to == "-" ? .standardOutput : .file(path: to, overwrite: force)
            let bytes = try Restorer(catalog: catalog).restore(setId: set, component: component, node: node,
                                                               identities: keys, to: destination)
            printError("restored \(component) of \(set): \(bytes) bytes\(to == "-" ? " to standard output" : " to \(to)")")
        }
    }
}

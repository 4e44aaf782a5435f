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
    /// complete | partial (a trusted manifest's word), untrusted, or unreadable (the store did not answer).
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
        // What the signed manifest says, only when it is trusted: an untrusted manifest's own
        // words ("complete") are whatever its writer chose.
        status = entry.isUnreadable ? "unreadable" : entry.trusted.map { $0.manifest.status.rawValue } ?? "untrusted"
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
                .trusted(sets: entries.compactMap(\.trusted), prefix: node.map { $0 + "/" } ?? "")
            let summaries = entries.map { SetSummary($0, drill: drills[$0.layout.directory]?.last) }
            if json {
                try printJSON(ListJSON(sets: summaries, ignored: ignored))
            } else {
                if summaries.isEmpty {
                    print("no sets in \(storeOptions.store)")
                    // A run that died before its manifest leaves objects and no set: say where they are.
                    let orphans = try Cleaner(store: catalog.store, olderThan: 0).plan().orphanSets.filter { node == nil || $0.directory.hasPrefix(node! + "/") }
                    if !orphans.isEmpty {
                        printToStandardError("note: \(orphans.count) folder(s) hold objects but no manifest (a run that died before its commit?), first \(terminalSafe(orphans[0].directory)): `cnbackup cleanup` lists them, `cnbackup recover SET` rebuilds a set from its journal")
                    }
                }
                if !ignored.isEmpty {
                    printToStandardError("note: \(ignored.count) key(s) under the prefix are not part of any set (first: \(terminalSafe(ignored[0].key)): \(terminalSafe(ignored[0].reason))); --json lists them")
                }
                for s in summaries {
                    let state = !s.trusted ? "UNTRUSTED (signature \(s.signature))"
                        : (s.complete ? "complete" : (s.status ?? "unreadable")) + (s.recovered ? " (recovered)" : "")
                    let age = s.ageSeconds.map { DurationText.format(TimeInterval($0)) + " ago" } ?? "-"
                    let drill = s.drill.map { "  drill \($0.status) \($0.at) (\(String(format: "%.1f", $0.restoreSeconds)) s)" } ?? ""
                    print(terminalSafe("\(s.id)  \(s.node)  epoch \(s.epoch)  \(s.captureStart ?? "-")  \(age)  \(byteText(s.storedBytes))  \(state)  [\(s.components.joined(separator: ", "))]  keys \(s.keyIds.joined(separator: ","))\(drill)"))
                    for problem in s.problems { print("    problem: \(terminalSafe(problem))") }
                }
            }
        }
        if untrusted > 0 {
            printToStandardError("cnbackup: \(untrusted) set(s) cannot be trusted: their manifests are unsigned, altered or signed by an unpinned key")
            throw ExitCause.checkFailed.exit
        }
    }
}

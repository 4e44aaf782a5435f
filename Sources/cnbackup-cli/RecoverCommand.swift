import ArgumentParser
import CNBackup
import Foundation
import CNBackupCore
import CNBackupStorage
import CNBackupCatalog

struct RecoverCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "recover",
        abstract: "Rebuild the manifest of an orphan set (objects stored, manifest never written) from its objects' headers.",
        discussion: """
        Opens every object with --identity (each segment authenticated), rebuilds its record from the header, and writes a \
        manifest flagged as recovered, signed with --signing-key. Objects that do not open are listed as failures; the set is \
        complete only when it holds every role its node kind needs. `cnbackup cleanup` lists orphan sets. \
        Exit code 2 when the recovered set is partial.
        """)

    @OptionGroup var storeOptions: StoreOptions
    @Argument(help: "The orphan set's id.") var set: String
    @Option(help: "The node, when set ids could clash across nodes.") var node: String?
    @Option(name: .customLong("identity"), help: "Private key file that opens the objects; repeat to offer several.") var identities: [String] = []
    @Option(help: "The node's Ed25519 signing key file, to sign the rebuilt manifest.") var signingKey: String
    @Option(help: "The node kind (sv, validator, generic); default: inferred from the roles found.") var kind: String?
    @Option(help: "Refuse sets written to more recently than this (their run may still be going).") var olderThan = "1h"
    @Flag(help: "Print the manifest that would be written; write nothing.") var dryRun = false
    @Flag(help: "Go on although multipart uploads are open under the set (a writer can open one to block recover).") var ignoreOpenUploads = false
    @Flag(help: "Recover objects no journal entry vouches for (sets written before journals): a writer's object then passes as the run's.")
    var withoutJournal = false
    @Flag(help: "JSON output (the manifest).") var json = false

    @OptionGroup var progress: ProgressOptions
    func validate() throws {
        if identities.isEmpty { throw ValidationError("give the private key file with --identity: recovery opens every object") }
    }

    func run() throws {
        progress.install()
        var complete = false
        try reporting {
            guard !identities.isEmpty else { throw CNBackupError(.invalidInput, "give the private key file with --identity: recovery opens every object") }
            let nodeKind = try kind.map { text -> NodeKind in
                guard let parsed = NodeKind(rawValue: text) else { throw CNBackupError(.invalidInput, "--kind \(text): use sv, validator or generic") }
                return parsed
            }
            var options = Recoverer.Options(identities: try identities.map { try KeyFile.loadIdentity(path: $0) },
                                            signingKey: try KeyFile.loadSigningKey(path: signingKey), kind: nodeKind,
                                            dryRun: dryRun, olderThan: try DurationText.parse(olderThan))
            options.ignoreOpenUploads = ignoreOpenUploads
            options.withoutJournal = withoutJournal
            let store = try storeOptions.open()
            if let unlisted = store as? any UnlistedUploadSessions {
                printToStandardError("note: \(unlisted.uploadSessionsNote); whether the set's run is still going is judged by its newest object's age alone (--older-than \(olderThan))")
            }
            let manifest = try Recoverer(store: store).recover(setId: set, node: node, options: options)
            complete = manifest.status == .complete
            if json {
                try printJSON(RecoverJSON(id: manifest.setId, dryRun: dryRun, manifest: manifest))
            } else {
                for c in manifest.components { print("recovered \(c.name) (\(c.role)): \(c.plaintextSize) bytes, keys \(c.keyIds.map(\.description).joined(separator: ","))") }
                for f in manifest.failures { print("MISSING \(f.component): \(f.reason)") }
                print("\(dryRun ? "would write" : "wrote") a \(manifest.status.rawValue) manifest for \(manifest.setId), flagged as recovered")
            }
        }
        if !complete { throw ExitCause.partialSet.exit }
    }
}

import ArgumentParser
import CNBackup
import Foundation
import CNBackupCore
import CNBackupStorage
import CNBackupCatalog

struct UploadCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "upload",
        abstract: "Make one new signed set from local artefacts (a manual re-upload).",
        discussion: "Each --component ROLE=FILE becomes a component. The set counts as complete only when it holds every role its node kind needs; otherwise it is committed as partial (exit code 2).")

    @OptionGroup var storeOptions: StoreOptions
    @Option(help: "The node's name.") var node: String
    @Option(help: "The node kind: sv, validator or generic.") var kind: String
    @Option(help: "The synchronizer epoch MIGRATION/SERIAL.") var epoch: String
    @Option(name: .customLong("component"), help: "ROLE=FILE, e.g. participant=/backups/participant_3.dump; repeat.") var components: [String] = []
    @Option(help: "When the artefacts were originally taken (ISO 8601, e.g. 2026-11-25T04:00:00Z).") var capturedAt: String?
    @Option(name: .customLong("recipient"), help: "A recipient (cnb1-x25519-pub-...); repeat.") var recipients: [String] = []
    @Option(help: "The node's signing key file.") var signingKey: String

    @OptionGroup var progress: ProgressOptions
    func validate() throws {
        if recipients.isEmpty { throw ValidationError("give at least one --recipient (cnb1-x25519-pub-...), two advised: an operational and a break-glass key") }
        if components.isEmpty { throw ValidationError("give at least one --component ROLE=FILE") }
        if NodeKind(rawValue: kind) == nil { throw ValidationError("--kind takes sv, validator or generic") }
        try checkEpochText(epoch)
    }

    func run() throws {
        progress.install()
        var complete = false
        try reporting {
            guard let nodeKind = NodeKind(rawValue: kind) else { throw CNBackupError(.invalidInput, "kind must be sv, validator or generic") }
            let files = try components.map { text -> (role: ComponentRole, path: String) in
                let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
                guard parts.count == 2, let role = ComponentRole(rawValue: parts[0]) else {
                    throw CNBackupError(.invalidInput, "--component \(text): write ROLE=FILE with ROLE one of \(ComponentRole.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                return (role, parts[1])
            }
            var captured: Date?
            if let capturedAt {
                guard let date = ISO8601DateFormatter().date(from: capturedAt) else {
                    throw CNBackupError(.invalidInput, "--captured-at \(capturedAt) is not ISO 8601 (2026-11-25T04:00:00Z)")
                }
                captured = date
            }
            let settings = try StoreSettings(parsing: storeOptions.store, endpoint: storeOptions.endpoint, region: storeOptions.region,
                                             pathStyle: storeOptions.pathStyle ? true : nil, caFile: storeOptions.caFile, provider: storeOptions.provider)
            let definition = try PipelineDefinition.forUpload(node: NodeInfo(name: node, kind: nodeKind), epoch: try Epoch(parsing: epoch),
                                                              store: settings, recipients: recipients, signingKeyFile: signingKey, files: files)
            for warning in definition.warnings { printToStandardError("warning: \(warning)") }
            let result = try BackupRunner(definition: definition, store: try settings.open(), logger: makeLogger(), capturedAt: captured).run()
            complete = result.isComplete
            print("set \(result.setId) \(result.manifest.status.rawValue): \(result.manifest.components.count) components")
            for failure in result.manifest.failures { printToStandardError("missing or failed: \(failure.component): \(failure.reason)") }
        }
        if !complete { throw ExitCause.partialSet.exit }
    }
}

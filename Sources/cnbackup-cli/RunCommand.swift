import ArgumentParser
import CNBackup
import Foundation
import CNBackupCore
import CNBackupStorage
import CNBackupCatalog

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Run a pipeline file: capture, compress, seal, store, read back, sign the manifest.",
        discussion: "Exit code 0 only when the set is complete; 2 when it was committed as partial; 1 when nothing was committed.")

    @Argument(help: "The pipeline file.") var pipeline: String
    @Flag(help: "Print the plan and stop.") var dryRun = false
    @Flag(help: "Create a file store's folder when it does not exist (as store: { create: true }); without it, a missing folder is refused.")
    var createStore = false
    @Option(help: "The synchronizer epoch MIGRATION/SERIAL; overrides $CNBACKUP_EPOCH and the file.") var epoch: String?
    @Option(help: "Log format: text or json (default: text on a terminal, json otherwise).") var logFormat: String?
    @Option(help: "Push the run's metrics to this Prometheus Pushgateway (job cnbackup_run).") var pushgateway: String?
    @Option(help: "A CA bundle for the Pushgateway's TLS certificate.") var pushgatewayCaFile: String?
    @Option(help: "Write the run's metrics to this file (Prometheus text, atomically).") var metricsFile: String?
    @Option(help: "Seconds to commit what completed after SIGTERM or SIGINT, before ending regardless (default 20; keep it below the pod's terminationGracePeriodSeconds).")
    var gracePeriod: Int = 20

    @OptionGroup var progress: ProgressOptions
    func validate() throws {
        try checkEpochText(epoch)
        guard gracePeriod >= 0 else { throw ValidationError("--grace-period must be 0 or more seconds") }
        if let logFormat, !["text", "json"].contains(logFormat) { throw ValidationError("--log-format takes text or json") }
    }

    func run() throws {
        progress.install(logFormat: logFormat)
        try reporting {
            let definition = try PipelineDefinition.load(path: pipeline, epoch: try chosenEpoch(epoch))
            for warning in definition.warnings { printToStandardError("warning: \(warning)") }
            if dryRun {
                // The plan needs no store, so no storage credentials.
                BackupRunner.plan(for: definition).lines.forEach { print($0) }
                return
            }
            if let check = definition.store.fileStoreFolderCheck(createAllowed: createStore) {
                if let problem = check.problem { throw CNBackupError(.invalidInput, problem) }
                if let warning = check.warning { printToStandardError("warning: \(warning)") }
            }
            let runner = BackupRunner(definition: definition, store: try definition.store.open(), logger: makeLogger(format: logFormat),
                                      cancellation: StopSignals.cancellation)
            let started = Date()
            let gateway = try pushgateway.map { try Pushgateway(url: $0, caFile: pushgatewayCaFile) }
            // Metrics never change the run's outcome: a failed push is reported, not fatal.
            func report(_ result: RunResult?) {
                let text = runMetricsText(node: definition.node.name, result: result, duration: Date().timeIntervalSince(started))
                do {
                    if let metricsFile { try writeMetricsFile(text, to: metricsFile) }
                    try gateway?.push(text, job: "cnbackup_run", node: definition.node.name)
                } catch {
                    printToStandardError("warning: \(error)")
                }
            }
            StopSignals.graceful(period: TimeInterval(gracePeriod))
            let result: RunResult
            do { result = try runner.run() } catch { report(nil); StopSignals.exitIfStopped(); throw error }
            report(result)
            print("set \(result.setId) \(result.manifest.status.rawValue): \(result.manifest.components.count) components stored in \(definition.store.url)")
            if !result.isComplete {
                for failure in result.manifest.failures { printToStandardError("failed: \(failure.component): \(failure.reason)") }
                StopSignals.exitIfStopped()
                throw ExitCause.partialSet.exit
            }
        }
    }
}

import ArgumentParser
import CNBackup
import Foundation
import CNBackupCore
import CNBackupStorage
import CNBackupCatalog

struct ValidateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate", abstract: "Check a pipeline file and what `run` needs of this host; writes nothing, opens no store.",
        discussion: """
        Errors with line and column, warnings for risky settings; then, as `run` would meet them: key files exist, parse and         private keys are readable by their owner only; commands of command captures are on the PATH children get; files         and folders to capture exist; credential and CA files exist. The epoch is --epoch, else $CNBACKUP_EPOCH, else the         file's, and the epoch checks apply to it. --syntax-only checks the file alone (for files meant for another host).
        """)

    @Argument(help: "The pipeline file.") var pipeline: String
    @Option(help: "The synchronizer epoch MIGRATION/SERIAL; overrides $CNBACKUP_EPOCH and the file.") var epoch: String?
    @Flag(help: "Check the file alone, not this host (key files, commands, paths).") var syntaxOnly = false

    func validate() throws { try checkEpochText(epoch) }

    func run() throws {
        try reporting {
            let definition = try PipelineDefinition.load(path: pipeline, epoch: try chosenEpoch(epoch))
            for warning in definition.warnings { printError("warning: \(warning)") }
            if !syntaxOnly {
                let problems = definition.hostProblems()
                for problem in problems { printError("error: \(pipeline): \(problem)") }
                if !problems.isEmpty {
                    throw CNBackupError(.invalidDefinition, "\(pipeline): \(problems.count) problem(s) on this host that `run` would fail on (--syntax-only checks the file alone)")
                }
            }
            print("\(pipeline): valid (\(definition.node.kind.rawValue) node \(definition.node.name), epoch \(definition.epoch), \(definition.captures.count) captures)")
        }
    }
}

/// `--epoch`, else $CNBACKUP_EPOCH, else nil (the file's).
func chosenEpoch(_ flag: String?) throws -> Epoch? {
    guard let text = flag ?? ProcessInfo.processInfo.environment["CNBACKUP_EPOCH"] else { return nil }
    do { return try Epoch(parsing: text) } catch let error as CNBackupError {
        throw CNBackupError(.invalidInput, flag != nil ? "--epoch: \(error.message)" : "CNBACKUP_EPOCH: \(error.message)")
    }
}

/// A usage error (exit 64) for an --epoch that is not MIGRATION/SERIAL with whole numbers from 0.
func checkEpochText(_ text: String?) throws {
    guard let text else { return }
    guard (try? Epoch(parsing: text)) != nil else {
        throw ValidationError("--epoch \(text) is not MIGRATION/SERIAL (whole numbers from 0), e.g. 3/0")
    }
}

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Run a pipeline file: capture, compress, seal, store, read back, sign the manifest.",
        discussion: "Exit code 0 only when the set is complete; 2 when it was committed as partial; 1 when nothing was committed.")

    @Argument(help: "The pipeline file.") var pipeline: String
    @Flag(help: "Print the plan and stop.") var dryRun = false
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
            for warning in definition.warnings { printError("warning: \(warning)") }
            if dryRun {
                // The plan needs no store, so no storage credentials.
                BackupRunner.plan(for: definition).lines.forEach { print($0) }
                return
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
                    printError("warning: \(error)")
                }
            }
            StopSignals.graceful(period: TimeInterval(gracePeriod))
            let result: RunResult
            do { result = try runner.run() } catch { report(nil); StopSignals.exitIfStopped(); throw error }
            report(result)
            print("set \(result.setId) \(result.manifest.status.rawValue): \(result.manifest.components.count) components stored in \(definition.store.url)")
            if !result.isComplete {
                for failure in result.manifest.failures { printError("failed: \(failure.component): \(failure.reason)") }
                StopSignals.exitIfStopped()
                throw ExitCode(Exit.incomplete)
            }
        }
    }
}

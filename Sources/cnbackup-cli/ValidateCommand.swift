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
            for warning in definition.warnings + definition.secretEnvironmentWarnings { printToStandardError("warning: \(warning)") }
            if !syntaxOnly {
                if let warning = definition.store.fileStoreFolderCheck(createAllowed: true)?.warning { printToStandardError("warning: \(warning)") }
                let problems = definition.hostProblems()
                for problem in problems { printToStandardError("error: \(pipeline): \(problem)") }
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

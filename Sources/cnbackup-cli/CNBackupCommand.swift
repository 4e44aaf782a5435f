import ArgumentParser
import CNBackup
import Foundation
import Logging
import CNBackupCore
import CNBackupStorage
import CNBackupCatalog

struct CNBackupCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cnbackup",
        abstract: "Off-cluster backups of Canton Network nodes: capture, zstd, seal, store, verify, restore.",
        discussion: """
        Exit codes: 0 everything asked for holds; 1 error (bad input, failed operation); \
        2 the backup set is partial or a check failed; 64 usage error.
        """,
        version: cnbackupVersion,
        subcommands: [RunCommand.self, ValidateCommand.self, UploadCommand.self, ListCommand.self, VerifyCommand.self,
                      RestoreCommand.self, DrillCommand.self, RecoverCommand.self, CopyCommand.self, PruneCommand.self, CheckFreshnessCommand.self, CleanupCommand.self, CheckStoreCommand.self, ReportCommand.self, KeysCommand.self, EncryptCommand.self, DecryptCommand.self])
}

/// Why a command ends other than with 0. Each cause maps to the numeric code README.md's "Exit
/// codes" documents; several causes share code 2 ("what was asked for does not hold"), so scripts
/// keep working while the code says which cause it is.
enum ExitCause {
    /// Bad input, an unreadable key, a store failure: the message says what to do.
    case error
    /// `run` or `upload` committed a partial set; `recover` rebuilt one.
    case partialSet
    /// A set is untrusted (`list`) or failed its checks (`verify`, `copy`'s verification).
    case checkFailed
    /// A restore drill failed.
    case drillFailed
    /// The newest set (or drill) is older than allowed, or the history has a gap.
    case stale
    /// `check-store` or `cleanup` found something to warn about.
    case warning

    var code: Int32 {
        switch self {
        case .error: return 1
        case .partialSet, .checkFailed, .drillFailed, .stale, .warning: return 2
        }
    }

    var exit: ExitCode { ExitCode(code) }
}

/// Runs a command body, printing a library error as one clear line and exiting non-zero.
func reporting(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let error as CNBackupError {
        if logsAreJSON() {
            var fields: [String: String] = ["ts": Timestamp.format(Date()), "level": "error", "logger": "cnbackup",
                                            "msg": error.message, "code": error.code.rawValue]
            if let cause = error.cause, !cause.isEmpty { fields["cause"] = cause }
            writeJSONLine(fields)
        } else {
            FileHandle.standardError.write(Data(Redaction.redact("cnbackup: error: \(error)\n").utf8))
        }
        throw ExitCause.error.exit
    }
}

/// Whether standard error carries JSON lines: `CNBACKUP_LOG_FORMAT`, else JSON unless it is a terminal.
func logsAreJSON(_ format: String? = nil) -> Bool {
    (format ?? ProcessInfo.processInfo.environment["CNBACKUP_LOG_FORMAT"] ?? (isatty(STDERR_FILENO) == 1 ? "text" : "json")) == "json"
}

func writeJSONLine(_ fields: [String: String]) {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    // Every line that leaves: a child's standard error or a server's answer may repeat a secret.
    guard let data = try? encoder.encode(fields.mapValues(Redaction.redact)) else { return }
    FileHandle.standardError.write(data + [0x0A])
}

/// A line for the operator on standard error. With JSON logs, a line starting "warning: " is a
/// JSON line of level warning; other lines stay text (progress notes, dry-run summaries).
func printToStandardError(_ text: String) {
    if text.hasPrefix("warning: "), logsAreJSON() {
        writeJSONLine(["ts": Timestamp.format(Date()), "level": "warning", "logger": "cnbackup", "msg": String(text.dropFirst("warning: ".count))])
        return
    }
    FileHandle.standardError.write(Data(Redaction.redact(text + "\n").utf8))
}

/// Logs as text on a terminal, as JSON lines otherwise (or as `CNBACKUP_LOG_FORMAT` says: text | json).
func makeLogger(_ label: String = "cnbackup", format: String? = nil) -> Logger {
    let chosen = format ?? ProcessInfo.processInfo.environment["CNBACKUP_LOG_FORMAT"] ?? (isatty(STDERR_FILENO) == 1 ? "text" : "json")
    var logger = chosen == "json"
        ? Logger(label: label) { JSONLogHandler(label: $0) }
        : Logger(label: label) { ProgressAwareLogHandler(inner: StreamLogHandler.standardError(label: $0)) }
    logger.logLevel = ProcessInfo.processInfo.environment["CNBACKUP_LOG_LEVEL"].flatMap { Logger.Level(rawValue: $0) } ?? .info
    return logger
}

/// Every `--json` output goes through here: RFC 3339 UTC timestamps (docs/JSON.md).
func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    encoder.dateEncodingStrategy = .iso8601
    FileHandle.standardOutput.write(try encoder.encode(value))
    FileHandle.standardOutput.write(Data("\n".utf8))
}

/// Where a store is, as every command that reads or writes one takes it.
struct StoreOptions: ParsableArguments {
    @Option(help: "The store: file:///PATH, s3://BUCKET/PREFIX or gs://BUCKET/PREFIX (settings may follow as ?endpoint=...&region=...).")
    var store: String
    @Option(help: "S3 endpoint URL (https://...).") var endpoint: String?
    @Option(help: "S3 region.") var region: String?
    @Flag(help: "Path-style S3 addressing (bucket in the path, not the host name).") var pathStyle = false
    @Option(help: "A CA bundle to verify the S3 endpoint's TLS certificate with.") var caFile: String?
    @Option(help: "S3 provider quirks: aws, gcs, r2, minio, seaweedfs, ceph.") var provider: String?

    func validate() throws {
        if let conflict = StoreSettings.conflict(url: store, endpoint: endpoint, region: region, pathStyle: pathStyle ? true : nil,
                                                 caFile: caFile, provider: provider) {
            throw ValidationError(conflict)
        }
    }

    var settings: StoreSettings {
        get throws {
            try StoreSettings(parsing: store, endpoint: endpoint, region: region, pathStyle: pathStyle ? true : nil,
                              caFile: caFile, provider: provider)
        }
    }

    func open() throws -> any ObjectStore { try settings.open() }

    /// For commands that only read: a store that is missing or unreadable is an error, never "no sets".
    func openForReading() throws -> any ObjectStore { try settings.openForReading() }
}

/// The signers whose manifests readers trust: `--signer PUB` for any node, `--signer NODE=PUB`
/// for one node only (that node then trusts nothing else); the same, comma-separated, in CNBACKUP_SIGNER.
struct SignerOptions: ParsableArguments {
    @Option(name: .customLong("signer"), help: "A pinned signer public key (cnb1-ed25519-pub-...), or NODE=KEY to pin it to one node; repeat for several. Default: $CNBACKUP_SIGNER.")
    var signers: [String] = []
    @Flag(help: "Count sets rebuilt by `cnbackup recover` as complete backups (for freshness and retention).")
    var countRecovered = false

    func pins() throws -> SignerPins {
        var texts = signers
        if texts.isEmpty, let fromEnvironment = ProcessInfo.processInfo.environment["CNBACKUP_SIGNER"] {
            texts = fromEnvironment.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
        guard !texts.isEmpty else {
            throw CNBackupError(.invalidInput,
                "no pinned signer: pass --signer cnb1-ed25519-pub-... (printed by `cnbackup keys generate --signing`) or set CNBACKUP_SIGNER; only manifests signed by it are trusted")
        }
        var pins = SignerPins(anyNode: [])
        for text in texts {
            if let equals = text.firstIndex(of: "="), !text.hasPrefix("cnb1-") {
                let node = String(text[..<equals])
                pins.perNode[node, default: []].append(try SignerKey(parsing: String(text[text.index(after: equals)...])))
            } else {
                pins.anyNode.append(try SignerKey(parsing: text))
            }
        }
        return pins
    }

    func load() throws -> [SignerKey] { try pins().all }

    func catalog(_ store: any ObjectStore) throws -> Catalog {
        Catalog(store: store, pins: try pins(), countRecovered: countRecovered)
    }
}

/// Progress bars on a terminal (standard error), never in JSON logs or pipes.
struct ProgressOptions: ParsableArguments {
    @Flag(help: "No progress line, even on a terminal.") var noProgress = false

    func install(logFormat: String? = nil) { TerminalProgress.installIfWanted(logFormat: logFormat, disabled: noProgress) }
}

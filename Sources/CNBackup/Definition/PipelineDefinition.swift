import Foundation
import Yams
import CNBackupHTTP
import CNBackupCore
import CNBackupStorage
import CNBackupCatalog

/// Where a capture's bytes come from.
public enum CaptureSourceDefinition: Sendable, Equatable {
    /// Any command's standard output (`kubectl exec ... pg_dump`, a snapshot script); a non-zero
    /// exit fails the capture.
    case command(arguments: [String], environment: [String: String])
    /// One file, read as it is.
    case file(path: String)
    /// A folder, as a tar stream.
    case directory(path: String)
    /// pg_dump of each database, and optionally the instance's roles.
    case postgres(PostgresSourceDefinition)
    /// An HTTPS GET with a bearer token (the identities dump).
    case http(HTTPSourceDefinition)
    /// A volume snapshot taken elsewhere (CometBFT), recorded by name and time; no bytes streamed.
    case snapshotReference(name: String, takenAt: String?)
    /// A Kubernetes Secret through the API server (the SV key, the CometBFT keys).
    case kubernetesSecret(KubernetesSecretDefinition)

    /// For the manifest and the plan: never holds a secret (environment values are not shown).
    public var summary: String {
        switch self {
        case .command(let arguments, _):
            // The program's name only: an argument may be a connection string with a password,
            // and this text goes into the manifest in the bucket.
            let program = (arguments.first.map { ($0 as NSString).lastPathComponent }) ?? ""
            return "command: \(program)" + (arguments.count > 1 ? " (\(arguments.count - 1) arguments)" : "")
        case .file(let path): return "file: \(path)"
        case .directory(let path): return "directory: \(path) (tar)"
        case .postgres(let source): return source.summary
        case .http(let source): return source.summary
        case .snapshotReference(let name, let takenAt): return "volume snapshot reference: \(name)\(takenAt.map { " taken \($0)" } ?? "")"
        case .kubernetesSecret(let secret): return secret.summary
        }
    }
}

public struct CaptureDefinition: Sendable, Equatable {
    public var name: String
    public var role: ComponentRole
    public var source: CaptureSourceDefinition
    /// The epoch of what this capture reads when it is not the pipeline's: during a logical
    /// synchronizer upgrade both physical synchronizers run for up to 30 days, and the old one's
    /// sequencer and mediator (an older serial of the same migration) may be captured too.
    public var epoch: Epoch? = nil
    /// `dedup: true` (postgres dumps, commands, files): cut into content-defined chunks and store
    /// only those no kept set of the node holds (docs/FORMAT.md, "Deduplicated components").
    public var dedup = false
}

/// `dedup:` at the top of a pipeline: the secret that names and cuts chunks, and the grace period.
public struct DedupSettings: Sendable, Equatable {
    public var keyFile: String
    /// Runs reuse only chunks of sets younger than this and must commit within it; prune deletes
    /// a chunk only when no set references it and no set folder with an object younger than twice
    /// this could (docs/FORMAT.md).
    public var graceSeconds: TimeInterval = DedupSettings.defaultGrace
    public static let defaultGrace: TimeInterval = 7 * 86_400
}

public enum ReadBackMode: String, Codable, Sendable, CaseIterable {
    /// Every object is read back whole and opened with the in-memory data key.
    case full
    /// The header and a few segments (the first, the last and two at random) are read back by
    /// range and authenticated: proves the stored bytes open, at a fraction of the cost.
    case sample
    /// Nothing is read back (the object is still checked by size).
    case none
}

/// A pipeline file (pipelines/*.yaml), parsed and checked. README.md documents the schema.
public struct PipelineDefinition: Sendable {
    public var node: NodeInfo
    public var epoch: Epoch
    public var store: StoreSettings
    /// Scan's base URL: `run` asks it for the active physical synchronizer serial and refuses an
    /// epoch that disagrees (a pipeline not updated after a logical synchronizer upgrade).
    public var scanURL: String? = nil
    public var recipients: [String]
    public var symmetricKeyFiles: [String]
    public var signingKeyFile: String
    public var compression: CompressionSettings
    public var captures: [CaptureDefinition]
    public var readBack: ReadBackMode
    /// How many captures may run at once (besides the ordering rules).
    public var parallelism: Int
    /// `order:` Splice's rule (the default) or Canton's (docs/CANTON.md, "Canton's own order").
    public var order: CaptureOrder = .splice
    /// `dedup:` (needed when any capture has `dedup: true`).
    public var dedup: DedupSettings? = nil
    /// Things that work but deserve a look (a single recipient).
    public var warnings: [String]

    /// Roles a node kind's set must hold to count as complete (docs/CANTON.md, "Completeness of a set"). A CantonBFT SV
    /// has no CometBFT node; its BFT database is checked by `checkDatabaseEpochs`.
    public static func requiredRoles(_ kind: NodeKind, consensus: Consensus? = nil) -> [ComponentRole] {
        switch kind {
        case .sv where consensus == .cantonbft: return [.apps, .participant, .sequencer, .mediator, .identities]
        case .sv: return [.apps, .participant, .sequencer, .mediator, .identities, .cometbft]
        case .validator: return [.apps, .participant, .identities]
        case .generic: return []
        }
    }

    /// A one-off definition for `cnbackup upload`: each local file becomes a component named after
    /// its role. Missing roles of the node kind do not fail here; the set is then partial.
    public static func forUpload(node: NodeInfo, epoch: Epoch, store: StoreSettings, recipients: [String],
                                 signingKeyFile: String, files: [(role: ComponentRole, path: String)]) throws -> PipelineDefinition {
        try validateNodeName(node.name)
        guard !recipients.isEmpty else { throw CNBackupError(.invalidInput, "give at least one --recipient") }
        for recipient in recipients { _ = try Recipient(parsing: recipient) }
        var names = Set<String>()
        let captures = try files.map { file -> CaptureDefinition in
            guard names.insert(file.role.rawValue).inserted else {
                throw CNBackupError(.invalidInput, "role \(file.role.rawValue) is given twice")
            }
            guard FileManager.default.isReadableFile(atPath: file.path) else {
                throw CNBackupError(.invalidInput, "cannot read \(file.path)")
            }
            return CaptureDefinition(name: file.role.rawValue, role: file.role, source: .file(path: file.path))
        }
        guard !captures.isEmpty else { throw CNBackupError(.invalidInput, "give at least one --component ROLE=FILE") }
        return PipelineDefinition(node: node, epoch: epoch, store: store, recipients: recipients, symmetricKeyFiles: [],
                                  signingKeyFile: signingKeyFile, compression: CompressionSettings(), captures: captures,
                                  readBack: .full, parallelism: 2,
                                  warnings: recipients.count == 1 ? ["a single recipient: add an offline break-glass recipient"] : [])
    }

    /// Reads a pipeline file. `epoch` (from `--epoch` or `CNBACKUP_EPOCH`) replaces the file's
    /// before the epoch checks run; relative paths resolve against the file's folder.
    public static func load(path: String, epoch: Epoch? = nil) throws -> PipelineDefinition {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CNBackupError(.invalidInput, "cannot read pipeline file \(path): check the path")
        }
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
        return try parse(String(decoding: data, as: UTF8.self), file: path, epoch: epoch).resolvingRelativePaths(against: folder)
    }

    public static func parse(_ text: String, file: String = "pipeline", epoch override: Epoch? = nil) throws -> PipelineDefinition {
        var top = try YAMLMap(try composeRoot(text, file: file), path: "", file: file)
        try top.rejectKeys(notIn: ["version", "node", "epoch", "store", "encryption", "signing", "compression", "verify", "parallelism", "order", "dedup", "captures"])
        var warnings: [String] = []

        let versionNode = try top.require("version")
        guard versionNode.int == 1 else { throw top.error(versionNode, "version", "only version 1 is supported") }
        let node = try parseNode(&top, file: file)
        let (epoch, scanURL) = try parseEpoch(&top, file: file)
        let store = try parseStore(&top, file: file)
        let (recipients, symmetricKeyFiles) = try parseEncryption(&top, file: file, warnings: &warnings)
        var signingMap = try YAMLMap(try top.require("signing"), path: "signing", file: file)
        let signingKeyFile = try signingMap.requireString("keyFile")
        try signingMap.rejectUnknown()
        let (compression, readBack, parallelism) = try parseRunSettings(&top)
        var order = CaptureOrder.splice
        if let text = try top.string("order") {
            guard let parsed = CaptureOrder(rawValue: text) else {
                throw top.error(top.value("order"), "order", "use splice (the default: the sequencer beside the apps) or canton (the sequencer after the participant and mediator)")
            }
            order = parsed
        }
        var dedup: DedupSettings?
        if var dedupMap = try top.map("dedup") {
            var settings = DedupSettings(keyFile: try dedupMap.requireString("keyFile"))
            if let hours = try dedupMap.int("graceHours") {
                guard (1...24 * 90).contains(hours) else {
                    throw dedupMap.error(dedupMap.value("graceHours"), "graceHours", "graceHours must be 1 to 2160: longer than any run, shorter than the retention")
                }
                settings.graceSeconds = TimeInterval(hours) * 3600
            }
            try dedupMap.rejectUnknown()
            dedup = settings
        }
        let captures = try parseCaptures(&top, file: file)
        try top.rejectUnknown()
        if dedup == nil, let first = captures.first(where: \.dedup) {
            throw YAMLMap.error(file, top.node, "dedup", "capture \(first.name) has dedup: true, which needs the pipeline's dedup: { keyFile: FILE } (cnbackup keys generate --dedup --out FILE)")
        }
        try checkComponentNames(captures, file: file)
        try checkRequiredRoles(captures, node: node, file: file)

        let definition = PipelineDefinition(node: node,
                                  epoch: Epoch(migrationId: override?.migrationId ?? epoch.migrationId, serial: override?.serial ?? epoch.serial,
                                               synchronizerId: epoch.synchronizerId),
                                  store: store, recipients: recipients, symmetricKeyFiles: symmetricKeyFiles,
                                  signingKeyFile: signingKeyFile, compression: compression, captures: captures,
                                  readBack: readBack, parallelism: parallelism, warnings: warnings)
        try definition.checkDatabaseEpochs(file: file)
        var checked = definition
        checked.scanURL = scanURL
        checked.order = order
        checked.dedup = dedup
        let inPod = ProcessInfo.processInfo.environment["KUBERNETES_SERVICE_HOST"].map { !$0.isEmpty } ?? false
        for capture in captures {
            if case .kubernetesSecret(let secret) = capture.source, secret.apiServer == nil, !inPod {
                checked.warnings.append("\(file): capture \(capture.name) reads a Secret from the API server of the pod it runs in: outside a pod (no KUBERNETES_SERVICE_HOST), give kubernetesSecret.apiServer, tokenFile and caFile")
            }
        }
        return checked
    }

    /// The YAML document's root node, refusing aliases before anything is composed.
    private static func composeRoot(_ text: String, file: String) throws -> Node {
        // Refused before composing: an alias repeats a node without repeating its text, so a few
        // hundred bytes of nested aliases stand for billions of nodes, and Yams hashes every mapping
        // key as it composes (its duplicate-key check), which then never ends. Found while fuzzing
        // the parser (Tests/CNBackupTests/Resources/fuzz-regressions/pipeline/).
        if let alias = firstYAMLAlias(in: text) {
            throw CNBackupError(.invalidDefinition, "\(file): YAML aliases are not allowed in a pipeline file (found *\(alias)): write the value out in full")
        }
        do {
            guard let node = try Yams.compose(yaml: text) else {
                throw CNBackupError(.invalidDefinition, "\(file): the file is empty")
            }
            return node
        } catch let error as CNBackupError {
            throw error
        } catch let error as YamlError {
            throw CNBackupError(.invalidDefinition, "\(file): not valid YAML: \(error)")
        } catch {
            throw CNBackupError(.invalidDefinition, "\(file): not valid YAML: \(error)")
        }
    }

    /// `node:` (name, kind, consensus).
    private static func parseNode(_ top: inout YAMLMap, file: String) throws -> NodeInfo {
        var nodeMap = try YAMLMap(try top.require("node"), path: "node", file: file)
        let nodeName = try nodeMap.requireString("name")
        do { try validateNodeName(nodeName) } catch let e as CNBackupError { throw nodeMap.error(nil, "name", e.message) }
        let kindText = try nodeMap.requireString("kind")
        guard let kind = NodeKind(rawValue: kindText) else {
            throw nodeMap.error(nodeMap.value("kind"), "kind", "\"\(kindText)\" is not a node kind: use sv, validator or generic")
        }
        var consensus: Consensus?
        if let text = try nodeMap.string("consensus") {
            guard let parsed = Consensus(rawValue: text) else {
                throw nodeMap.error(nodeMap.value("consensus"), "consensus", "\"\(text)\" is not a consensus: use cometbft or cantonbft")
            }
            guard kind == .sv else {
                throw nodeMap.error(nodeMap.value("consensus"), "consensus", "only an sv node has a consensus (cometbft or cantonbft)")
            }
            consensus = parsed
        }
        try nodeMap.rejectUnknown()
        return NodeInfo(name: nodeName, kind: kind, consensus: consensus)
    }

    /// `epoch:` as the file states it (an `--epoch` given on the command line replaces it later), and the Scan URL that checks it.
    private static func parseEpoch(_ top: inout YAMLMap, file: String) throws -> (Epoch, scanURL: String?) {
        var epochMap = try YAMLMap(try top.require("epoch"), path: "epoch", file: file)
        guard let migrationId = try epochMap.int("migrationId"), migrationId >= 0 else {
            throw YAMLMap.error(file, epochMap.node, "epoch", "migrationId (a whole number from 0) is required")
        }
        let serial = try epochMap.int("serial") ?? 0
        let synchronizerId = try epochMap.string("synchronizerId")
        let scanURL = try epochMap.string("scanUrl")
        if let scanURL {
            do { try SecureURL.require(scanURL, what: "epoch.scanUrl") } catch let e as CNBackupError {
                throw YAMLMap.error(file, epochMap.value("scanUrl") ?? epochMap.node, "epoch.scanUrl", e.message)
            }
        }
        try epochMap.rejectUnknown()
        return (Epoch(migrationId: migrationId, serial: serial, synchronizerId: synchronizerId), scanURL)
    }

    /// `store:`, its URL shape and its Object Lock settings.
    private static func parseStore(_ top: inout YAMLMap, file: String) throws -> StoreSettings {
        var storeMap = try YAMLMap(try top.require("store"), path: "store", file: file)
        var store = StoreSettings(url: try storeMap.requireString("url"), endpoint: try storeMap.string("endpoint"),
                                  region: try storeMap.string("region"), pathStyle: try storeMap.bool("pathStyle"),
                                  caFile: try storeMap.string("caFile"), provider: try storeMap.string("provider"),
                                  sse: try storeMap.string("sse"), kmsKeyId: try storeMap.string("kmsKeyId"),
                                  storageClass: try storeMap.string("storageClass"))
        store.partSizeMiB = try storeMap.int("partSizeMiB")
        store.parallelParts = try storeMap.int("parallelParts")
        store.maxBytesPerSecond = try storeMap.int("maxBytesPerSecond").map(Int64.init)
        store.maxAttempts = try storeMap.int("maxAttempts")
        store.create = try storeMap.bool("create") ?? false
        if var lockMap = try storeMap.map("objectLock") {
            let modeText = try lockMap.requireString("mode")
            guard let mode = ObjectLockRetention.Mode(rawValue: modeText) else {
                throw lockMap.error(lockMap.value("mode"), "mode", "\"\(modeText)\" is not an Object Lock mode: use governance or compliance")
            }
            guard let days = try lockMap.int("days"), (1...36_500).contains(days) else {
                throw YAMLMap.error(file, lockMap.node, lockMap.path, "days (1 to 36500) is required: how long each object stays locked; at least the retention period prune keeps")
            }
            try lockMap.rejectUnknown()
            store.objectLock = ObjectLockRetention(mode: mode, days: days)
        }
        try storeMap.rejectUnknown()
        guard ["file://", "s3://", "gs://"].contains(where: { store.url.hasPrefix($0) }) else {
            throw storeMap.error(nil, "url", "\"\(store.url)\" is not a store URL: use file:///PATH, s3://BUCKET/PREFIX or gs://BUCKET/PREFIX")
        }
        do { try store.checkURL() } catch let e as CNBackupError { throw storeMap.error(nil, "url", e.message) }
        if store.objectLock != nil && store.url.hasPrefix("file://") {
            throw storeMap.error(nil, "objectLock", "Object Lock is an S3 and GCS setting: a file store has none (use the file system's own immutability)")
        }
        return store
    }

    /// `encryption:`: the recipients, each parsed, and the warnings a weak choice earns.
    private static func parseEncryption(_ top: inout YAMLMap, file: String, warnings: inout [String]) throws -> (recipients: [String], symmetricKeyFiles: [String]) {
        var encryptionMap = try YAMLMap(try top.require("encryption"), path: "encryption", file: file)
        let recipients = try encryptionMap.strings("recipients") ?? []
        let symmetricKeyFiles = try encryptionMap.strings("symmetricKeyFiles") ?? []
        try encryptionMap.rejectUnknown()
        for (index, recipient) in recipients.enumerated() {
            do { _ = try Recipient(parsing: recipient) } catch let e as CNBackupError {
                throw encryptionMap.error(nil, "recipients[\(index)]", e.message)
            }
        }
        let recipientCount = recipients.count + symmetricKeyFiles.count
        if recipientCount == 0 {
            throw YAMLMap.error(file, encryptionMap.node, "encryption", "at least one recipient is required (two are advised: an operational key and an offline break-glass key)")
        }
        if recipientCount == 1 {
            warnings.append("\(file): encryption has a single recipient: if its private key is lost, every backup is lost; add an offline break-glass recipient")
        }
        if !symmetricKeyFiles.isEmpty {
            warnings.append("\(file): symmetricKeyFiles puts a key that OPENS backups on the job's host: whoever reads the job's secrets can read every backup sealed to that key; prefer public recipients")
        }
        return (recipients, symmetricKeyFiles)
    }

    /// `compression:`, `verify:` and `parallelism`, each with its default.
    private static func parseRunSettings(_ top: inout YAMLMap) throws -> (CompressionSettings, ReadBackMode, Int) {
        var compression = CompressionSettings()
        if var compressionMap = try top.map("compression") {
            if let level = try compressionMap.int("level") {
                guard (1...19).contains(level) else { throw compressionMap.error(compressionMap.value("level"), "level", "must be 1 to 19") }
                compression.level = level
            }
            if let workers = try compressionMap.int("workers") {
                guard (0...64).contains(workers) else { throw compressionMap.error(compressionMap.value("workers"), "workers", "must be 0 to 64") }
                compression.workers = workers
            }
            try compressionMap.rejectUnknown()
        }

        var readBack = ReadBackMode.full
        if var verifyMap = try top.map("verify") {
            if let mode = try verifyMap.string("readBack") {
                guard let parsed = ReadBackMode(rawValue: mode) else {
                    throw verifyMap.error(verifyMap.value("readBack"), "readBack", "use full, sample or none")
                }
                readBack = parsed
            }
            try verifyMap.rejectUnknown()
        }
        let parallelism = try top.int("parallelism") ?? 2
        guard (1...16).contains(parallelism) else { throw top.error(top.value("parallelism"), "parallelism", "must be 1 to 16") }
        return (compression, readBack, parallelism)
    }

    /// `captures:`, a non-empty list.
    private static func parseCaptures(_ top: inout YAMLMap, file: String) throws -> [CaptureDefinition] {
        let capturesNode = try top.require("captures")
        guard case .sequence(let captureNodes) = capturesNode, !captureNodes.isEmpty else {
            throw top.error(capturesNode, "captures", "expected a non-empty list of captures")
        }
        var captures: [CaptureDefinition] = []
        for (index, captureNode) in captureNodes.enumerated() {
            captures.append(try parseCapture(captureNode, path: "captures[\(index)]", file: file))
        }
        return captures
    }

    /// Capture names, and the component names they make, become object keys: each must be unique.
    private static func checkComponentNames(_ captures: [CaptureDefinition], file: String) throws {
        var names = Set<String>()
        for capture in captures where !names.insert(capture.name).inserted {
            throw CNBackupError(.invalidDefinition, "\(file): two captures are named \"\(capture.name)\": names become object keys and must be unique")
        }
        // Postgres captures make one component per database (NAME-DATABASE, NAME-globals): those
        // names become object keys too, and one must not overwrite another's.
        var madeBy: [String: String] = [:]
        for capture in captures {
            for job in capture.jobs {
                if let other = madeBy[job.name] {
                    throw CNBackupError(.invalidDefinition, other == capture.name
                        ? "\(file): capture \(capture.name) makes two components named \"\(job.name)\" (a database named globals beside globals: true): rename the capture or dump that database in another"
                        : "\(file): captures \(other) and \(capture.name) both make a component named \"\(job.name)\": rename one of them")
                }
                madeBy[job.name] = capture.name
            }
        }
    }

    /// A node kind's set needs its roles (docs/CANTON.md, "Completeness of a set").
    private static func checkRequiredRoles(_ captures: [CaptureDefinition], node: NodeInfo, file: String) throws {
        let kind = node.kind, consensus = node.consensus
        let roles = Set(captures.map(\.role))
        let required = requiredRoles(kind, consensus: consensus)
        let missing = required.filter { !roles.contains($0) }
        if !missing.isEmpty {
            let what = kind == .sv ? "an sv node's (\((consensus ?? .cometbft).rawValue))" : "a \(kind.rawValue) node's"
            throw CNBackupError(.invalidDefinition,
                "\(file): \(what) backup must hold \(required.map(\.rawValue).joined(separator: ", ")); this pipeline has no capture with role \(missing.map(\.rawValue).joined(separator: ", "))")
        }
    }

    /// Splice names databases after the epoch they serve: the participant after the migration
    /// (`participant_4`, kept across logical synchronizer upgrades), the sequencer and mediator after
    /// the physical synchronizer serial (`sequencer_1`, `mediator_1`, `sequencer_1_cantonbft`), or
    /// after the migration in the older layout (`sequencer_3`). A pipeline still tagging an older
    /// epoch after an upgrade is a mistake to catch, not to record. A capture that declares its own
    /// epoch (the old physical synchronizer during an upgrade) is checked against that one; it must
    /// be an older serial of the same migration. A CantonBFT SV must capture its BFT database.
    public func checkDatabaseEpochs(file: String = "pipeline") throws {
        func fail(_ message: String) -> CNBackupError { CNBackupError(.invalidDefinition, "\(file): \(message)") }
        for capture in captures {
            let claimed = capture.epoch ?? epoch
            if let own = capture.epoch {
                guard [.sequencer, .mediator].contains(capture.role) else {
                    throw fail("capture \(capture.name) has an epoch of its own, which only the old synchronizer's sequencer and mediator may have")
                }
                guard own.migrationId == epoch.migrationId, own.serial < epoch.serial else {
                    throw fail("capture \(capture.name) claims epoch \(own), which is not an older serial of the pipeline's epoch \(epoch): a logical synchronizer upgrade keeps the migration id and raises the serial")
                }
            }
            guard [.participant, .sequencer, .mediator].contains(capture.role), case .postgres(let source) = capture.source else { continue }
            for database in source.databases {
                var name = database
                if name.hasSuffix("_cantonbft") { name.removeLast("_cantonbft".count) }
                guard let match = name.range(of: #"[_-][0-9]+\z"#, options: .regularExpression) else { continue }
                let digits = name[match].dropFirst()
                guard digits == "0" || !digits.hasPrefix("0"), let number = Int(digits) else {
                    throw fail("capture \(capture.name) dumps database \(database), whose number has leading zeros: name the database as Splice does (participant_4, sequencer_1)")
                }
                switch capture.role {
                case .participant where number != claimed.migrationId:
                    throw fail("capture \(capture.name) dumps database \(database) (migration \(number)) but the epoch says migration \(claimed.migrationId): participant databases carry the migration id; set epoch.migrationId (or --epoch / CNBACKUP_EPOCH) to the running migration")
                case .sequencer, .mediator:
                    if number != claimed.serial && number != claimed.migrationId {
                        throw fail("capture \(capture.name) dumps database \(database) (number \(number)) but the epoch is \(claimed): sequencer and mediator databases carry the physical synchronizer serial (\(capture.role.rawValue)_\(claimed.serial)), or the migration id in the older layout; set epoch.serial (or --epoch / CNBACKUP_EPOCH) to the running serial, or give the old synchronizer's capture its own epoch")
                    }
                default: break
                }
            }
        }
        if node.kind == .sv, node.consensus == .cantonbft {
            let bft = captures.contains { capture in
                guard capture.role == .sequencer, case .postgres(let source) = capture.source else { return false }
                // A physical capture holds every database of its instance.
                return source.method == .physical || source.databases.contains { $0.hasSuffix("_cantonbft") }
            }
            if !bft {
                throw fail("a CantonBFT SV's backup must hold its BFT database: add sequencer_\(epoch.serial)_cantonbft (on the sequencer-cantonbft-pg instance) to a capture with role sequencer")
            }
        }
    }

    private static func parseCapture(_ node: Node, path: String, file: String) throws -> CaptureDefinition {
        var map = try YAMLMap(node, path: path, file: file)
        let name = try map.requireString("name")
        guard name.range(of: #"\A[a-z0-9][a-z0-9._-]{0,62}\z"#, options: .regularExpression) != nil else {
            throw map.error(map.value("name"), "name", "\"\(name)\" is not allowed: use lower-case letters, digits, '.', '_' and '-'")
        }
        let roleText = try map.requireString("role")
        guard let role = ComponentRole(rawValue: roleText) else {
            throw map.error(map.value("role"), "role", "\"\(roleText)\" is not a role: use \(ComponentRole.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        var sources: [CaptureSourceDefinition] = []
        let dedup = try map.bool("dedup") ?? false
        if let arguments = try map.strings("command") {
            guard !arguments.isEmpty, !arguments[0].isEmpty else { throw map.error(map.value("command"), "command", "the command must not be empty") }
            sources.append(.command(arguments: arguments, environment: try map.stringMap("env") ?? [:]))
        }
        if let path = try map.string("file") { sources.append(.file(path: path)) }
        if let path = try map.string("directory") { sources.append(.directory(path: path)) }
        var postgresDedup = false
        if var pg = try map.map("postgres") {
            postgresDedup = try pg.bool("dedup") ?? false
            sources.append(.postgres(try parsePostgres(&pg, file: file)))
        }
        if var http = try map.map("http") { sources.append(.http(try parseHTTP(&http, role: role, file: file))) }
        if var snapshot = try map.map("snapshotReference") {
            sources.append(.snapshotReference(name: try snapshot.requireString("name"), takenAt: try snapshot.string("takenAt")))
            try snapshot.rejectUnknown()
        }
        if var secret = try map.map("kubernetesSecret") { sources.append(.kubernetesSecret(try parseKubernetesSecret(&secret, file: file))) }
        var ownEpoch: Epoch?
        if var epochMap = try map.map("epoch") {
            guard let migrationId = try epochMap.int("migrationId"), migrationId >= 0,
                  let serial = try epochMap.int("serial"), serial >= 0 else {
                throw YAMLMap.error(file, epochMap.node, epochMap.path, "a capture's epoch needs migrationId and serial (whole numbers from 0)")
            }
            try epochMap.rejectUnknown()
            ownEpoch = Epoch(migrationId: migrationId, serial: serial)
        }
        try map.rejectUnknown()
        guard sources.count == 1, let source = sources.first else {
            throw YAMLMap.error(file, node, path, "a capture needs exactly one source: command, file, directory, postgres, http, kubernetesSecret or snapshotReference (found \(sources.count))")
        }
        var definition = CaptureDefinition(name: name, role: role, source: source, epoch: ownEpoch)
        switch source {
        case .postgres(let pg):
            if dedup { throw map.error(map.value("dedup"), "dedup", "for a postgres capture, write dedup: true inside postgres:") }
            if postgresDedup && (pg.method != .dump || pg.jobs > 1) {
                throw YAMLMap.error(file, node, path + ".postgres.dedup", "dedup goes with single-job pg_dump captures (method: dump, no jobs): a physical capture has incrementals instead")
            }
            definition.dedup = postgresDedup
        case .command, .file:
            definition.dedup = dedup
        default:
            if dedup { throw map.error(map.value("dedup"), "dedup", "dedup goes with postgres dumps, commands and files") }
        }
        return definition
    }

    /// A capture's `postgres:` source: its method and what goes with it.
    private static func parsePostgres(_ pg: inout YAMLMap, file: String) throws -> PostgresSourceDefinition {
        let methodText = try pg.string("method") ?? PostgresMethod.dump.rawValue
        guard let method = PostgresMethod(rawValue: methodText) else {
            throw YAMLMap.error(file, pg.value("method") ?? pg.node, pg.path + ".method",
                                "\"\(methodText)\" is not a method: use dump (pg_dump per database) or physical (pg_basebackup of the instance)")
        }
        let databases = try pg.strings("databases")
        let globals = try pg.bool("globals")
        let lockWaitTimeout = try pg.string("lockWaitTimeout")
        let jobs = try pg.int("jobs")
        if let jobs, !(1...64).contains(jobs) {
            throw YAMLMap.error(file, pg.value("jobs") ?? pg.node, pg.path + ".jobs", "jobs must be 1 to 64 (pg_dump workers per database sharing one snapshot)")
        }
        if method == .physical {
            // A base backup is the whole instance, roles included: a database list or globals would promise a choice it cannot make.
            for (key, given) in [("databases", databases != nil), ("globals", globals != nil), ("lockWaitTimeout", lockWaitTimeout != nil),
                                 ("jobs", jobs != nil)] where given {
                throw YAMLMap.error(file, pg.value(key) ?? pg.node, pg.path + "." + key,
                                    "\(key) does not go with method: physical, which backs up the whole instance (every database and role)")
            }
        } else if databases?.isEmpty ?? true {
            throw YAMLMap.error(file, pg.node, pg.path, "databases (a non-empty list) is required")
        }
        var source = PostgresSourceDefinition(
            host: try pg.requireString("host"), port: try pg.int("port") ?? 5432, user: try pg.requireString("user"),
            passwordFile: try pg.string("passwordFile"), databases: databases ?? [], globals: globals ?? false,
            lockWaitTimeout: lockWaitTimeout ?? "60s", sslMode: try pg.string("sslmode"),
            binDirectory: try pg.string("binDirectory"), environment: try pg.stringMap("env") ?? [:])
        source.method = method
        source.jobs = jobs ?? 1
        if var incremental = try pg.map("incremental") {
            guard method == .physical else {
                throw YAMLMap.error(file, incremental.node, incremental.path, "incremental goes with method: physical (pg_basebackup --incremental)")
            }
            source.incremental = try parseIncremental(&incremental, file: file)
        }
        try pg.rejectUnknown()
        return source
    }

    /// `postgres.incremental:` (physical captures only).
    private static func parseIncremental(_ incremental: inout YAMLMap, file: String) throws -> IncrementalPolicy {
        var policy = IncrementalPolicy()
        if let text = try incremental.string("fullEvery") {
            do { policy.fullEvery = try DurationText.parse(text) } catch let e as CNBackupError {
                throw YAMLMap.error(file, incremental.value("fullEvery") ?? incremental.node, incremental.path + ".fullEvery", e.message)
            }
            guard policy.fullEvery > 0 else {
                throw YAMLMap.error(file, incremental.value("fullEvery") ?? incremental.node, incremental.path + ".fullEvery", "fullEvery must be longer than 0")
            }
        }
        if let count = try incremental.int("maxChain") {
            guard count >= 2 else {
                throw YAMLMap.error(file, incremental.value("maxChain") ?? incremental.node, incremental.path + ".maxChain",
                                    "maxChain counts the full too: give 2 or more (1 means a full every run)")
            }
            policy.maxChain = count
        }
        try incremental.rejectUnknown()
        return policy
    }

    /// A capture's `http:` source (the identities dump): its URLs and exactly one way to a token.
    private static func parseHTTP(_ http: inout YAMLMap, role: ComponentRole, file: String) throws -> HTTPSourceDefinition {
        var oauth: HTTPSourceDefinition.OAuth?
        if var o = try http.map("oauth") {
            oauth = .init(tokenURL: try o.requireString("tokenUrl"), clientId: try o.requireString("clientId"),
                          clientSecretFile: try o.requireString("clientSecretFile"), audience: try o.string("audience"),
                          scope: try o.string("scope"))
            try o.rejectUnknown()
        }
        var source = HTTPSourceDefinition(url: try http.requireString("url"), caFile: try http.string("caFile"),
                                          tokenFile: try http.string("tokenFile"), oauth: oauth,
                                          expectIdentities: role == .identities)
        if let timeout = try http.string("timeout") {
            do { source.timeoutSeconds = max(1, Int(try DurationText.parse(timeout))) } catch let e as CNBackupError {
                throw YAMLMap.error(file, http.value("timeout") ?? http.node, http.path + ".timeout", e.message)
            }
        }
        try http.rejectUnknown()
        do { try source.checkURLs() } catch let e as CNBackupError { throw YAMLMap.error(file, http.node, http.path, e.message) }
        guard (source.oauth == nil) != (source.tokenFile == nil) else {
            throw YAMLMap.error(file, http.node, http.path, "give exactly one of oauth and tokenFile")
        }
        return source
    }

    /// A capture's `kubernetesSecret:` source.
    private static func parseKubernetesSecret(_ secret: inout YAMLMap, file: String) throws -> KubernetesSecretDefinition {
        let source = KubernetesSecretDefinition(namespace: try secret.requireString("namespace"), name: try secret.requireString("name"),
                                                apiServer: try secret.string("apiServer"), tokenFile: try secret.string("tokenFile"),
                                                caFile: try secret.string("caFile"))
        try secret.rejectUnknown()
        do { try source.checkNames() } catch let e as CNBackupError { throw YAMLMap.error(file, secret.node, secret.path, e.message) }
        if let server = source.apiServer, !server.lowercased().hasPrefix("https://") {
            throw YAMLMap.error(file, secret.node, secret.path + ".apiServer", "the API server must be https:// (it serves Secrets)")
        }
        return source
    }
}

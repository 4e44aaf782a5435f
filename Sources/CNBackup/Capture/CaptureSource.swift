import Foundation
import Logging
import CNBackupCore
import CNBackupStorage
import CNBackupProcess
import CNBackupCatalog

/// What the runner needs to know while capturing: the apps snapshots taken so far, for the
/// replica rule on participant captures.
final class CaptureContext: @unchecked Sendable {
    // @unchecked: `appsSnapshots` is only touched under `lock`; `cancellation` is thread-safe.
    private let lock = NSLock()
    private var appsSnapshots: [String] = []
    /// The run's stop request: every child a capture starts is stopped by it.
    let cancellation: Cancellation
    /// Earlier sets of the node, for physical captures that take incrementals (nil: none read).
    let chains: IncrementalChains?
    /// The set's epoch (a capture may have its own, `ComponentJob.epoch`).
    let epoch: Epoch?
    /// The snapshots of parallel dumps (`postgres: { jobs: N }`), one per database, shared by its parts.
    let parallelDumps = ParallelDumpSessions()

    init(cancellation: Cancellation, chains: IncrementalChains? = nil, epoch: Epoch? = nil) {
        self.cancellation = cancellation; self.chains = chains; self.epoch = epoch
    }

    func recordAppsSnapshot(_ serverNow: String) { lock.lock(); appsSnapshots.append(serverNow); lock.unlock() }
    var latestAppsSnapshot: Date? {
        lock.lock(); defer { lock.unlock() }
        return appsSnapshots.compactMap(Timestamp.parse).max()
    }
}

/// One stored object to make: a capture expands into one job per database (plus roles), or one
/// job for any other source.
struct ComponentJob: Sendable {
    let name: String
    let role: ComponentRole
    let source: CaptureSourceDefinition
    let database: String?
    let isGlobals: Bool
    /// The capture's own epoch, when it is not the set's (see `CaptureDefinition.epoch`).
    let epoch: Epoch?
    /// For a parallel dump (`jobs: N`, N > 1): which part of its database's dump this is.
    var part: ParallelDump.PartSpec? = nil
    /// Stored as deduplicated chunks (globals stay a plain object: they are small).
    var dedup = false

    var summary: String {
        if case .postgres(let pg) = source {
            if pg.method == .physical { return "pg_basebackup \(pg.user)@\(pg.host):\(pg.port)" }
            if let part {
                let which = part.section == .data ? "data part \(part.index) of \(part.dataParts)" : part.section.rawValue
                return "pg_dump --section=\(part.section.rawValue) (\(which), one snapshot) \(pg.user)@\(pg.host):\(pg.port)/\(database ?? "")"
            }
            return isGlobals ? "pg_dumpall --globals-only \(pg.user)@\(pg.host):\(pg.port)" : "pg_dump \(pg.user)@\(pg.host):\(pg.port)/\(database ?? "")"
        }
        return source.summary
    }

    /// Starts the source. For Postgres, first records the server's evidence and enforces the
    /// replica rule for participant captures. A physical capture's evidence is complete once its
    /// stream has ended (the third value).
    func open(context: CaptureContext, logger: Logger? = nil) throws -> (ByteStream, PostgresEvidence?, PhysicalCaptureStream?) {
        if case .postgres(let pg) = source, pg.method == .physical {
            let stream = try pg.openPhysical(role: role, component: name, epoch: epoch ?? context.epoch ?? Epoch(migrationId: 0, serial: 0),
                                             context: context, logger: logger)
            return (stream, nil, stream)
        }
        let (stream, evidence) = try openOther(context: context)
        return (stream, evidence, nil)
    }

    private func openOther(context: CaptureContext) throws -> (ByteStream, PostgresEvidence?) {
        switch source {
        case .command(let arguments, let environment):
            return (try ChildProcessStream(arguments: arguments, environment: environment, cancellation: context.cancellation), nil)
        case .file(let path):
            let fd = Foundation.open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw CNBackupError(.capture, "cannot open \(path): \(String(cString: strerror(errno)))") }
            return (FileDescriptorStream(fd: fd, owns: true, what: path), nil)
        case .directory(let path):
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw CNBackupError(.capture, "\(path) is not a folder")
            }
            return (try ChildProcessStream(arguments: ["tar", "-C", path, "-cf", "-", "."], cancellation: context.cancellation), nil)
        case .http(let http):
            return (try http.fetch(), nil)
        case .kubernetesSecret(let secret):
            return (try secret.fetch(), nil)
        case .snapshotReference(let name, let takenAt):
            let reference: [String: String] = ["kind": "volume-snapshot-reference", "name": name, "takenAt": takenAt ?? ""]
            let encoder = JSONEncoder(); encoder.outputFormatting = [.sortedKeys]
            return (MemoryStream(Array(try encoder.encode(reference))), nil)
        case .postgres(let pg):
            if let part {
                // One part of a parallel dump: the group's snapshot is opened by its first part.
                let session = try context.parallelDumps.session(for: part, pg: pg, role: role, context: context)
                return (KeepAlive(try session.open(part, cancellation: context.cancellation), session), session.evidence)
            }
            let passFile = try pg.makePassFile()
            let env = pg.childEnvironment(passFile: passFile)
            if isGlobals {
                let major = try pg.connection.serverMajorVersion(database: pg.databases.first ?? "postgres", passFile: passFile)
                let folder = try pg.clientFolder(serverMajor: major)
                return (KeepAlive(try ChildProcessStream(arguments: pg.globalsArguments(clientFolder: folder), environment: env,
                                                         cancellation: context.cancellation), passFile), nil)
            }
            let database = database ?? ""
            let (evidence, folder) = try pg.evidence(database: database, passFile: passFile)
            if role == .participant, evidence.isReplica {
                // docs/CANTON.md, "The apps barrier": a lagging replica can be older than the apps dump.
                guard let replay = evidence.replayTimestamp.flatMap(Timestamp.parse),
                      let apps = context.latestAppsSnapshot, replay > apps else {
                    throw CNBackupError(.capture,
                        "\(database) is read from a replica whose last replayed transaction (\(evidence.replayTimestamp ?? "none")) is not later than the apps snapshot: dump the participant from the primary, or wait for the replica")
                }
            }
            let dump = try ChildProcessStream(arguments: pg.dumpArguments(database: database, clientFolder: folder), environment: env, cancellation: context.cancellation)
            return (KeepAlive(dump, passFile), evidence)
        }
    }

    /// Whether the stream may be a pg_dump custom-format archive whose rows are counted on the way
    /// (a pg_dump of a database, or a command that may run pg_dump itself).
    var countsRows: Bool {
        switch source {
        case .postgres(let pg): return pg.method == .dump && !isGlobals
        case .command, .file: return true
        default: return false
        }
    }

    /// The size to expect, when the source knows it (for the store's part size).
    var sizeHint: Int64? {
        if case .file(let path) = source, let attributes = try? FileManager.default.attributesOfItem(atPath: path) {
            return (attributes[.size] as? NSNumber)?.int64Value
        }
        return nil
    }
}

extension CaptureDefinition {
    var jobs: [ComponentJob] {
        guard case .postgres(let pg) = source, pg.method == .dump else {
            var job = ComponentJob(name: name, role: role, source: source, database: nil, isGlobals: false, epoch: epoch)
            job.dedup = dedup
            return [job]
        }
        var jobs: [ComponentJob] = []
        for database in pg.databases {
            let group = "\(name)-\(database)"
            guard pg.jobs > 1 else {
                var job = ComponentJob(name: group, role: role, source: source, database: database, isGlobals: false, epoch: epoch)
                job.dedup = dedup
                jobs.append(job)
                continue
            }
            for part in ParallelDump.PartSpec.all(group: group, database: database, dataParts: pg.jobs) {
                jobs.append(ComponentJob(name: part.componentName, role: role, source: source, database: database, isGlobals: false,
                                         epoch: epoch, part: part))
            }
        }
        if pg.globals { jobs.append(ComponentJob(name: "\(name)-globals", role: role, source: source, database: nil, isGlobals: true, epoch: epoch)) }
        return jobs
    }
}

/// Keeps an object (a temporary pgpass file) alive as long as a stream is in use.
final class KeepAlive: ByteStream {
    private let upstream: ByteStream
    private var kept: AnyObject?
    init(_ upstream: ByteStream, _ kept: AnyObject?) { self.upstream = upstream; self.kept = kept }
    func next() throws -> [UInt8]? {
        guard let chunk = try upstream.next() else { kept = nil; return nil }
        return chunk
    }
    func close() { upstream.close(); kept = nil }
}

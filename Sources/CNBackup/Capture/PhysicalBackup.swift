import Foundation
import Logging
import CNBackupCore
import CNBackupStorage
import CNBackupProcess
import CNBackupPostgres
import CNBackupCatalog

/// A physical capture: `pg_basebackup -D - -Ft -X fetch` of the whole instance, its one tar
/// streamed through the pipeline as it is produced (no local copy, no compression of its own).
///
/// WAL retention: with `-X fetch` the server must still hold every WAL segment from the backup's
/// start when the backup ends, however long it took. cnbackup therefore opens a second
/// replication connection first (psql, `replication=true`) that creates a TEMPORARY physical slot
/// with RESERVE_WAL and holds it while pg_basebackup runs: the server keeps all WAL from the
/// slot's creation on. The slot lives exactly as long as that session: psql reads its commands
/// from a pipe whose other end only this process holds, so when the backup ends, fails, or
/// cnbackup is killed (even with SIGKILL) the pipe closes, psql exits and the server drops the
/// slot. No permanent slot is ever left behind to fill the server's disk.
///
/// The manifest's evidence comes from the stream itself: `backup_manifest` (the tar's last member)
/// is read line by line as it passes (its WAL-Ranges give the start and stop LSN and timeline, and
/// its own checksum is checked), `backup_label` gives the start time.
final class PhysicalCaptureStream: ByteStream {
    private let upstream: TarInspectingStream
    private let visitor: PhysicalCaptureVisitor
    private let pg: PostgresSourceDefinition
    private var passFile: TemporaryPassFile?
    private var slot: TemporarySlot?
    private let before: Before
    private let toolVersion: String
    private let chain: ChainStart
    private(set) var evidence: PhysicalEvidence?
    /// The tar's `backup_manifest`, byte for byte (for its clear copy), once the stream ended; nil
    /// when it was larger than `PhysicalCaptureVisitor.keepLimit`.
    var backupManifest: [UInt8]? { visitor.manifestBytes }

    /// What the capture takes, as the chain choice decided.
    enum ChainStart {
        /// A full backup; `reason` is set when incrementals were configured (why not one).
        case full(reason: String?)
        /// An incremental: the link it records and the parent's backup_manifest it was given.
        case incremental(IncrementalLink, parentManifest: PrivateTemporaryFile)
    }

    struct Before {
        var serverNow: String
        var isReplica: Bool
        var replayTimestamp: String?
        var serverVersion: String
        var systemIdentifier: String
    }

    init(pg: PostgresSourceDefinition, arguments: [String], environment: [String: String], passFile: TemporaryPassFile?,
         slot: TemporarySlot?, before: Before, toolVersion: String, chain: ChainStart = .full(reason: nil), cancellation: Cancellation) throws {
        self.pg = pg; self.passFile = passFile; self.slot = slot; self.before = before; self.toolVersion = toolVersion
        self.chain = chain
        visitor = PhysicalCaptureVisitor()
        upstream = TarInspectingStream(try ChildProcessStream(arguments: arguments, environment: environment, cancellation: cancellation),
                                       visitor: visitor)
    }

    func next() throws -> [UInt8]? {
        if evidence != nil { return nil }
        do {
            if let chunk = try upstream.next() { return chunk }
            // pg_basebackup exited 0 and the tar ended with its end marker: the consistency point.
            evidence = try complete()
            release()
            return nil
        } catch {
            release()
            throw error
        }
    }

    private func complete() throws -> PhysicalEvidence {
        let serverNow = try pg.connection.query("select to_char(now() at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')", passFile: passFile)
        guard let manifest = visitor.manifest else {
            throw CNBackupError(.capture, "pg_basebackup's tar holds no backup_manifest: cnbackup cannot vouch for it (is it pg_basebackup 13 or newer?)")
        }
        guard let first = manifest.walRanges.first, let last = manifest.walRanges.last else {
            throw CNBackupError(.capture, "pg_basebackup's backup_manifest has no WAL-Ranges")
        }
        if let id = manifest.systemIdentifier, id != before.systemIdentifier {
            throw CNBackupError(.capture, "the backup_manifest's system identifier \(id) is not the server's \(before.systemIdentifier): another instance answered")
        }
        var evidence = PhysicalEvidence(
            tool: toolVersion, serverVersion: before.serverVersion, systemIdentifier: before.systemIdentifier,
            timeline: last.timeline, startTimeline: first.timeline, startLSN: first.start, stopLSN: last.end,
            serverTimeBeforeStart: before.serverNow, backupStartTime: visitor.labelStartTime, serverTimeAtStop: serverNow,
            isReplica: before.isReplica, replayTimestamp: before.replayTimestamp,
            backupManifestSHA256: manifest.sha256, backupManifestSize: manifest.size,
            walRetention: slot.map { "temporary replication slot \($0.name)" } ?? "none",
            fileChecksums: Self.fileChecksums)
        switch chain {
        case .full(let reason): evidence.fullBackupReason = reason
        case .incremental(let link, _): evidence.incremental = link
        }
        return evidence
    }

    /// backup_manifest's per-file checksums: CRC32C, PostgreSQL's default. It cross-checks the tar
    /// against the server's account of its files (authenticity comes from the sealed object and
    /// the signed manifest); SHA-256 would cost the server's walsender a core for the whole
    /// backup (PostgreSQL 18 without OpenSSL: 8.3 s against 0.9 s for a 1 GiB instance here).
    static let fileChecksums = "CRC32C"

    private func release() {
        slot?.drop(); slot = nil
        passFile = nil
    }

    func close() { upstream.close(); release() }
}

/// Reads `backup_manifest` and `backup_label` as the tar passes; keeps nothing else.
final class PhysicalCaptureVisitor: TarVisitor {
    /// The largest backup_manifest kept for its clear copy (one line per file: a few MiB for
    /// thousands of relations). A larger one gets no clear copy, and the next run a full backup.
    static let keepLimit = 32 << 20
    private var scanner: BackupManifestScanner?
    private var kept: [UInt8]?
    private(set) var manifestBytes: [UInt8]?
    private var label: [UInt8]?
    private(set) var manifest: BackupManifestScanner.Summary?
    private(set) var labelStartTime: String?

    func begin(_ entry: TarEntry) throws {
        if entry.path == "backup_manifest", entry.kind == .file {
            scanner = BackupManifestScanner(onFile: nil)
            kept = entry.size <= Int64(Self.keepLimit) ? [] : nil
            if let size = kept.map({ _ in entry.size }) { kept!.reserveCapacity(Int(size)) }
        }
        if entry.path == "backup_label", entry.kind == .file { label = [] }
    }

    func data(_ bytes: ArraySlice<UInt8>) throws {
        try scanner?.consume(bytes)
        if kept != nil { kept! += bytes }
        if label != nil, label!.count < 64 << 10 { label! += bytes.prefix((64 << 10) - label!.count) }
    }

    func end(_ entry: TarEntry) throws {
        if let scanner { manifest = try scanner.finish(); self.scanner = nil; manifestBytes = kept; kept = nil }
        if let label {
            let text = String(decoding: label, as: UTF8.self)
            labelStartTime = text.split(separator: "\n").first { $0.hasPrefix("START TIME: ") }.map { String($0.dropFirst("START TIME: ".count)) }
            self.label = nil
        }
    }
}

/// PostgreSQL's `backup_manifest`, read line by line as it streams (pg_basebackup writes one file
/// per line), so a manifest of any size costs one line of memory. Checks the manifest's own
/// SHA-256 (`Manifest-Checksum`, over every byte before that line) and hands each file entry to
/// `onFile`.
final class BackupManifestScanner {
    struct FileEntry { var path: String; var size: Int64; var algorithm: String; var checksum: String }
    struct WALRange: Equatable { var timeline: Int; var start: String; var end: String }
    struct Summary {
        var version: Int
        var systemIdentifier: String?
        var walRanges: [WALRange]
        var files: Int
        var sha256: String
        var size: Int64
    }

    static let lineLimit = 1 << 20
    private var line: [UInt8] = []
    private let whole = SHA256Hasher()
    private let beforeChecksum = SHA256Hasher()
    private var size: Int64 = 0
    private var version: Int?
    private var systemIdentifier: String?
    private var walRanges: [WALRange] = []
    private var files = 0
    private var declaredChecksum: String?
    private let onFile: ((FileEntry) throws -> Void)?

    init(onFile: ((FileEntry) throws -> Void)?) { self.onFile = onFile }

    func consume(_ bytes: ArraySlice<UInt8>) throws {
        whole.update(Array(bytes))
        size += Int64(bytes.count)
        var start = bytes.startIndex
        while let newline = bytes[start...].firstIndex(of: 0x0A) {
            line += bytes[start...newline]
            try handleLine()
            start = newline + 1
        }
        line += bytes[start...]
        guard line.count <= Self.lineLimit else { throw CNBackupError(.integrity, "backup_manifest has a line longer than \(Self.lineLimit) bytes") }
    }

    func finish() throws -> Summary {
        if !line.isEmpty { try handleLine() }
        guard let version else { throw CNBackupError(.integrity, "backup_manifest does not start with PostgreSQL-Backup-Manifest-Version") }
        guard let declaredChecksum else { throw CNBackupError(.integrity, "backup_manifest has no Manifest-Checksum: it was cut") }
        guard beforeChecksum.finalize().hex == declaredChecksum.lowercased() else {
            throw CNBackupError(.integrity, "backup_manifest's Manifest-Checksum does not match its content: it is damaged")
        }
        return Summary(version: version, systemIdentifier: systemIdentifier, walRanges: walRanges, files: files,
                       sha256: whole.finalize().hex, size: size)
    }

    private func handleLine() throws {
        defer { line.removeAll(keepingCapacity: true) }
        let text = String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        if text.hasPrefix("\"Manifest-Checksum\"") {
            guard declaredChecksum == nil else { throw CNBackupError(.integrity, "backup_manifest has two Manifest-Checksum lines") }
            declaredChecksum = Self.value(of: text).trimmingCharacters(in: CharacterSet(charactersIn: "\"}"))
            return
        }
        guard declaredChecksum == nil else {
            if text.isEmpty { return }
            throw CNBackupError(.integrity, "backup_manifest has content after its Manifest-Checksum")
        }
        beforeChecksum.update(line)
        if text.hasPrefix("{ \"PostgreSQL-Backup-Manifest-Version\"") {
            version = Int(Self.value(of: text).trimmingCharacters(in: CharacterSet(charactersIn: ", ")))
        } else if text.hasPrefix("\"System-Identifier\"") {
            systemIdentifier = Self.value(of: text).trimmingCharacters(in: CharacterSet(charactersIn: ", "))
        } else if text.hasPrefix("{ \"Path\"") || text.hasPrefix("{ \"Encoded-Path\"") || text.hasPrefix("{ \"Timeline\"") {
            var json = text
            if json.hasSuffix(",") { json.removeLast() }
            guard let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] else {
                throw CNBackupError(.integrity, "backup_manifest has a line that is not JSON: \(text.prefix(200))")
            }
            if text.hasPrefix("{ \"Timeline\"") {
                guard let timeline = (object["Timeline"] as? NSNumber)?.intValue, let start = object["Start-LSN"] as? String,
                      let end = object["End-LSN"] as? String else {
                    throw CNBackupError(.integrity, "backup_manifest has a WAL range without Timeline, Start-LSN and End-LSN")
                }
                walRanges.append(WALRange(timeline: timeline, start: start, end: end))
                return
            }
            let path: String
            if let plain = object["Path"] as? String { path = plain } else if let hex = object["Encoded-Path"] as? String, let bytes = [UInt8](hex: hex) {
                path = String(decoding: bytes, as: UTF8.self)
            } else {
                throw CNBackupError(.integrity, "backup_manifest has a file entry without a path")
            }
            guard let size = (object["Size"] as? NSNumber)?.int64Value else {
                throw CNBackupError(.integrity, "backup_manifest's entry for \(path) has no size")
            }
            files += 1
            try onFile?(FileEntry(path: path, size: size, algorithm: object["Checksum-Algorithm"] as? String ?? "NONE",
                                  checksum: (object["Checksum"] as? String ?? "").lowercased()))
        }
    }

    private static func value(of text: String) -> String {
        guard let colon = text.firstIndex(of: ":") else { return "" }
        return text[text.index(after: colon)...].trimmingCharacters(in: .whitespaces)
    }
}

/// A temporary physical replication slot, held by a psql session in replication mode whose
/// standard input only this process holds (see `PhysicalCaptureStream`).
final class TemporarySlot {
    let name: String
    private let child: ChildProcess
    private var dropped = false

    init(pg: PostgresSourceDefinition, psql: String, environment: [String: String], timeout: TimeInterval = 60,
         cancellation: Cancellation? = nil) throws {
        name = "cnbackup_" + (0..<8).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
        child = try ChildProcess(arguments: [psql, "-X", "-w", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-d", "replication=true"],
                                 environment: ChildProcess.environment(adding: environment), inputPipe: true)
        do {
            try writeFully(fd: child.standardInput!, Array("CREATE_REPLICATION_SLOT \(name) TEMPORARY PHYSICAL RESERVE_WAL;\n".utf8),
                           what: "psql")
            // The slot exists once psql printed its row (slot name first).
            let row = Array("\(name)|".utf8)
            _ = try child.readAnswer(
                timeout: timeout, cancellation: cancellation, what: "creating the temporary replication slot",
                until: { $0.firstRange(of: row) != nil },
                timedOut: { CNBackupError(.capture, "the server did not create the replication slot within \(Int(timeout)) s") },
                closed: { CNBackupError(.capture,
                    "cannot create a temporary replication slot on \(pg.host):\(pg.port): the user needs the REPLICATION attribute, a `host replication \(pg.user) ...` line in pg_hba.conf, and a free max_wal_senders and max_replication_slots entry",
                    cause: $0) })
        } catch {
            drop()
            throw error
        }
    }

    /// Ends the session, and with it the slot.
    func drop() {
        guard !dropped else { return }
        dropped = true
        if let input = child.standardInput { close(input) }
        _ = child.stop(grace: 10)
        if let output = child.standardOutput { close(output) }
        if let errors = child.standardError { close(errors) }
    }

    deinit { drop() }
}

extension PostgresSourceDefinition {
    /// Starts a physical capture (see `PhysicalCaptureStream`), enforcing the replica rule for a
    /// participant.
    func openPhysical(role: ComponentRole, component: String, epoch: Epoch, context: CaptureContext, logger: Logger? = nil) throws -> PhysicalCaptureStream {
        let passFile = try makePassFile()
        let env = childEnvironment(passFile: passFile)
        let query = "select to_char(now() at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), pg_is_in_recovery(), "
            + "coalesce(to_char(pg_last_xact_replay_timestamp() at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), ''), "
            + "current_setting('server_version'), (select system_identifier from pg_control_system()), "
            + "(select timeline_id from pg_control_checkpoint()), coalesce(current_setting('summarize_wal', true), '')"
        let fields = try connection.query(query, passFile: passFile).split(separator: "|", omittingEmptySubsequences: false).map(String.init)
        guard fields.count == 7 else { throw CNBackupError(.capture, "unexpected answer from \(host):\(port) to the evidence query") }
        guard let major = PostgresClients.majorVersion(in: fields[3]) else {
            throw CNBackupError(.capture, "\(host):\(port) reports server version \"\(fields[3])\", which cnbackup cannot read")
        }
        let before = PhysicalCaptureStream.Before(serverNow: fields[0], isReplica: fields[1] == "t",
                                                  replayTimestamp: fields[2].isEmpty ? nil : fields[2], serverVersion: fields[3],
                                                  systemIdentifier: fields[4])
        if role == .participant, before.isReplica {
            guard let replay = before.replayTimestamp.flatMap(Timestamp.parse), let apps = context.latestAppsSnapshot, replay > apps else {
                throw CNBackupError(.capture,
                    "the participant's instance is read from a replica whose last replayed transaction (\(before.replayTimestamp ?? "none")) is not later than the apps snapshot: back it up from the primary, or wait for the replica")
            }
        }
        // pg_basebackup reads older servers but not newer ones; the closest match is taken.
        let folder = try PostgresClients.folder(for: "pg_basebackup", atLeast: major, binDirectory: binDirectory,
                                                what: "the PostgreSQL \(major) server at \(host):\(port)")
        let version = String(decoding: try ChildProcessStream(arguments: ["\(folder)/pg_basebackup", "--version"], environment: env)
            .readAll(limit: 4096), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        var chain = PhysicalCaptureStream.ChainStart.full(reason: nil)
        if let policy = incremental {
            let server = PhysicalServerState(systemIdentifier: fields[4], timeline: Int(fields[5]) ?? -1, major: major,
                                             summarizeWAL: fields[6] == "on")
            switch context.chains?.prepare(component: component, epoch: epoch, server: server, policy: policy)
                ?? .full(reason: "the run cannot read earlier sets: a full backup is taken", expected: false) {
            case .incremental(let link, let file):
                chain = .incremental(link, parentManifest: file)
                logger?.info("incremental backup", metadata: ["component": "\(component)", "parent": "\(link.parentSetId)",
                                                              "position": "\(link.position)", "full": "\(link.fullSetId)"])
            case .full(let reason, let expected):
                chain = .full(reason: reason)
                if expected {
                    logger?.info("full backup", metadata: ["component": "\(component)", "reason": "\(reason)"])
                } else {
                    logger?.warning("full backup instead of an incremental", metadata: ["component": "\(component)", "reason": "\(reason)"])
                }
            }
        }
        let slot = try TemporarySlot(pg: self, psql: tool("psql"), environment: env, cancellation: context.cancellation)
        var arguments = ["\(folder)/pg_basebackup", "-D", "-", "-Ft", "-X", "fetch", "--no-password", "--manifest-checksums=\(PhysicalCaptureStream.fileChecksums)",
                         "--checkpoint=fast", "--label=cnbackup"]
        if case .incremental(_, let file) = chain { arguments.append("--incremental=\(file.path)") }
        return try PhysicalCaptureStream(pg: self, arguments: arguments, environment: env, passFile: passFile, slot: slot,
                                         before: before, toolVersion: version, chain: chain, cancellation: context.cancellation)
    }
}

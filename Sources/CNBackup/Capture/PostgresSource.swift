import Foundation
import CNBackupCore
import CNBackupStorage

/// A Postgres instance to dump, one component per database (pg_dump custom format, no
/// compression of its own: zstd does that), plus optionally its roles (`pg_dumpall --globals-only
/// --no-role-passwords`) so a fresh instance can take the restore.
public struct PostgresSourceDefinition: Sendable, Equatable {
    public var host: String
    public var port: Int
    public var user: String
    /// A file holding only the password (a Kubernetes secret); nil uses `PGPASSFILE` from `env`.
    public var passwordFile: String?
    public var databases: [String]
    public var globals: Bool
    public var lockWaitTimeout: String
    public var sslMode: String?
    /// Where pg_dump, pg_dumpall and psql are; nil looks them up on PATH.
    public var binDirectory: String?
    public var environment: [String: String]
    /// `dump` (pg_dump per database) or `physical` (one pg_basebackup of the whole instance).
    public var method: PostgresMethod = .dump
    /// With `method: physical`: take incrementals against the previous backup (PostgreSQL 17+ with
    /// `summarize_wal = on`); nil takes a full backup every run.
    public var incremental: IncrementalPolicy? = nil
    /// With `method: dump`: pg_dump workers per database sharing one exported snapshot (1: one
    /// plain pg_dump per database). See `ParallelDump`.
    public var jobs: Int = 1

    public var summary: String {
        method == .physical ? "postgres: pg_basebackup \(user)@\(host):\(port)" : "postgres: \(user)@\(host):\(port)/\(databases.joined(separator: ","))"
    }
}

/// When a physical capture takes an incremental rather than a full backup.
public struct IncrementalPolicy: Sendable, Equatable {
    /// A new full backup once the chain's full is this old (default 7 days).
    public var fullEvery: TimeInterval
    /// The most links a chain holds, the full included (default: no limit beyond `fullEvery`).
    public var maxChain: Int?

    public init(fullEvery: TimeInterval = 7 * 86_400, maxChain: Int? = nil) {
        self.fullEvery = fullEvery; self.maxChain = maxChain
    }
}

/// How a postgres capture reads the instance.
public enum PostgresMethod: String, Sendable, Equatable, CaseIterable {
    /// pg_dump per database (plus the roles with `globals`): logical, restorable into any newer server.
    case dump
    /// pg_basebackup of the whole instance, with its WAL: restores to a data directory of the same major version.
    case physical
}

/// Keeps a password for libpq in a private temporary pgpass file (mode 0600 in a 0700 folder),
/// so it never appears in a process's arguments or environment; removed when released.
final class TemporaryPassFile {
    let path: String
    private let directory: String

    init(host: String, port: Int, user: String, passwordFile: String) throws {
        guard var data = FileManager.default.contents(atPath: passwordFile).map(Array.init) else {
            throw CNBackupError(.invalidInput, "cannot read the password file \(passwordFile): check the path and the secret's mount")
        }
        defer { wipe(&data) }
        while let last = data.last, last == 0x0A || last == 0x0D { data.removeLast() }
        Redaction.register(String(decoding: data, as: UTF8.self))
        // pgpass fields escape ':' and '\'.
        func escape(_ bytes: [UInt8]) -> [UInt8] {
            bytes.flatMap { $0 == 0x3A || $0 == 0x5C ? [0x5C, $0] : [$0] }
        }
        var line = escape(Array(host.utf8)) + Array(":\(port):*:".utf8) + escape(Array(user.utf8)) + [0x3A] + escape(data) + [0x0A]
        defer { wipe(&line) }
        let template = NSTemporaryDirectory() + "cnbackup-pg-XXXXXX"
        var buffer = Array(template.utf8CString)
        guard let made = mkdtemp(&buffer) else { throw CNBackupError(.io, "cannot create a private temporary folder") }
        directory = String(cString: made)
        path = directory + "/pgpass"
        LastResort.register(file: path, inPrivateFolder: true)
        do {
            try KeyFile.writeSecretFile(path: path, contents: line, what: "pgpass file")
        } catch {
            LastResort.unregister(file: path); rmdir(directory)
            throw error
        }
    }

    deinit {
        // Overwrite before unlinking: the password should not linger in the file system's free blocks.
        if let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.intValue {
            let fd = open(path, O_WRONLY)
            if fd >= 0 { try? writeFully(fd: fd, [UInt8](repeating: 0, count: size), what: "pgpass"); fsync(fd); close(fd) }
        }
        unlink(path)
        rmdir(directory)
        LastResort.unregister(file: path)
    }
}

extension PostgresSourceDefinition {
    func tool(_ name: String) -> String { binDirectory.map { "\($0)/\(name)" } ?? name }

    /// The server's major version, asked with psql (any psql talks to any server).
    func serverMajorVersion(database: String, passFile: TemporaryPassFile?) throws -> Int {
        let answer = try String(decoding: ChildProcessStream(arguments: [tool("psql"), "-X", "-w", "-A", "-t", "-d", database, "-c", "show server_version"],
                                                             environment: childEnvironment(passFile: passFile)).readAll(limit: 4096), as: UTF8.self)
        guard let major = PostgresClients.majorVersion(in: answer.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw CNBackupError(.capture, "unexpected answer from \(host):\(port) to `show server_version`")
        }
        return major
    }

    /// The folder of the client tools for a server of `major` (see `PostgresClients`).
    func clientFolder(serverMajor major: Int) throws -> String {
        try PostgresClients.folder(for: "pg_dump", atLeast: major, binDirectory: binDirectory,
                                   what: "the PostgreSQL \(major) server at \(host):\(port)")
    }

    /// libpq settings for a child: connection by variables, the password by a pgpass file.
    func childEnvironment(passFile: TemporaryPassFile?) -> [String: String] {
        var env = environment
        env["PGHOST"] = host
        env["PGPORT"] = "\(port)"
        env["PGUSER"] = user
        env["PGAPPNAME"] = "cnbackup"
        env["PGCONNECT_TIMEOUT"] = env["PGCONNECT_TIMEOUT"] ?? "30"
        if let sslMode { env["PGSSLMODE"] = sslMode }
        if let passFile { env["PGPASSFILE"] = passFile.path }
        return env
    }

    func makePassFile() throws -> TemporaryPassFile? {
        try passwordFile.map { try TemporaryPassFile(host: host, port: port, user: user, passwordFile: $0) }
    }

    /// Reads the server's clock, role and version, picks the client tools for that version, and
    /// records pg_dump's version. Returns the evidence and the tools' folder.
    func evidence(database: String, passFile: TemporaryPassFile?) throws -> (PostgresEvidence, clientFolder: String) {
        let query = "select to_char(now() at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), pg_is_in_recovery(), "
            + "coalesce(to_char(pg_last_xact_replay_timestamp() at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), ''), "
            + "current_setting('server_version')"
        let env = childEnvironment(passFile: passFile)
        let answer = try String(decoding: ChildProcessStream(arguments: [tool("psql"), "-X", "-w", "-A", "-t", "-F", "|", "-d", database, "-c", query],
                                                             environment: env).readAll(limit: 4096), as: UTF8.self)
        let fields = answer.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "|", omittingEmptySubsequences: false).map(String.init)
        guard fields.count == 4 else { throw CNBackupError(.capture, "unexpected answer from \(host):\(port) to the evidence query") }
        guard let serverMajor = PostgresClients.majorVersion(in: fields[3]) else {
            throw CNBackupError(.capture, "\(host):\(port) reports server version \"\(fields[3])\", which cnbackup cannot read")
        }
        let folder = try clientFolder(serverMajor: serverMajor)
        let version = try String(decoding: ChildProcessStream(arguments: ["\(folder)/pg_dump", "--version"], environment: env).readAll(limit: 4096), as: UTF8.self)
        return (PostgresEvidence(serverNowBeforeSnapshot: fields[0], isReplica: fields[1] == "t",
                                replayTimestamp: fields[2].isEmpty ? nil : fields[2], serverVersion: fields[3],
                                pgDumpVersion: version.trimmingCharacters(in: .whitespacesAndNewlines)), folder)
    }

    func dumpArguments(database: String, clientFolder: String) -> [String] {
        ["\(clientFolder)/pg_dump", "--format=custom", "--compress=0", "--lock-wait-timeout=\(lockWaitTimeout)", "--no-password", "--dbname=\(database)"]
    }

    func globalsArguments(clientFolder: String) -> [String] {
        ["\(clientFolder)/pg_dumpall", "--globals-only", "--no-role-passwords", "--no-password"]
    }
}

import Foundation
import CNBackupCore
import CNBackupProcess

/// Where a drill restores: a server it was pointed at (`--pg-host`: uniquely named databases,
/// dropped afterwards), or a throwaway PostgreSQL instance it starts itself (initdb of the
/// matching major version, on a free loopback port, in a private temporary folder, as an
/// unprivileged user when it runs as root), stopped and removed afterwards. Both are undone
/// however the drill ends; a throwaway instance's process group and folder are registered with
/// `LastResort`, so a signal that ends the process removes them too.
public final class ScratchPostgres: @unchecked Sendable {
    // @unchecked: used by one drill on one thread; `LastResort` holds what a signal must undo.
    public let host: String
    public private(set) var port: Int = 0
    public let user: String
    public let passwordFile: String?
    /// Folder of the client tools that talk to it (psql, createdb, dropdb, pg_restore): nil for PATH.
    public let binDirectory: String?
    public let isThrowaway: Bool
    /// `server_version` as the server reports it.
    public private(set) var serverVersion = ""
    private let folder: String?
    private var server: ChildProcess?
    private var created: [String] = []
    /// On a server the drill was pointed at: each database it made, dropped by `LastResort` if the
    /// process ends at once, with a pgpass file held for that as long as the server is in use.
    private var pending: [String: CreatedDatabase] = [:]
    private var heldPassFile: TemporaryPassFile?
    private let runId: String
    private var counter = 0
    /// Restore roles it made (see `newRestoreRole`), dropped with their databases.
    private var roles: [String] = []
    /// Private folder for the restore roles' password files.
    private var roleFolder: String?

    /// A server the drill was pointed at.
    public init(host: String, port: Int, user: String, passwordFile: String?, binDirectory: String?) throws {
        self.host = host; self.port = port; self.user = user; self.passwordFile = passwordFile
        self.binDirectory = binDirectory; isThrowaway = false; folder = nil
        runId = (try randomBytes(4)).hex
        serverVersion = try query("show server_version", database: "postgres").trimmingCharacters(in: .whitespacesAndNewlines)
        heldPassFile = try connection.makePassFile()
    }

    /// Starts a throwaway instance of at least PostgreSQL `major` (the oldest found that is).
    public init(major: Int, binDirectory: String?, allowSameUser: Bool = false) throws {
        let tools = try PostgresClients.folder(for: "initdb", atLeast: major, binDirectory: binDirectory,
                                               what: "a throwaway PostgreSQL \(major) instance for the drill")
        guard FileManager.default.isExecutableFile(atPath: tools + "/postgres") else {
            throw CNBackupError(.invalidInput, "\(tools) has initdb but no postgres server: install the PostgreSQL \(major) server or pass --pg-bin")
        }
        // The client tools are looked up on their own: a server installed without psql beside it
        // (/usr/local/bin/postgres) must fail here, not as a server that "did not start".
        let clients = try PostgresClients.folder(for: "psql", atLeast: major, binDirectory: binDirectory,
                                                 what: "the throwaway PostgreSQL \(major) instance's clients")
        let folder = try PrivateFolder.create(prefix: "cnbackup-drill-")
        LastResort.register(directory: folder)
        self.folder = folder
        host = "127.0.0.1"; user = "cnbackup_drill"; self.binDirectory = clients; isThrowaway = true
        runId = (try randomBytes(4)).hex
        passwordFile = folder + "/password"
        var started = false
        defer { if !started { Self.removeFolder(folder) } }

        let owner = try Self.unprivilegedOwner(allowSameUser: allowSameUser)
        if let owner { guard chown(folder, owner.uid, owner.gid) == 0 else { throw CNBackupError(.io, "cannot hand \(folder) to uid \(owner.uid)") } }
        let password = (try randomBytes(24)).hex
        try KeyFile.writeSecretFile(path: passwordFile!, contents: Array(password.utf8), what: "password file")
        Redaction.register(password)
        if let owner { chown(passwordFile!, owner.uid, owner.gid) }

        func asOwner(_ arguments: [String]) -> [String] { Self.command(arguments, as: owner, in: folder) }
        let environment = ChildProcess.environment(adding: ["LANG": "C", "LC_ALL": "C"])
        let initLog = try ChildProcessStream(arguments: asOwner([tools + "/initdb", "-D", folder + "/data", "-U", user, "--auth=scram-sha-256",
                                                                 "--pwfile=" + passwordFile!, "-E", "UTF8", "--locale=C", "--no-sync"]),
                                             environment: environment)
        _ = try initLog.readAll(limit: 16 << 20)

        var lastError = ""
        for _ in 0..<5 {
            let port = try Self.freeLoopbackPort()
            let logPath = folder + "/server.log"
            let logFd = open(logPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
            guard logFd >= 0 else { throw CNBackupError(.io, "cannot create \(logPath)") }
            let child = try ChildProcess(arguments: asOwner([tools + "/postgres", "-D", folder + "/data", "-p", "\(port)",
                                                             "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
                                                             "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                                                             "-c", "logging_collector=off"]),
                                         environment: environment, output: .file(logFd), error: .file(logFd))
            close(logFd)
            self.port = port
            server = child
            if Self.waitReady(check: { (try? self.query("select 1", database: "postgres")) != nil }, child: child, seconds: 60) {
                serverVersion = (try? query("show server_version", database: "postgres"))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
                started = true
                return
            }
            child.stop(grace: 10)
            server = nil
            lastError = String(((try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "").suffix(1500))
            if !lastError.contains("Address already in use") && !lastError.contains("could not bind") { break }
        }
        throw CNBackupError(.capture, "the throwaway PostgreSQL \(major) instance did not start", cause: lastError)
    }

    /// Runs `arguments` from inside `folder` (an unprivileged user may not read the caller's
    /// working directory), as `owner` when given (cnbackup runs as root).
    package static func command(_ arguments: [String], as owner: (name: String, uid: uid_t, gid: gid_t)?, in folder: String) -> [String] {
        var prefix: [String] = []
        if let owner {
            prefix = FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv") || FileManager.default.isExecutableFile(atPath: "/bin/setpriv")
                ? ["setpriv", "--reuid=\(owner.uid)", "--regid=\(owner.gid)", "--clear-groups", "--"]
                : ["runuser", "-u", owner.name, "--"]
        }
        return prefix + ["/bin/sh", "-c", "cd \"$1\" && shift && exec \"$@\"", "sh", folder] + arguments
    }

    /// Polls `check` until it holds, the child ends or `seconds` pass.
    package static func waitReady(check: () -> Bool, child: ChildProcess, seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if check() { return true }
            var status: Int32 = 0
            if waitpid(child.pid, &status, WNOHANG) == child.pid { return false }
            usleep(200_000)
        }
        return false
    }

    /// The user a throwaway instance runs as: when cnbackup runs as root, `postgres`, else `nobody`,
    /// users that cannot read cnbackup's key files (0600, root's). Otherwise the server would run
    /// as cnbackup's own user, where code from the backup could read those keys: refused unless
    /// the operator says so (`allowSameUser`).
    package static func unprivilegedOwner(allowSameUser: Bool = false) throws -> (name: String, uid: uid_t, gid: gid_t)? {
        guard geteuid() == 0 else {
            if allowSameUser { return nil }
            throw CNBackupError(.invalidInput,
                "a throwaway PostgreSQL would run as cnbackup's own user (uid \(geteuid())), where code from the backup could read cnbackup's keys: run the drill as root (it drops to the postgres user), point it at a server in another pod with --pg-host, or pass --scratch-same-user to accept that")
        }
        for name in ["postgres", "nobody"] {
            if let entry = getpwnam(name) { return (name, entry.pointee.pw_uid, entry.pointee.pw_gid) }
        }
        throw CNBackupError(.invalidInput, "cnbackup runs as root and there is no postgres or nobody user to run the throwaway PostgreSQL as")
    }

    package static func freeLoopbackPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw CNBackupError(.io, "cannot open a socket") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        guard bound == 0 else { throw CNBackupError(.io, "cannot find a free loopback port") }
        let named = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        guard named == 0 else { throw CNBackupError(.io, "cannot find a free loopback port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    package static func removeFolder(_ folder: String) {
        try? FileManager.default.removeItem(atPath: folder)
        LastResort.unregister(directory: folder)
    }

    /// How to reach the server.
    public var connection: PostgresConnection {
        PostgresConnection(host: host, port: port, user: user, passwordFile: passwordFile,
                           sslMode: isThrowaway ? "disable" : nil, binDirectory: binDirectory)
    }

    /// Runs one SQL statement and returns psql's unaligned, tuples-only output (fields split by
    /// 0x1F): as the administrator, or as `role` (with its session options) in a restored database.
    public func query(_ sql: String, database: String, as role: RestoreRole? = nil) throws -> String {
        var pg = role.map { $0.connection(like: connection) } ?? connection
        if role == nil, database != "postgres" { pg.environment["PGOPTIONS"] = RestoreRole.sessionOptions }
        let passFile = try pg.makePassFile()
        let output = try ChildProcessStream(arguments: [pg.tool("psql"), "-X", "-w", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-F", "\u{1F}",
                                                        "-d", database, "-c", sql],
                                            environment: pg.childEnvironment(passFile: passFile)).readAll(limit: 256 << 20)
        return String(decoding: output, as: UTF8.self)
    }

    /// A database name no one else uses, remembered so `finish` drops it.
    public func newDatabase(for component: String) -> String {
        counter += 1
        let clean = String(component.lowercased().map { $0.isLetter || $0.isNumber ? $0 : "_" }.prefix(30))
        let name = "cnbdrill_\(runId)_\(counter)_\(clean)"
        created.append(name)
        if !isThrowaway {
            let pg = connection
            pending[name] = CreatedDatabase(name: name, dropdb: pg.tool("dropdb"), environment: pg.childEnvironment(passFile: heldPassFile))
        }
        return name
    }

    /// A fresh login role for one restore (see `RestoreRole`): a random name and password, made by
    /// the administrator with a statement read from a private file, never from an argument.
    public func newRestoreRole() throws -> RestoreRole {
        let folder = try roleFolder ?? PrivateFolder.create(prefix: "cnbackup-drill-roles-")
        if roleFolder == nil { roleFolder = folder; LastResort.register(directory: folder) }
        counter += 1
        let name = "cnbdrill_\(runId)_r\(counter)"
        let password = (try randomBytes(24)).hex
        Redaction.register(password)
        let passwordFile = folder + "/" + name
        try KeyFile.writeSecretFile(path: passwordFile, contents: Array(password.utf8), what: "password file")
        let statement = folder + "/" + name + ".sql"
        try KeyFile.writeSecretFile(path: statement, contents: Array(
            "create role \(name) login nosuperuser nocreatedb nocreaterole noreplication nobypassrls password '\(password)';\n".utf8),
            what: "role statement")
        defer { unlink(statement) }
        let pg = connection
        let passFile = try pg.makePassFile()
        roles.append(name)
        _ = try ChildProcessStream(arguments: [pg.tool("psql"), "-X", "-w", "-q", "-v", "ON_ERROR_STOP=1", "-d", "postgres", "-f", statement],
                                   environment: pg.childEnvironment(passFile: passFile)).readAll(limit: 1 << 20)
        return try RestoreRole(name: name, passwordFile: passwordFile)
    }

    /// Drops a database it made. A clean-up that fails is reported: a drill that leaves its
    /// databases behind has not finished its work.
    public func dropDatabase(_ name: String) throws {
        let pg = connection
        let passFile = try pg.makePassFile()
        CreatedDatabase.drop(name, dropdb: pg.tool("dropdb"), environment: pg.childEnvironment(passFile: passFile))
        pending.removeValue(forKey: name)?.release()
        let left = try query("select count(*) from pg_catalog.pg_database where datname = '\(name)'", database: "postgres")
        guard left.trimmingCharacters(in: .whitespacesAndNewlines) == "0" else {
            throw CNBackupError(.io, "the drill database \(name) on \(host):\(port) could not be dropped: drop it by hand (dropdb --force \(name))")
        }
    }

    /// Drops the restore roles it made (after their databases).
    private func dropRoles() throws {
        guard !roles.isEmpty else { return }
        let statement = roles.map { "drop role if exists \($0);" }.joined(separator: " ")
        roles = []
        _ = try query(statement, database: "postgres")
    }

    /// Drops every database it made (on a server it was pointed at) or stops and removes the
    /// throwaway instance. Safe to call twice.
    @discardableResult
    public func finish() -> [String] {
        var problems: [String] = []
        if let server {
            server.stop(grace: 30)
            self.server = nil
        } else if !isThrowaway {
            for name in created {
                do { try dropDatabase(name) } catch { problems.append("\(error)") }
            }
            do { try dropRoles() } catch { problems.append("the drill's roles on \(host):\(port) could not be dropped: \(error)") }
        }
        created = []
        roles = []
        heldPassFile = nil
        if let folder { Self.removeFolder(folder) }
        if let roleFolder { Self.removeFolder(roleFolder); self.roleFolder = nil }
        return problems
    }

    deinit { finish() }
}

import Foundation
import CNBackupCore
import CNBackupStorage

/// Restores a pg_dump component into a fresh database: the authenticated dump goes to a private
/// temporary file (pg_restore's parallel mode needs a seekable file), the database is created,
/// pg_restore loads it, and the database is dropped again if anything fails, so a half-restored
/// database never stays behind. Roles come first when the set has the instance's globals.
public struct DatabaseRestorer: Sendable {
    public struct Target: Sendable {
        public var host: String
        public var port: Int
        public var user: String
        public var passwordFile: String?
        public var database: String
        public var jobs: Int
        /// pg_restore --no-owner and --no-privileges, as Splice's Postgres migration guide restores
        /// into an instance that lacks the dump's roles.
        public var noOwner: Bool
        public var noPrivileges: Bool = false
        public var globalsComponent: String?
        public var binDirectory: String?

        public init(host: String, port: Int, user: String, passwordFile: String?, database: String, jobs: Int,
                    noOwner: Bool, globalsComponent: String?, binDirectory: String?) {
            self.host = host; self.port = port; self.user = user; self.passwordFile = passwordFile; self.database = database
            self.jobs = jobs; self.noOwner = noOwner; self.globalsComponent = globalsComponent; self.binDirectory = binDirectory
        }
    }

    public let restorer: Restorer
    public init(restorer: Restorer) { self.restorer = restorer }

    public func restore(setId: String, component: String, node: String?, identities: [Identity], into target: Target) throws {
        let entry = try restorer.catalog.entry(setId: setId, node: node)
        let folder = try entry.manifest?.components.first(where: { $0.name == component })
            .flatMap { try PostgresClients.restoreFolder(for: $0, binDirectory: target.binDirectory) } ?? target.binDirectory
        let pg = PostgresSourceDefinition(host: target.host, port: target.port, user: target.user, passwordFile: target.passwordFile,
                                          databases: [target.database], globals: false, lockWaitTimeout: "60s", sslMode: nil,
                                          binDirectory: folder, environment: [:])
        let passFile = try pg.makePassFile()
        let env = pg.childEnvironment(passFile: passFile)
        let template = NSTemporaryDirectory() + "cnbackup-restore-XXXXXX"
        var buffer = Array(template.utf8CString)
        guard let made = mkdtemp(&buffer) else { throw CNBackupError(.io, "cannot create a private temporary folder") }
        let directory = String(cString: made)
        // The plaintext dump and roles: removed however this ends, a signal that ends the process included.
        for file in ["globals.sql", "dump"] { LastResort.register(file: directory + "/" + file, inPrivateFolder: true) }
        defer {
            try? FileManager.default.removeItem(atPath: directory)
            for file in ["globals.sql", "dump"] { LastResort.unregister(file: directory + "/" + file) }
        }

        func run(_ arguments: [String]) throws {
            _ = try ChildProcessStream(arguments: arguments, environment: env).readAll(limit: 16 << 20)
        }
        if let globals = target.globalsComponent {
            try restorer.restore(setId: setId, component: globals, node: node, identities: identities,
                                 to: .file(path: directory + "/globals.sql", overwrite: false))
            // Roles that exist already (the bootstrap superuser) make psql report errors; go on past them.
            try run([pg.tool("psql"), "-X", "-w", "-q", "-d", "postgres", "-f", directory + "/globals.sql"])
        }
        try restorer.restore(setId: setId, component: component, node: node, identities: identities,
                             to: .file(path: directory + "/dump", overwrite: false))
        try run([pg.tool("createdb"), "-w", target.database])
        do {
            var arguments = [pg.tool("pg_restore"), "-w", "--exit-on-error", "-d", target.database]
            if target.jobs > 1 { arguments += ["-j", "\(target.jobs)"] }
            if target.noOwner { arguments.append("--no-owner") }
            if target.noPrivileges { arguments.append("--no-privileges") }
            try run(arguments + [directory + "/dump"])
        } catch {
            try? run([pg.tool("dropdb"), "-w", "--if-exists", target.database])
            throw CNBackupError(.capture, "pg_restore into \(target.database) failed; the database was dropped again", cause: "\(error)")
        }
    }
}

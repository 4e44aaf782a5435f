import Foundation
import CNBackupCore
import CNBackupStorage
import CNBackupProcess
import CNBackupPostgres
import CNBackupCatalog

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
        /// Restore as this role (it owns the new database; `user` only creates the database and the
        /// allowed extensions), with --no-owner and --no-privileges: code in the dump then runs
        /// with no more rights than a database owner has.
        public var restoreRole: RestoreRole?

        public init(host: String, port: Int, user: String, passwordFile: String?, database: String, jobs: Int,
                    noOwner: Bool, globalsComponent: String?, binDirectory: String?) {
            self.host = host; self.port = port; self.user = user; self.passwordFile = passwordFile; self.database = database
            self.jobs = jobs; self.noOwner = noOwner; self.globalsComponent = globalsComponent; self.binDirectory = binDirectory
        }
    }

    public let restorer: Restorer
    public init(restorer: Restorer) { self.restorer = restorer }

    /// The parts of the parallel dump that `component` names (its group's name, or any part's
    /// name), index order; nil when it is no part of one. Throws when the group is incomplete.
    public static func parts(of component: String, in manifest: Manifest) throws -> [ComponentRecord]? {
        let group = manifest.components.first(where: { $0.name == component })?.part?.group ?? component
        let parts = manifest.components.filter { $0.part?.group == group }.sorted { $0.part!.index < $1.part!.index }
        guard let first = parts.first?.part else {
            if manifest.failures.contains(where: { $0.component == group }) {
                throw CNBackupError(.notFound, "the parallel dump \(group) of set \(manifest.setId) failed: none of its parts can be restored")
            }
            return nil
        }
        let complete = parts.count == first.count && parts.enumerated().allSatisfy { $0.offset == $0.element.part!.index }
            && parts.allSatisfy { $0.part!.count == first.count && $0.part!.snapshot == first.snapshot && $0.part!.database == first.database }
        guard complete, !manifest.failures.contains(where: { $0.component == group }) else {
            throw CNBackupError(.integrity,
                "the parallel dump \(group) of set \(manifest.setId) is incomplete (\(parts.count) of \(first.count) parts stored): it cannot be restored; pick a set where it is whole")
        }
        return parts
    }

    public func restore(_ set: TrustedSet, component: String, identities: [Identity], into target: Target) throws {
        if let parts = try Self.parts(of: component, in: set.manifest) {
            return try restoreParts(parts, of: set, identities: identities, into: target)
        }
        let record = try set.component(component)
        let folder = try PostgresClients.restoreFolder(forArchive: record.name, writtenBy: record.postgres?.pgDumpVersion,
                                                       binDirectory: target.binDirectory)
        try withSession(clientFolder: folder, of: set, identities: identities, into: target) { session in
            try restorer.restore(set, component: component, identities: identities,
                                 to: .file(path: session.directory + "/dump", overwrite: false))
            try session.intoNewDatabase(archives: [session.directory + "/dump"]) {
                try session.runRestore(session.restoreArguments + (target.jobs > 1 ? ["-j", "\(target.jobs)"] : []) + [session.directory + "/dump"])
            }
        }
    }

    /// What both restores share: the client tools, a private pgpass file, a private temporary
    /// folder for the plaintext (removed however this ends, a signal that ends the process
    /// included), and the instance's roles restored first when asked.
    struct Session {
        let pg: PostgresConnection
        let directory: String
        let environment: [String: String]
        /// How pg_restore connects: as the restore role when there is one, else as `pg`.
        let restoreEnvironment: [String: String]
        let target: Target

        func run(_ arguments: [String]) throws {
            _ = try ChildProcessStream(arguments: arguments, environment: environment).readAll(limit: 16 << 20)
        }

        func runRestore(_ arguments: [String]) throws {
            _ = try ChildProcessStream(arguments: arguments, environment: restoreEnvironment).readAll(limit: 16 << 20)
        }

        /// pg_restore into the target database, with the owner and privilege choices (a restore
        /// role takes neither: its database holds only what it owns).
        var restoreArguments: [String] {
            var arguments = [pg.tool("pg_restore"), "-w", "--exit-on-error", "-d", target.database]
            if target.noOwner || target.restoreRole != nil { arguments.append("--no-owner") }
            if target.noPrivileges || target.restoreRole != nil { arguments.append("--no-privileges") }
            return arguments
        }

        /// Creates the database (owned by the restore role, with the allowed extensions the
        /// archives need), runs `body`, and drops the database again if `body` fails (or, through
        /// `LastResort`, if the process ends at once while `body` runs).
        func intoNewDatabase(archives: [String], _ body: () throws -> Void) throws {
            var extensions: [String] = []
            if let role = target.restoreRole {
                try role.checkUnprivileged(on: pg)
                extensions = Array(Set(try archives.flatMap { try RestoreRole.extensions(inArchive: $0, pgRestore: pg.tool("pg_restore")) })).sorted()
                if let refused = extensions.first(where: { !RestoreRole.allowedExtensions.contains($0) }) {
                    throw CNBackupError(.invalidInput,
                        "the dump creates the extension \(refused), which only a superuser may create and cnbackup does not create for it (allowed: \(RestoreRole.allowedExtensions.sorted().joined(separator: ", "))): restore it by hand, as a superuser, from a dump you trust")
                }
            }
            let exists = try pg.query("select count(*) from pg_catalog.pg_database where datname = '\(target.database.replacingOccurrences(of: "'", with: "''"))'",
                                      passFile: try pg.makePassFile())
            guard exists == "0" else {
                throw CNBackupError(.alreadyExists,
                    "database \(target.database) already exists on \(target.host):\(target.port): a restore makes a new one; drop the old one first (dropdb --force \(target.database), once you know it holds nothing you need) or restore under another name (--to-database NAME)")
            }
            // Registered before createdb runs: the database is visible to others the moment createdb
            // commits, before this process could register it, and a signal may come in between.
            // The name was free just now, so the undo cannot drop someone else's database.
            let created = CreatedDatabase(name: target.database, dropdb: pg.tool("dropdb"), environment: environment)
            defer { created.release() }
            do {
                try run([pg.tool("createdb"), "-w"] + (target.restoreRole.map { ["--owner=" + $0.name] } ?? []) + [target.database])
            } catch {
                created.release()
                throw error
            }
            do {
                for name in extensions {
                    try run([pg.tool("psql"), "-X", "-w", "-q", "-v", "ON_ERROR_STOP=1", "-d", target.database,
                             "-c", "create extension if not exists \"\(name)\" with schema public"])
                }
                try body()
            } catch {
                try? run([pg.tool("dropdb"), "-w", "--if-exists", target.database])
                throw CNBackupError(.restore, "pg_restore into \(target.database) failed; the database was dropped again", cause: "\(error)")
            }
        }
    }

    func withSession(clientFolder: String?, of set: TrustedSet, identities: [Identity], into target: Target,
                     _ body: (Session) throws -> Void) throws {
        let pg = PostgresConnection(host: target.host, port: target.port, user: target.user, passwordFile: target.passwordFile,
                                    binDirectory: clientFolder)
        let passFile = try pg.makePassFile()
        let directory = try PrivateFolder.create(prefix: "cnbackup-restore-")
        LastResort.register(directory: directory)
        defer {
            try? FileManager.default.removeItem(atPath: directory)
            LastResort.unregister(directory: directory)
        }
        let restorePassFile = try target.restoreRole.map { try $0.connection(like: pg).makePassFile() } ?? nil
        let restoreEnvironment = target.restoreRole.map { $0.connection(like: pg).childEnvironment(passFile: restorePassFile) }
        let session = Session(pg: pg, directory: directory, environment: pg.childEnvironment(passFile: passFile),
                              restoreEnvironment: restoreEnvironment ?? pg.childEnvironment(passFile: passFile), target: target)
        if let globals = target.globalsComponent {
            try restorer.restore(set, component: globals, identities: identities,
                                 to: .file(path: directory + "/globals.sql", overwrite: false))
            // Roles that exist already (the bootstrap superuser) make psql report errors; go on past them.
            try session.run([pg.tool("psql"), "-X", "-w", "-q", "-d", "postgres", "-f", directory + "/globals.sql"])
        }
        try withExtendedLifetime((passFile, restorePassFile)) { try body(session) }
    }

    /// A parallel dump: every part to a private temporary file, then pre-data, the data parts
    /// (`jobs` pg_restore at a time), and post-data with `pg_restore -j jobs`.
    func restoreParts(_ parts: [ComponentRecord], of set: TrustedSet, identities: [Identity], into target: Target) throws {
        let folder = try parts.compactMap { try PostgresClients.restoreFolder(forArchive: $0.name, writtenBy: $0.postgres?.pgDumpVersion, binDirectory: target.binDirectory) }.first ?? target.binDirectory
        let pre = parts.first { $0.part!.section == .preData }, post = parts.first { $0.part!.section == .postData }
        let data = parts.filter { $0.part!.section == .data }
        guard let pre, let post else { throw CNBackupError(.integrity, "the parallel dump has no pre-data or post-data part") }
        try withSession(clientFolder: folder, of: set, identities: identities, into: target) { session in
            func file(_ part: ComponentRecord) -> String { session.directory + "/part-\(part.part!.index)" }
            for part in parts {
                try restorer.restore(set, component: part.name, identities: identities,
                                     to: .file(path: file(part), overwrite: false))
            }
            let base = session.restoreArguments
            try session.intoNewDatabase(archives: [file(pre)]) {
                try session.runRestore(base + [file(pre)])
                try Self.runAtMost(max(1, target.jobs), data.map { part in { try session.runRestore(base + [file(part)]) } })
                try session.runRestore(base + (target.jobs > 1 ? ["-j", "\(target.jobs)"] : []) + [file(post)])
            }
        }
    }

    /// Runs the tasks, at most `limit` at once; throws the first failure once all have ended.
    static func runAtMost(_ limit: Int, _ tasks: [() throws -> Void]) throws {
        final class State: @unchecked Sendable {
            // @unchecked: touched only under `lock`.
            let lock = NSLock(); var next = 0; var error: Error?
        }
        let state = State(), group = DispatchGroup()
        let work = UncheckedBox(tasks)
        for _ in 0..<min(limit, tasks.count) {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                while true {
                    state.lock.lock()
                    let index = state.next; state.next += 1
                    let stop = state.error != nil
                    state.lock.unlock()
                    guard index < work.value.count, !stop else { return }
                    do { try work.value[index]() } catch {
                        state.lock.lock(); if state.error == nil { state.error = error }; state.lock.unlock()
                    }
                }
            }
        }
        group.wait()
        if let error = state.error { throw error }
    }
}

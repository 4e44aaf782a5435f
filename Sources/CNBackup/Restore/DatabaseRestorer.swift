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

    public func restore(setId: String, component: String, node: String?, identities: [Identity], into target: Target) throws {
        let entry = try restorer.catalog.entry(setId: setId, node: node)
        if let manifest = entry.manifest, entry.isTrusted, let parts = try Self.parts(of: component, in: manifest) {
            return try restoreParts(parts, setId: setId, node: node, identities: identities, into: target)
        }
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
        LastResort.register(directory: directory)
        defer {
            try? FileManager.default.removeItem(atPath: directory)
            LastResort.unregister(directory: directory)
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

    /// A parallel dump: every part to a private temporary file, then pre-data, the data parts
    /// (`jobs` pg_restore at a time), and post-data with `pg_restore -j jobs`.
    func restoreParts(_ parts: [ComponentRecord], setId: String, node: String?, identities: [Identity], into target: Target) throws {
        let folder = try parts.compactMap { try PostgresClients.restoreFolder(for: $0, binDirectory: target.binDirectory) }.first ?? target.binDirectory
        let pg = PostgresSourceDefinition(host: target.host, port: target.port, user: target.user, passwordFile: target.passwordFile,
                                          databases: [target.database], globals: false, lockWaitTimeout: "60s", sslMode: nil,
                                          binDirectory: folder, environment: [:])
        let passFile = try pg.makePassFile()
        let env = pg.childEnvironment(passFile: passFile)
        let template = NSTemporaryDirectory() + "cnbackup-restore-XXXXXX"
        var buffer = Array(template.utf8CString)
        guard let made = mkdtemp(&buffer) else { throw CNBackupError(.io, "cannot create a private temporary folder") }
        let directory = String(cString: made)
        // The plaintext parts and roles: removed however this ends, a signal that ends the process included.
        LastResort.register(directory: directory)
        defer {
            try? FileManager.default.removeItem(atPath: directory)
            LastResort.unregister(directory: directory)
        }
        func run(_ arguments: [String]) throws {
            _ = try ChildProcessStream(arguments: arguments, environment: env).readAll(limit: 16 << 20)
        }
        if let globals = target.globalsComponent {
            try restorer.restore(setId: setId, component: globals, node: node, identities: identities,
                                 to: .file(path: directory + "/globals.sql", overwrite: false))
            try run([pg.tool("psql"), "-X", "-w", "-q", "-d", "postgres", "-f", directory + "/globals.sql"])
        }
        for part in parts {
            try restorer.restore(setId: setId, component: part.name, node: node, identities: identities,
                                 to: .file(path: directory + "/part-\(part.part!.index)", overwrite: false))
        }
        var base = [pg.tool("pg_restore"), "-w", "--exit-on-error", "-d", target.database]
        if target.noOwner { base.append("--no-owner") }
        if target.noPrivileges { base.append("--no-privileges") }
        let pre = parts.first { $0.part!.section == "pre-data" }, post = parts.first { $0.part!.section == "post-data" }
        let data = parts.filter { $0.part!.section == "data" }
        guard let pre, let post else { throw CNBackupError(.integrity, "the parallel dump has no pre-data or post-data part") }
        try run([pg.tool("createdb"), "-w", target.database])
        do {
            try run(base + [directory + "/part-\(pre.part!.index)"])
            try Self.runAtMost(max(1, target.jobs), data.map { part in { try run(base + [directory + "/part-\(part.part!.index)"]) } })
            try run(base + (target.jobs > 1 ? ["-j", "\(target.jobs)"] : []) + [directory + "/part-\(post.part!.index)"])
        } catch {
            try? run([pg.tool("dropdb"), "-w", "--if-exists", target.database])
            throw CNBackupError(.capture, "pg_restore into \(target.database) failed; the database was dropped again", cause: "\(error)")
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

import Foundation
import CNBackupCore
import CNBackupStorage
import CNBackupProcess
import CNBackupPostgres
import CNBackupCatalog

extension Driller {
    /// A physical component: restored to a data directory in a private folder (pg_verifybackup
    /// checks it), a server of its major version started on it (only a socket in that folder,
    /// trust for local connections), every database's rows counted and compared with the
    /// previous drill (a base backup carries no per-table counts).
    func drillPhysical(_ record: ComponentRecord, of set: TrustedSet, previous: DrillReceipt?,
                       options: DrillOptions, log: (String) -> Void, versions: inout Set<String>) -> DrillReceipt.Component {
        var component = DrillReceipt.Component(name: record.name, role: record.role.rawValue, status: .failed, seconds: 0, rowCounts: nil,
                                               comparedWith: .none, mismatches: [], reason: nil, checked: [])
        guard let folder = try? PrivateFolder.create(prefix: "cnbackup-drill-") else { component.reason = "cannot create a private temporary folder"; return component }
        LastResort.register(directory: folder)
        var server: ChildProcess?
        defer {
            server?.stop(grace: 30)
            ScratchPostgres.removeFolder(folder)
        }
        do {
            let evidence = record.physical!
            guard let major = PostgresClients.majorVersion(in: evidence.serverVersion) else {
                throw CNBackupError(.integrity, "the manifest's server version \(evidence.serverVersion) cannot be read")
            }
            guard let tools = PostgresClients.candidates(tool: "postgres", binDirectory: options.pgBinDirectory).first(where: { $0.major == major })?.folder else {
                throw CNBackupError(.invalidInput, "a PostgreSQL \(major) server is needed to start the base backup \(record.name): install it or pass --pg-bin")
            }
            let t0 = Date()
            log("restoring \(record.name) to a data directory")
            let outcome = try PhysicalRestorer(catalog: catalog).restore(set, component: record.name,
                                                                         identities: options.identities, directory: folder + "/data",
                                                                         binDirectory: options.pgBinDirectory)
            component.checked.append(outcome.verification)
            // The backup's configuration is the source's (or a writer's): none of it runs here.
            let removed = try RestoredConfiguration.neutralize(dataDirectory: folder + "/data")
            component.checked.append("configuration replaced by cnbackup's" + (removed.isEmpty ? "" : "; removed: " + removed.joined(separator: ", ")))
            let owner = try ScratchPostgres.unprivilegedOwner(allowSameUser: options.scratchSameUser)
            try KeyFile.writeSecretFile(path: folder + "/hba.conf", contents: Array("local all all trust\n".utf8), what: "pg_hba file")
            try KeyFile.writeSecretFile(path: folder + "/ident.conf", contents: [], what: "pg_ident file")
            if let owner {
                _ = try ChildProcessStream(arguments: ["chown", "-R", "\(owner.uid):\(owner.gid)", folder]).readAll(limit: 1 << 20)
            }
            let port = try ScratchPostgres.freeLoopbackPort()
            let logFd = open(folder + "/server.log", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
            guard logFd >= 0 else { throw CNBackupError(.io, "cannot create the server's log") }
            if let owner { fchown(logFd, owner.uid, owner.gid) }
            let child = try ChildProcess(arguments: ScratchPostgres.command([tools + "/postgres", "-D", folder + "/data", "-p", "\(port)",
                                                                             "-c", "listen_addresses=", "-c", "unix_socket_directories=" + folder,
                                                                             "-c", "hba_file=" + folder + "/hba.conf", "-c", "ident_file=" + folder + "/ident.conf",
                                                                             "-c", "fsync=off", "-c", "logging_collector=off"] + RestoredConfiguration.serverOverrides,
                                                                            as: owner, in: folder),
                                         environment: ChildProcess.environment(adding: ["LANG": "C"]), output: .file(logFd), error: .file(logFd))
            close(logFd)
            server = child
            // psql on its own: a server installed without psql beside it fails here, not as "did not start".
            let clients = try PostgresClients.folder(for: "psql", atLeast: major, binDirectory: options.pgBinDirectory,
                                                     what: "the restored PostgreSQL \(major) server's clients")
            let pg = PostgresConnection(host: folder, port: port, user: options.physicalUser, binDirectory: clients,
                                        environment: ["PGOPTIONS": RestoredConfiguration.superuserSessionOptions])
            func query(_ sql: String, _ database: String) throws -> String {
                String(decoding: try ChildProcessStream(arguments: [pg.tool("psql"), "-X", "-w", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-F", "\u{1F}",
                                                                    "-d", database, "-c", sql], environment: pg.childEnvironment(passFile: nil)).readAll(limit: 256 << 20),
                       as: UTF8.self)
            }
            guard ScratchPostgres.waitReady(check: { (try? query("select 1", "postgres")) != nil }, child: child, seconds: 300) else {
                let tail = ((try? String(contentsOfFile: folder + "/server.log", encoding: .utf8)) ?? "").suffix(1500)
                throw CNBackupError(.capture, "the restored data directory of \(record.name) did not start (or has no role \(options.physicalUser))", cause: String(tail))
            }
            component.seconds = Date().timeIntervalSince(t0)
            versions.insert(try query("show server_version", "postgres").trimmingCharacters(in: .whitespacesAndNewlines))
            component.checked.append("PostgreSQL \(major) started on it and reached consistency")
            var counts: [String: Int64] = [:]
            let databases = try query("select datname from pg_database where datallowconn and not datistemplate", "postgres")
                .split(separator: "\n").map(String.init)
            let scratch = PhysicalQuery(run: query)
            for database in databases {
                for (table, rows) in try scratch.countRows(database) { counts[database + "/" + table] = rows }
            }
            component.rowCounts = counts
            compare(counts, record: record, previous: previous, into: &component)
            component.status = component.mismatches.isEmpty ? .passed : .failed
            if !component.mismatches.isEmpty { component.reason = "\(component.mismatches.count) table(s) differ from the previous drill" }
        } catch {
            component.reason = Driller.receiptText(error)
        }
        return component
    }
}

struct PhysicalQuery {
    let run: (String, String) throws -> String
    func countRows(_ database: String) throws -> [String: Int64] {
        var counts: [String: Int64] = [:]
        for line in try run(Driller.countSQL, database).split(separator: "\n") {
            let fields = line.split(separator: "\u{1F}", omittingEmptySubsequences: false)
            if fields.count == 2, let rows = Int64(fields[1]) { counts[String(fields[0])] = rows }
        }
        return counts
    }
}

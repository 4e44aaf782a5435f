import Foundation
import CNBackupCore
import CNBackupStorage
import CNBackupPostgres
import CNBackupCatalog

/// Where a drill restores.
public enum DrillScratch: Sendable {
    /// Throwaway instances the drill starts (tools from `binDirectory` alone when given).
    case throwaway(binDirectory: String?)
    /// A server the drill was pointed at: databases are created there and dropped afterwards.
    case server(host: String, port: Int, user: String, passwordFile: String?, binDirectory: String?)
}

public struct DrillOptions: Sendable {
    public var identities: [Identity]
    public var scratch: DrillScratch
    /// Folder of pg_verifybackup and the server for physical components (nil: PATH, /usr/lib/postgresql).
    public var pgBinDirectory: String?
    public var drillKey: SigningKey
    /// Signers whose earlier receipts this drill compares with (the drill key's own is always one).
    public var drillSigners: [SignerKey]
    public var sampled: Bool
    /// The role a physical backup's restored server is queried as (its own superuser).
    public var physicalUser: String
    /// Run a throwaway server under cnbackup's own user when it is not root (`--scratch-same-user`):
    /// code from the backup could then read whatever cnbackup can, its keys included.
    public var scratchSameUser = false

    public init(identities: [Identity], scratch: DrillScratch, pgBinDirectory: String?, drillKey: SigningKey,
                drillSigners: [SignerKey], sampled: Bool = false, physicalUser: String = "postgres") {
        self.identities = identities; self.scratch = scratch; self.pgBinDirectory = pgBinDirectory; self.drillKey = drillKey
        self.drillSigners = drillSigners; self.sampled = sampled; self.physicalUser = physicalUser
    }
}

/// Restores every database component of a set into scratch PostgreSQL, in the runbook order
/// (apps, participant, sequencer, mediator), each as a role that owns only its database, checks each restore,
/// compares every table's rows with the counts the capture recorded (or, when it recorded none,
/// with the previous trusted drill of the set), checks the identities dump, times it all and
/// writes a signed receipt next to the set, whatever the outcome.
public struct Driller: Sendable {
    public let catalog: Catalog
    public init(catalog: Catalog) { self.catalog = catalog }

    public struct Outcome: Sendable {
        public var receipt: DrillReceipt
        public var receiptKey: String
    }

    static let roleOrder: [ComponentRole] = [.apps, .participant, .sequencer, .mediator]

    /// What a receipt may say of an error: the message, without the child's text in `cause`.
    static func receiptText(_ error: Error) -> String {
        Redaction.redact((error as? CNBackupError)?.message ?? "\(error)")
    }

    /// The components a drill restores, in order.
    static func databaseComponents(_ manifest: Manifest) -> [ComponentRecord] {
        let candidates = manifest.components.filter { record in
            guard !record.name.hasSuffix("-globals") else { return false }
            if record.postgres != nil || record.physical != nil || record.rowCounts != nil || record.sealedRowCounts != nil { return true }
            // A command capture of a database role (its own pg_dump, maybe compressed).
            return Self.roleOrder.contains(record.role) && record.source.hasPrefix("command:")
        }
        func rank(_ record: ComponentRecord) -> Int { roleOrder.firstIndex { $0 == record.role } ?? roleOrder.count }
        // A parallel dump's parts are restored as one database: one entry named after the group,
        // its rows those of every data part.
        var grouped: [ComponentRecord] = [], seen = Set<String>()
        for record in candidates {
            guard let part = record.part else { grouped.append(record); continue }
            guard seen.insert(part.group).inserted else { continue }
            var whole = record
            whole.name = part.group
            let counts = candidates.filter { $0.part?.group == part.group }.compactMap(\.rowCounts)
            whole.rowCounts = counts.count == part.count ? counts.reduce(into: [:]) { $0.merge($1) { a, b in a + b } } : nil
            grouped.append(whole)
        }
        return grouped.enumerated().sorted { (rank($0.element), $0.offset) < (rank($1.element), $1.offset) }.map(\.element)
    }

    /// The instance a dump came from (`user@host:port`), from its source text; the component itself otherwise.
    static func instance(of record: ComponentRecord) -> String {
        if record.source.hasPrefix("pg_dump ") || record.source.hasPrefix("pg_dumpall ") {
            let address = record.source.split(separator: " ").last.map(String.init) ?? record.name
            return address.split(separator: "/").first.map(String.init) ?? address
        }
        return "component:" + record.name
    }

    public func drill(_ set: TrustedSet, options: DrillOptions, log: (String) -> Void = { _ in }) throws -> Outcome {
        // The signed counts are sealed to the set's recipients: the drill holds keys that open them.
        let manifest = try set.manifest.openingRowCounts(with: options.identities)
        let previous = try DrillReceipts(store: catalog.store, signers: options.drillSigners + [options.drillKey.publicKey])
            .trusted(set: set).last?.openingRowCounts(with: options.identities)
        let started = Date()
        var results: [DrillReceipt.Component] = []
        var failures: [String] = []
        var versions = Set<String>()
        let components = Self.databaseComponents(manifest)
        if components.isEmpty { failures.append("the set has no database component to restore") }

        let servers = ScratchServers(options: options)
        let remaining = NSCountedSet(array: components.map(Self.instance))
        for record in components {
            let instance = Self.instance(of: record)
            defer {
                remaining.remove(instance)
                // A clean-up that fails (a database left on a server pointed at) fails the drill.
                if remaining.count(for: instance) == 0 { failures += servers.finish(instance: instance) }
            }
            if record.physical != nil {
                results.append(drillPhysical(record, of: set, previous: previous, options: options, log: log, versions: &versions))
            } else {
                results.append(drillDump(record, of: set, manifest: manifest, instance: instance, servers: servers, previous: previous,
                                         options: options, versions: &versions, log: log))
            }
        }
        failures += servers.finishAll()
        for component in results where component.status == .failed {
            failures.append("\(component.name): \(component.reason ?? "failed")")
        }
        var checked = results.map { component in
            "\(component.name): " + (component.checked + [component.comparedWith == .none ? "rows counted, nothing to compare with"
                                                         : "rows compared with the \(component.comparedWith == .capture ? "capture" : "previous drill")"]).joined(separator: "; ")
        }
        let identities = checkIdentities(of: set, previous: previous, options: options)
        checked += identities.checked
        failures += identities.failures
        let receipt = DrillReceipt(formatVersion: DrillReceipt.currentFormatVersion, setId: set.setId, node: set.node,
                                   epoch: set.layout.epoch, manifestSHA256: SHA256Hasher.hash(set.manifestBytes).hex,
                                   status: failures.isEmpty ? .passed : .failed, at: Timestamp.format(Date()), toolVersion: cnbackupVersion,
                                   scratch: servers.description, postgresVersions: versions.sorted(), checked: checked, failures: failures,
                                   components: results, identityIds: identities.ids, restoreSeconds: Date().timeIntervalSince(started),
                                   sampled: options.sampled ? true : nil)
        // Stored with its per-table counts sealed to the keys that opened the set; the outcome
        // keeps them open for the operator's output.
        let key = try DrillReceipts.write(try receipt.sealingRowCounts(to: options.identities.map(\.recipient)), layout: set.layout,
                                          store: catalog.store, key: options.drillKey)
        return Outcome(receipt: receipt, receiptKey: key)
    }

    /// One dump: into a fresh database on its scratch server, restored and counted by a fresh role,
    /// its rows compared; the database dropped again whatever happened.
    func drillDump(_ record: ComponentRecord, of set: TrustedSet, manifest: Manifest, instance: String, servers: ScratchServers,
                   previous: DrillReceipt?, options: DrillOptions, versions: inout Set<String>, log: (String) -> Void) -> DrillReceipt.Component {
        var component = DrillReceipt.Component(name: record.name, role: record.role.rawValue, status: .failed, seconds: 0, rowCounts: nil,
                                               comparedWith: .none, mismatches: [], reason: nil, checked: [])
        var database: String?
        var scratch: ScratchPostgres?
        do {
            let server = try servers.server(for: record, instance: instance, manifest: manifest, log: log)
            scratch = server
            versions.insert(server.serverVersion)
            let name = server.newDatabase(for: record.name)
            database = name
            // The dump is hostile input: it is restored and counted by a role that owns its
            // database and nothing else, never by the server's superuser, and without the
            // source's roles (their scripts and settings come from the backup too).
            let role = try server.newRestoreRole()
            var target = DatabaseRestorer.Target(host: server.host, port: server.port, user: server.user, passwordFile: server.passwordFile,
                                                 database: name, jobs: 2, noOwner: true, globalsComponent: nil,
                                                 binDirectory: server.binDirectory)
            target.noPrivileges = true
            target.restoreRole = role
            component.checked.append("restored and counted as \(role.name), a role that owns only its database (no superuser, no owners, no grants)")
            log("restoring \(record.name) into \(name) as \(role.name)")
            let t0 = Date()
            try DatabaseRestorer(restorer: Restorer(catalog: catalog)).restore(set, component: record.name,
                                                                               identities: options.identities, into: target)
            _ = try server.query("select 1", database: name)
            component.seconds = Date().timeIntervalSince(t0)
            component.checked.append("pg_restore --exit-on-error exit 0 into PostgreSQL \(server.serverVersion)")
            let counts = try Self.countRows(server: server, database: name, as: role)
            component.rowCounts = counts
            compare(counts, record: record, previous: previous, into: &component)
            component.status = component.mismatches.isEmpty ? .passed : .failed
            if !component.mismatches.isEmpty {
                component.reason = "\(component.mismatches.count) table(s) differ from the \(component.comparedWith == .capture ? "capture's counts" : "previous drill")"
            }
        } catch {
            component.status = .failed
            // The receipt sits beside the set, unencrypted: cnbackup's own message only, never a
            // child's standard error (pg_restore prints row data in its COPY context).
            component.reason = Self.receiptText(error)
            // The operator's terminal gets the whole error, the child's words included.
            log("\(record.name) failed: \(error)")
        }
        if let database, let scratch {
            do { try scratch.dropDatabase(database) } catch {
                component.status = .failed
                component.reason = (component.reason.map { $0 + "; " } ?? "") + Self.receiptText(error)
            }
        }
        return component
    }

    /// Each identities dump: its documented shape, and the same node ids as the previous drill's.
    func checkIdentities(of set: TrustedSet, previous: DrillReceipt?, options: DrillOptions) -> (ids: [String]?, checked: [String], failures: [String]) {
        var ids: [String]?, checked: [String] = [], failures: [String] = []
        for record in set.manifest.components where record.role == .identities {
            do {
                let found = try checkIdentities(record, of: set, options: options)
                ids = (ids ?? []) + found
                checked.append("\(record.name): identities dump shape; node ids \(found.joined(separator: ", "))")
                if let before = previous?.identityIds, !before.isEmpty, Set(before) != Set(found) {
                    failures.append("\(record.name): the node ids differ from the previous drill's (\(before.joined(separator: ", ")))")
                }
            } catch {
                failures.append("\(record.name): \(Self.receiptText(error))")
            }
        }
        return (ids, checked, failures)
    }

    /// The rows compared: every table the capture (or the previous drill) counted must hold as many rows now.
    func compare(_ counts: [String: Int64], record: ComponentRecord, previous: DrillReceipt?, into component: inout DrillReceipt.Component) {
        let expected: [String: Int64]
        if let captured = record.rowCounts {
            expected = captured; component.comparedWith = .capture
        } else if let before = previous?.components.first(where: { $0.name == record.name })?.rowCounts {
            expected = before; component.comparedWith = .previousDrill
            component.checked.append("no capture counts: compared with the previous drill")
        } else {
            component.checked.append("no capture counts and no previous drill: rows recorded for the next drill")
            return
        }
        for (table, rows) in expected.sorted(by: { $0.key < $1.key }) {
            let restored = counts[table]
            if restored != rows {
                component.mismatches.append("\(table): \(rows) expected, \(restored.map(String.init) ?? "no table") restored")
            }
        }
        component.checked.append("\(expected.count) tables' rows equal")
    }

    /// Exact rows of every ordinary table outside the system schemas, in one query.
    static func countRows(server: ScratchPostgres, database: String, as role: RestoreRole) throws -> [String: Int64] {
        try PhysicalQuery(run: { try server.query($0, database: $1, as: role) }).countRows(database)
    }

    /// One statement list, no extension needed: a temporary PL/pgSQL function counts each table
    /// (`query_to_xml` would need a server built with libxml, which not every build has).
    /// Every operator and function is schema-qualified (the session's search path holds only
    /// pg_catalog and pg_temp too), so no operator the dump defines can stand in for ours.
    static let countSQL = """
            create function pg_temp.cnbackup_rows(regclass) returns bigint language plpgsql set search_path = pg_catalog, pg_temp as \
            $cnb$ declare n bigint; begin execute 'select pg_catalog.count(*) from ' operator(pg_catalog.||) $1::pg_catalog.text into n; return n; end $cnb$; \
            select n.nspname operator(pg_catalog.||) '.' operator(pg_catalog.||) c.relname, pg_temp.cnbackup_rows(c.oid)::pg_catalog.text \
            from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid operator(pg_catalog.=) c.relnamespace \
            where c.relkind operator(pg_catalog.=) 'r' and n.nspname operator(pg_catalog.<>) all (array['pg_catalog', 'information_schema']::pg_catalog.name[]) \
            and n.nspname operator(pg_catalog.!~~) 'pg\\_toast%' and n.nspname operator(pg_catalog.!~~) 'pg\\_temp%'
            """

    /// The major version a throwaway instance needs: at least every server and pg_dump of the
    /// instance's components; for a command's own dump (no evidence), the newest server found.
    static func neededMajor(for record: ComponentRecord, in manifest: Manifest, instance: String, binDirectory: String?) -> Int {
        let majors = manifest.components.filter { Self.instance(of: $0) == instance }.compactMap { $0.postgres }
            .flatMap { [PostgresClients.majorVersion(in: $0.serverVersion), PostgresClients.majorVersion(in: $0.pgDumpVersion)] }.compactMap { $0 }
        if let needed = majors.max() { return needed }
        return PostgresClients.candidates(tool: "initdb", binDirectory: binDirectory).map(\.major).max() ?? 0
    }

    /// The identities dump: its documented shape, and its node ids (an SV's participant, sequencer
    /// and mediator must share the SV party's namespace).
    func checkIdentities(_ record: ComponentRecord, of set: TrustedSet, options: DrillOptions) throws -> [String] {
        let reader = try ComponentReader(store: catalog.store, key: set.layout.key(relative: record.objectKey),
                                         expect: .record(record, manifest: set.manifest, layout: set.layout), keys: .identities(options.identities))
        var bytes = try reader.plaintext.readAll(limit: 64 << 20)
        defer { wipe(&bytes) }
        try reader.finish()
        try IdentitiesShape.check(bytes)
        guard let object = try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] else { return [] }
        func fingerprint(_ id: String) -> String? { id.components(separatedBy: "::").last.flatMap { $0.isEmpty ? nil : $0 } }
        if let identities = object["identities"] as? [String: Any] {
            let party = identities["sv_party_id"] as? String ?? ""
            var ids = [party]
            for node in ["participant", "sequencer", "mediator"] {
                let id = (identities[node] as? [String: Any])?["id"] as? String ?? ""
                guard id.contains("::") else { throw CNBackupError(.integrity, "the \(node) id \"\(id)\" is not a Canton id") }
                ids.append(id)
            }
            guard let namespace = fingerprint(party), fingerprint(ids[1]) == namespace else {
                throw CNBackupError(.integrity, "the SV party \(party) and the participant \(ids[1]) are not of one namespace")
            }
            return ids
        }
        let id = object["id"] as? String ?? ""
        guard id.contains("::"), fingerprint(id) != nil else { throw CNBackupError(.integrity, "the participant id \"\(id)\" is not a Canton id") }
        return [id]
    }
}

/// The scratch servers of one drill: a throwaway instance per source instance (of the major
/// version its dumps need), or the one server the drill was pointed at. Finishing one drops what
/// the drill made there and returns what could not be dropped.
final class ScratchServers: CustomStringConvertible {
    private let options: DrillOptions
    private var byInstance: [String: ScratchPostgres] = [:]
    private var shared: ScratchPostgres?

    init(options: DrillOptions) { self.options = options }

    /// How the receipt names the scratch servers.
    var description: String {
        switch options.scratch {
        case .throwaway: return "throwaway"
        case .server(let host, let port, _, _, _): return "server \(host):\(port)"
        }
    }

    func server(for record: ComponentRecord, instance: String, manifest: Manifest, log: (String) -> Void) throws -> ScratchPostgres {
        switch options.scratch {
        case .throwaway(let bin):
            if let existing = byInstance[instance] { return existing }
            let major = Driller.neededMajor(for: record, in: manifest, instance: instance, binDirectory: bin)
            log("starting a throwaway PostgreSQL \(major) for \(instance)")
            let server = try ScratchPostgres(major: major, binDirectory: bin, allowSameUser: options.scratchSameUser)
            byInstance[instance] = server
            return server
        case .server(let host, let port, let user, let passwordFile, let bin):
            if let shared { return shared }
            let server = try ScratchPostgres(host: host, port: port, user: user, passwordFile: passwordFile, binDirectory: bin)
            shared = server
            return server
        }
    }

    /// Stops the throwaway instance of `instance` once its last component is drilled.
    func finish(instance: String) -> [String] { byInstance.removeValue(forKey: instance)?.finish() ?? [] }

    func finishAll() -> [String] {
        let problems = byInstance.values.flatMap { $0.finish() } + (shared?.finish() ?? [])
        byInstance = [:]
        shared = nil
        return problems
    }

    deinit { _ = finishAll() }
}

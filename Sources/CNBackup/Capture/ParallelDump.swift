import Foundation
import Logging
import CNBackupCore
import CNBackupStorage
import CNBackupProcess
import CNBackupPostgres
import CNBackupCatalog

/// A parallel logical dump of one database (`postgres: { jobs: N }`, N > 1): one snapshot, several
/// pg_dump workers, no temporary disk.
///
/// A "snapshot holder" connection (psql reading its commands from a pipe only this process holds,
/// like `TemporarySlot`) opens a REPEATABLE READ transaction, exports its snapshot
/// (`pg_export_snapshot()`), and lists the tables and sequences with their sizes inside that
/// transaction (which takes ACCESS SHARE locks on the tables, as pg_dump's own start does: a
/// concurrent DROP or ALTER TABLE waits until the dump ends). Then each part is a plain pg_dump
/// custom-format archive with `--snapshot`: the pre-data section, N data parts with their share of
/// the tables (balanced by size; large objects in the first), and the post-data section. The holder
/// stays open until every part has finished (or failed); if cnbackup dies, the pipe closes and the
/// server ends the transaction.
enum ParallelDump {
    /// Which part of the group a component job is.
    struct PartSpec: Sendable, Equatable {
        /// The group's name, `<capture>-<database>`: what `restore --component` takes.
        var group: String
        var database: String
        var section: DumpSection
        /// 0 for pre-data, 1...dataParts for the data parts, dataParts + 1 for post-data.
        var index: Int
        var dataParts: Int
        var count: Int { dataParts + 2 }

        /// The component's name: `<group>.pre`, `<group>.data-<i>`, `<group>.post`.
        var componentName: String {
            switch section {
            case .preData: return group + ".pre"
            case .data: return group + ".data-\(index)"
            case .postData: return group + ".post"
            }
        }

        static func all(group: String, database: String, dataParts: Int) -> [PartSpec] {
            [PartSpec(group: group, database: database, section: .preData, index: 0, dataParts: dataParts)]
                + (1...dataParts).map { PartSpec(group: group, database: database, section: .data, index: $0, dataParts: dataParts) }
                + [PartSpec(group: group, database: database, section: .postData, index: dataParts + 1, dataParts: dataParts)]
        }
    }

    /// A table (or sequence) to dump, as the holder listed it.
    struct Table: Sendable, Equatable {
        var schema: String
        var name: String
        /// `r` (a table, partitions included) or `S` (a sequence).
        var kind: Character
        /// pg_total_relation_size (0 for sequences).
        var size: Int64
    }

    /// Shares of the tables for `parts` workers, balanced by size: largest first, each to the
    /// share with the fewest bytes so far (ties: the lowest share). Deterministic for one list.
    static func balance(_ tables: [Table], parts: Int) -> [[Table]] {
        precondition(parts >= 1)
        var shares = [[Table]](repeating: [], count: parts)
        var totals = [Int64](repeating: 0, count: parts)
        let ordered = tables.sorted {
            if $0.size != $1.size { return $0.size > $1.size }
            if $0.schema != $1.schema { return $0.schema < $1.schema }
            return $0.name < $1.name
        }
        for table in ordered {
            var best = 0
            for i in 1..<parts where totals[i] < totals[best] || (totals[i] == totals[best] && shares[i].count < shares[best].count) { best = i }
            shares[best].append(table)
            totals[best] += table.size
        }
        return shares
    }

    /// A pg_dump `--table` pattern that matches exactly this schema and name: each part in double
    /// quotes, where pg_dump takes every character literally (`*`, `?`, `.`, `$`, upper case and
    /// regular-expression characters included) and a double quote is written twice.
    static func pattern(schema: String, name: String) -> String {
        func quoted(_ s: String) -> String { "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }
        return quoted(schema) + "." + quoted(name)
    }

    /// A pattern that matches no table (a data part with no share must not dump everything).
    static let noTablePattern = #""pg_catalog"."cnbackup: no table""#

    /// The holder's listing: `snapshot|ID`, then `table|hex(schema)|hex(name)|kind|size` lines,
    /// then `end|`.
    static func parseListing(_ lines: [String]) throws -> (snapshot: String, tables: [Table]) {
        var snapshot: String?, tables: [Table] = []
        func unhex(_ text: Substring) -> String? {
            guard text.count % 2 == 0 else { return nil }
            var bytes: [UInt8] = [], index = text.startIndex
            while index < text.endIndex {
                let next = text.index(index, offsetBy: 2)
                guard let byte = UInt8(text[index..<next], radix: 16) else { return nil }
                bytes.append(byte); index = next
            }
            return String(decoding: bytes, as: UTF8.self)
        }
        for line in lines {
            let fields = line.split(separator: "|", omittingEmptySubsequences: false)
            switch fields.first {
            case "snapshot" where fields.count == 2 && !fields[1].isEmpty: snapshot = String(fields[1])
            case "table" where fields.count == 5:
                guard let schema = unhex(fields[1]), let name = unhex(fields[2]), let kind = fields[3].first,
                      let size = Int64(fields[4]) else { throw CNBackupError(.capture, "unexpected table line from the snapshot holder") }
                tables.append(Table(schema: schema, name: name, kind: kind, size: size))
            case "end", nil: continue
            default: throw CNBackupError(.capture, "unexpected line from the snapshot holder")
            }
        }
        guard let snapshot, snapshot.range(of: #"\A[0-9A-Fa-f-]+\z"#, options: .regularExpression) != nil else {
            throw CNBackupError(.capture, "the snapshot holder exported no snapshot")
        }
        return (snapshot, tables)
    }

    /// Turns off idle_in_transaction_session_timeout and (PostgreSQL 17+) transaction_timeout for the holder's session.
    static let noTimeouts = "DO $cnbackup$ BEGIN "
        + "IF current_setting('idle_in_transaction_session_timeout', true) IS NOT NULL THEN PERFORM set_config('idle_in_transaction_session_timeout', '0', false); END IF; "
        + "IF current_setting('transaction_timeout', true) IS NOT NULL THEN PERFORM set_config('transaction_timeout', '0', false); END IF; "
        + "END $cnbackup$;\n"

    /// The holder locks every table (ACCESS SHARE) right after exporting the snapshot, as pg_dump's
    /// leader does: a TRUNCATE, DROP or ALTER TABLE then waits for the whole dump, and a part that
    /// needs a table behind such a waiting statement fails after lockWaitTimeout (as pg_dump -j's
    /// workers fail), so no part ever reads a table that changed under the snapshot. A table
    /// dropped between the export and the lock fails the holder, and with it every part.
    static let lockStatement = """
        DO $cnbackup$ DECLARE r record; BEGIN         FOR r IN SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace         WHERE c.relkind = 'r' AND c.relpersistence <> 't' AND n.nspname NOT IN ('pg_catalog', 'information_schema')         AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%' ORDER BY c.oid         LOOP EXECUTE format('LOCK TABLE %I.%I IN ACCESS SHARE MODE', r.nspname, r.relname); END LOOP; END $cnbackup$;
        """

    /// The tables and sequences pg_dump would dump data for: no system schemas, no temporary
    /// tables, no extension members. Names are hex of their bytes, so no name can break a line.
    static let listingQuery = """
        select 'table|' || encode(convert_to(n.nspname::text, 'UTF8'), 'hex') || '|' || encode(convert_to(c.relname::text, 'UTF8'), 'hex') \
        || '|' || c.relkind::text || '|' || (case when c.relkind = 'r' then coalesce(pg_total_relation_size(c.oid), 0) else 0 end)::text \
        from pg_class c join pg_namespace n on n.oid = c.relnamespace \
        where c.relkind in ('r', 'S') and c.relpersistence <> 't' \
        and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\\_toast%' and n.nspname not like 'pg\\_temp%' \
        and not exists (select 1 from pg_depend d where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype = 'e') \
        order by 1;
        """
}

/// The open snapshot of one database's parallel dump, shared by its parts.
final class ParallelDumpSession: @unchecked Sendable {
    // @unchecked: the mutable state is only touched under `lock`; the rest is set in init.
    let pg: PostgresSourceDefinition
    let database: String
    let passFile: TemporaryPassFile?
    let evidence: PostgresEvidence
    let clientFolder: String
    let snapshot: String
    let shares: [[ParallelDump.Table]]
    private let holder: ChildProcess
    private let lock = NSLock()
    private var remaining: Int
    private var failedPart: String?
    private var closed = false

    init(pg: PostgresSourceDefinition, database: String, role: ComponentRole, dataParts: Int, context: CaptureContext,
         timeout: TimeInterval = 600) throws {
        self.pg = pg; self.database = database
        passFile = try pg.makePassFile()
        let env = pg.childEnvironment(passFile: passFile)
        (evidence, clientFolder) = try pg.evidence(database: database, passFile: passFile)
        if role == .participant, evidence.isReplica {
            guard let replay = evidence.replayTimestamp.flatMap(Timestamp.parse),
                  let apps = context.latestAppsSnapshot, replay > apps else {
                throw CNBackupError(.capture,
                    "\(database) is read from a replica whose last replayed transaction (\(evidence.replayTimestamp ?? "none")) is not later than the apps snapshot: dump the participant from the primary, or wait for the replica")
            }
        }
        var holderEnv = env
        holderEnv["PGAPPNAME"] = "cnbackup snapshot holder"
        holder = try ChildProcess(arguments: [pg.tool("psql"), "-X", "-w", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-d", database],
                                  environment: ChildProcess.environment(adding: holderEnv), inputPipe: true)
        remaining = dataParts + 2
        do {
            let lockTimeout = pg.lockWaitTimeout.replacingOccurrences(of: "'", with: "''")
            // The holder sits idle in its transaction for the whole dump: a server's (or a managed
            // provider's) idle-in-transaction or transaction timeout must not end it, as pg_dump
            // turns them off for its own session.
            let script = "SET lock_timeout = '\(lockTimeout)';\nSET statement_timeout = 0;\n" + ParallelDump.noTimeouts
                + "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;\n"
                + "SELECT 'snapshot|' || pg_export_snapshot();\n" + ParallelDump.lockStatement + "\n"
                + ParallelDump.listingQuery + "\nSELECT 'end|';\n"
            try writeFully(fd: holder.standardInput!, Array(script.utf8), what: "psql")
            let end = Array("end|\n".utf8), endLine = Array("\nend|\n".utf8)
            let output = try holder.readAnswer(
                timeout: timeout, cancellation: context.cancellation, what: "the snapshot of \(database)",
                until: { $0.starts(with: end) || $0.suffix(endLine.count).elementsEqual(endLine) },
                timedOut: { CNBackupError(.capture, "the snapshot holder of \(database) did not answer within \(Int(timeout)) s") },
                closed: { CNBackupError(.capture, "cannot export a snapshot of \(database) on \(pg.host):\(pg.port)", cause: $0) })
            let lines = String(decoding: output, as: UTF8.self).split(separator: "\n").map(String.init)
            let listing = try ParallelDump.parseListing(lines)
            snapshot = listing.snapshot
            shares = ParallelDump.balance(listing.tables, parts: dataParts)
        } catch {
            Self.end(holder)
            throw error
        }
    }

    /// pg_dump's arguments for one part.
    func arguments(for part: ParallelDump.PartSpec) -> [String] {
        var arguments = pg.dumpArguments(database: database, clientFolder: clientFolder)
            + ["--section=\(part.section.rawValue)", "--snapshot=\(snapshot)"]
        if part.section == .data {
            // With --table pg_dump leaves large objects out unless asked: the first data part takes them.
            if part.index == 1 { arguments.append("-b") }
            let share = shares[part.index - 1]
            arguments += share.isEmpty ? ["--table=\(ParallelDump.noTablePattern)"]
                                       : share.map { "--table=" + ParallelDump.pattern(schema: $0.schema, name: $0.name) }
        }
        return arguments
    }

    /// Starts one part's pg_dump, unless another part of the group failed already.
    func open(_ part: ParallelDump.PartSpec, cancellation: Cancellation) throws -> ByteStream {
        lock.lock()
        let failed = failedPart, isClosed = closed
        lock.unlock()
        if let failed { throw CNBackupError(.capture, "not started: part \(failed) of the dump of \(database) failed") }
        if isClosed { throw CNBackupError(.capture, "the snapshot of \(database) was released already") }
        var env = pg.childEnvironment(passFile: passFile)
        env["PGAPPNAME"] = "cnbackup \(part.componentName)"
        return try ChildProcessStream(arguments: arguments(for: part), environment: env, cancellation: cancellation)
    }

    /// A part is done (its stored object read back, or failed); the last one releases the snapshot.
    func finished(_ part: String, ok: Bool) {
        lock.lock()
        if !ok, failedPart == nil { failedPart = part }
        remaining -= 1
        let release = remaining <= 0 && !closed
        if release { closed = true }
        lock.unlock()
        if release { Self.end(holder) }
    }

    /// Ends the holder's session: its transaction and the exported snapshot go with it.
    private static func end(_ holder: ChildProcess) {
        if let input = holder.standardInput { close(input) }
        _ = holder.stop(grace: 10)
        if let output = holder.standardOutput { close(output) }
        if let errors = holder.standardError { close(errors) }
    }

    deinit {
        lock.lock(); let open = !closed; closed = true; lock.unlock()
        if open { Self.end(holder) }
    }
}

/// The parallel dumps of a run, one session per group, opened by the first part that starts.
final class ParallelDumpSessions: @unchecked Sendable {
    // @unchecked: `entries` is only touched under `lock`; each entry under its own lock.
    private final class Entry: @unchecked Sendable {
        let lock = NSLock()
        var session: Result<ParallelDumpSession, CNBackupError>?
        /// Parts that finished before the session was opened (a part stopped before it started).
        var early: [(String, Bool)] = []
    }
    private let lock = NSLock()
    private var entries: [String: Entry] = [:]

    private func entry(_ group: String) -> Entry {
        lock.lock(); defer { lock.unlock() }
        if let entry = entries[group] { return entry }
        let entry = Entry(); entries[group] = entry
        return entry
    }

    /// The group's session; the first caller opens it (and a failure to open fails every part).
    func session(for part: ParallelDump.PartSpec, pg: PostgresSourceDefinition, role: ComponentRole,
                 context: CaptureContext) throws -> ParallelDumpSession {
        let entry = entry(part.group)
        entry.lock.lock(); defer { entry.lock.unlock() }
        if entry.session == nil {
            entry.session = Result {
                try ParallelDumpSession(pg: pg, database: part.database, role: role, dataParts: part.dataParts, context: context)
            }.mapError { ($0 as? CNBackupError) ?? CNBackupError(.capture, "\($0)") }
            if let session = try? entry.session!.get() { for (name, ok) in entry.early { session.finished(name, ok: ok) } }
        }
        return try entry.session!.get()
    }

    /// The snapshot the group's parts use (nil before it was opened).
    func snapshot(of part: ParallelDump.PartSpec) -> String? {
        let entry = entry(part.group)
        entry.lock.lock(); defer { entry.lock.unlock() }
        return (try? entry.session?.get())?.snapshot
    }

    /// A part's final outcome (after any retry), so the last one releases the snapshot.
    func finished(_ part: ParallelDump.PartSpec, ok: Bool) {
        let entry = entry(part.group)
        entry.lock.lock()
        if entry.session == nil { entry.early.append((part.componentName, ok)) }
        let session = try? entry.session?.get()
        entry.lock.unlock()
        session?.finished(part.componentName, ok: ok)
    }
}

import Foundation
import CNBackupCore
import CNBackupProcess

/// A login role that restores a backup as its database's owner and nothing more: NOSUPERUSER,
/// NOCREATEDB, NOCREATEROLE, no replication, no RLS bypass, and in none of the roles that reach
/// the server's files or programs. A backup is hostile input: whoever owns a captured database can
/// put functions, operators and triggers into it, and pg_restore runs them (a CHECK constraint's
/// function, an index expression) as the role that connects. `SET ROLE` inside a superuser's
/// session is no boundary (a function can `RESET ROLE`), so the restore connects as this role.
public struct RestoreRole: Sendable, Equatable {
    public var name: String
    /// Its password alone; nil leaves authentication to the server (trust, peer, certificate).
    public var passwordFile: String?

    public init(name: String, passwordFile: String? = nil) throws {
        guard name.range(of: #"\A[a-z_][a-z0-9_]{0,62}\z"#, options: .regularExpression) != nil else {
            throw CNBackupError(.invalidInput, "\"\(name)\" is not a role name cnbackup restores as: lower-case letters, digits and _, at most 63")
        }
        self.name = name
        self.passwordFile = passwordFile
    }

    /// libpq options for every session that restores or reads a backup's database, passed at
    /// connection (PGOPTIONS), where no `ALTER DATABASE/ROLE ... SET` inside the dump can override
    /// them: a search path that holds no schema the dump made, no row-level security policies (an
    /// owner's function) run for a count, and no libraries loaded from the dump's settings.
    public static let sessionOptions = "-c search_path=pg_catalog,pg_temp -c row_security=off -c local_preload_libraries="

    /// How this role reaches the server that `admin` reaches.
    public func connection(like admin: PostgresConnection) -> PostgresConnection {
        var environment = admin.environment
        environment["PGOPTIONS"] = Self.sessionOptions
        return PostgresConnection(host: admin.host, port: admin.port, user: name, passwordFile: passwordFile, sslMode: admin.sslMode,
                                  binDirectory: admin.binDirectory, environment: environment)
    }

    /// The SQL that answers "t" when the role may do more than own its database (as `admin` asks it).
    var privilegeQuery: String {
        let privileged = ["pg_execute_server_program", "pg_read_server_files", "pg_write_server_files"]
            .map { "pg_catalog.pg_has_role(r.oid, '\($0)', 'MEMBER')" }.joined(separator: " or ")
        return "select (r.rolsuper or r.rolcreaterole or r.rolcreatedb or r.rolreplication or r.rolbypassrls or \(privileged))::text "
            + "from pg_catalog.pg_roles r where r.rolname = '\(name)'"
    }

    /// Refuses a role that does not exist or may do more than own a database.
    public func checkUnprivileged(on admin: PostgresConnection) throws {
        let answer = try admin.query(privilegeQuery, passFile: try admin.makePassFile())
        guard !answer.isEmpty else {
            throw CNBackupError(.invalidInput, "the role \(name) does not exist on \(admin.host):\(admin.port): create it as LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE, or name another with --restore-role")
        }
        guard answer == "false" else {
            throw CNBackupError(.invalidInput,
                "the role \(name) may do more than own a database (superuser, CREATEDB, CREATEROLE, REPLICATION, BYPASSRLS, or a member of pg_execute_server_program or pg_*_server_files): code in the dump would run with those rights; restore as a role without them")
        }
    }

    /// Extensions a database owner cannot create but cnbackup may create itself, as the server's
    /// administrator and before anything from the dump is loaded: each is code shipped with
    /// PostgreSQL, not with the backup.
    public static let allowedExtensions: Set<String> = [
        "plpgsql", "pgcrypto", "uuid-ossp", "pg_trgm", "btree_gin", "btree_gist", "citext", "hstore", "pg_stat_statements",
    ]

    /// The extensions an archive creates, from `pg_restore --list` (which reads the archive, connects nowhere).
    public static func extensions(inArchive path: String, pgRestore: String) throws -> [String] {
        let list = String(decoding: try ChildProcessStream(arguments: [pgRestore, "--list", path]).readAll(limit: 64 << 20), as: UTF8.self)
        return list.split(separator: "\n").compactMap { line -> String? in
            guard !line.hasPrefix(";"), let range = line.range(of: " EXTENSION - ") else { return nil }
            return line[range.upperBound...].split(separator: " ").first.map(String.init)
        }
    }
}

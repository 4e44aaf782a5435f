import Foundation
import CNBackupCore
import CNBackupProcess

/// How cnbackup reaches one PostgreSQL server: libpq settings passed to its client tools by
/// environment (never by arguments), and the password by a private pgpass file.
public struct PostgresConnection: Sendable, Equatable {
    public var host: String
    public var port: Int
    public var user: String
    /// A file holding only the password (a Kubernetes secret); nil uses `PGPASSFILE` from `environment`.
    public var passwordFile: String?
    public var sslMode: String?
    /// Where the client tools are; nil looks them up on PATH.
    public var binDirectory: String?
    /// Extra variables for the client tools (PGOPTIONS, PGSSLROOTCERT, ...).
    public var environment: [String: String]

    public init(host: String, port: Int, user: String, passwordFile: String? = nil, sslMode: String? = nil,
                binDirectory: String? = nil, environment: [String: String] = [:]) {
        self.host = host
        self.port = port
        self.user = user
        self.passwordFile = passwordFile
        self.sslMode = sslMode
        self.binDirectory = binDirectory
        self.environment = environment
    }

    package func tool(_ name: String) -> String { binDirectory.map { "\($0)/\(name)" } ?? name }

    /// The server's major version, asked with psql (any psql talks to any server).
    package func serverMajorVersion(database: String, passFile: TemporaryPassFile?) throws -> Int {
        let answer = try String(decoding: ChildProcessStream(arguments: [tool("psql"), "-X", "-w", "-A", "-t", "-d", database, "-c", "show server_version"],
                                                             environment: childEnvironment(passFile: passFile)).readAll(limit: 4096), as: UTF8.self)
        guard let major = PostgresClients.majorVersion(in: answer.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw CNBackupError(.capture, "unexpected answer from \(host):\(port) to `show server_version`")
        }
        return major
    }

    /// The folder of the client tools for a server of `major` (see `PostgresClients`).
    package func clientFolder(serverMajor major: Int) throws -> String {
        try PostgresClients.folder(for: "pg_dump", atLeast: major, binDirectory: binDirectory,
                                   what: "the PostgreSQL \(major) server at \(host):\(port)")
    }

    /// libpq settings for a child: connection by variables, the password by a pgpass file.
    package func childEnvironment(passFile: TemporaryPassFile?) -> [String: String] {
        var env = environment
        env["PGHOST"] = host
        env["PGPORT"] = "\(port)"
        env["PGUSER"] = user
        env["PGAPPNAME"] = "cnbackup"
        env["PGCONNECT_TIMEOUT"] = env["PGCONNECT_TIMEOUT"] ?? "30"
        if let sslMode { env["PGSSLMODE"] = sslMode }
        if let passFile { env["PGPASSFILE"] = passFile.path }
        // A captured database's owner can set its search path (ALTER DATABASE ... SET) and put
        // functions and operators in it that shadow the catalog's; cnbackup's sessions run as
        // superusers often enough that none of them may take that path. A connection option
        // beats every such setting.
        env["PGOPTIONS"] = [env["PGOPTIONS"], "-c search_path=pg_catalog,pg_temp"].compactMap { $0 }.joined(separator: " ")
        return env
    }

    package func makePassFile() throws -> TemporaryPassFile? {
        try passwordFile.map { try TemporaryPassFile(host: host, port: port, user: user, passwordFile: $0) }
    }

    /// One value from a query (any psql talks to any server); fields split by `|`.
    package func query(_ sql: String, database: String = "postgres", passFile: TemporaryPassFile?) throws -> String {
        let answer = try ChildProcessStream(arguments: [tool("psql"), "-X", "-w", "-A", "-t", "-F", "|", "-d", database, "-c", sql],
                                            environment: childEnvironment(passFile: passFile)).readAll(limit: 4096)
        return String(decoding: answer, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

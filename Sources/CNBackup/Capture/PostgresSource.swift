import Foundation
import CNBackupCore
import CNBackupStorage
import CNBackupProcess
import CNBackupPostgres
import CNBackupCatalog

extension PostgresSourceDefinition {
    /// How to reach the server, without what to dump.
    var connection: PostgresConnection {
        PostgresConnection(host: host, port: port, user: user, passwordFile: passwordFile, sslMode: sslMode,
                           binDirectory: binDirectory, environment: environment)
    }

    func tool(_ name: String) -> String { connection.tool(name) }
    func childEnvironment(passFile: TemporaryPassFile?) -> [String: String] { connection.childEnvironment(passFile: passFile) }
    func makePassFile() throws -> TemporaryPassFile? { try connection.makePassFile() }
    func clientFolder(serverMajor major: Int) throws -> String { try connection.clientFolder(serverMajor: major) }

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

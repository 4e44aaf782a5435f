import Foundation
import Testing
import CNBackupCore
import CNBackupPostgres

/// Which client tools a server or an archive needs.
@Suite struct PostgresClientsTests {
    @Test func majorVersionsFromToolAndServerText() {
        #expect(PostgresClients.majorVersion(in: "pg_dump (PostgreSQL) 17.2 (Debian 17.2-1.pgdg120+1)") == 17)
        #expect(PostgresClients.majorVersion(in: "18.6") == 18)
        #expect(PostgresClients.majorVersion(in: "15beta1") == 15)
        #expect(PostgresClients.majorVersion(in: "not a version") == nil)
    }

    @Test func anArchiveWithoutARecordedVersionUsesTheGivenFolder() throws {
        #expect(try PostgresClients.restoreFolder(forArchive: "x", writtenBy: nil, binDirectory: "/given") == "/given")
    }

    @Test func anArchiveNewerThanEveryRestoreToolIsRefusedWithWhatToInstall() throws {
        let folder = try PrivateFolder.create(prefix: "cnbackup-clients-test-")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let error = #expect(throws: CNBackupError.self) {
            try PostgresClients.restoreFolder(forArchive: "apps", writtenBy: "pg_dump (PostgreSQL) 99.0", binDirectory: folder)
        }
        #expect(error?.message.contains("postgresql-client-99") == true)
    }

    @Test func aConnectionPassesItsSettingsByEnvironmentNeverByArguments() throws {
        let connection = PostgresConnection(host: "db.example", port: 6543, user: "cnadmin", sslMode: "verify-full",
                                            binDirectory: "/opt/pg/bin", environment: ["PGOPTIONS": "-c statement_timeout=5s"])
        let env = connection.childEnvironment(passFile: nil)
        #expect(env["PGHOST"] == "db.example" && env["PGPORT"] == "6543" && env["PGUSER"] == "cnadmin")
        #expect(env["PGSSLMODE"] == "verify-full")
        // The operator's options stay, and the search path a captured database sets is overridden.
        #expect(env["PGOPTIONS"] == "-c statement_timeout=5s -c search_path=pg_catalog,pg_temp")
        #expect(env["PGPASSFILE"] == nil)
        #expect(connection.tool("psql") == "/opt/pg/bin/psql")
    }
}

/// A server whose client tools sit elsewhere, or are missing, is found out at once.
@Suite struct ScratchToolLookupTests {
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/lib/postgresql/15/bin/initdb")))
    func aServerFolderWithoutPsqlFailsAtOnceNamingPsql() throws {
        let folder = try PrivateFolder.create(prefix: "cnbackup-tools-test-")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        for tool in ["initdb", "postgres"] {
            try FileManager.default.createSymbolicLink(atPath: folder + "/" + tool, withDestinationPath: "/usr/lib/postgresql/15/bin/" + tool)
        }
        let started = Date()
        let error = #expect(throws: CNBackupError.self) { try ScratchPostgres(major: 15, binDirectory: folder, allowSameUser: true) }
        #expect(error?.message.contains("psql") == true, "\(error?.message ?? "")")
        #expect(Date().timeIntervalSince(started) < 10)
    }
}

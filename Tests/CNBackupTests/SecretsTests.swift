import Foundation
import Testing
@testable import CNBackup
import CNBackupCore
import CNBackupTestKit
import CNBackupHTTP
import CNBackupStorage
import CNBackupProcess

/// Secrets never reach a child's arguments or environment, a log, an error, the manifest or a
/// file left behind. The Postgres tools are replaced by scripts that record what they were given.
@Suite struct SecretsTests {
    @Test func postgresPasswordReachesPgDumpOnlyThroughAPrivatePassFile() throws {
        try withTemporaryDirectory { dir in
            let f = try Fixture(dir: dir)
            let password = "S3cr3t-pw-\(UUID().uuidString)"
            try (password + "\n").write(toFile: dir + "/pw", atomically: true, encoding: .utf8)
            let bin = dir + "/bin"
            try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
            // Each fake tool records its arguments, environment and the pgpass file's mode and content.
            let recorder = """
            #!/bin/sh
            { echo "ARGV: $0 $*"; env | sed 's/^/ENV: /'; [ -n "$PGPASSFILE" ] && echo "MODE: $(stat -c %a "$PGPASSFILE")" && echo "PASS: $(cat "$PGPASSFILE")"; } >> '\(dir)/seen'
            """
            let tools = [
                "psql": recorder + "\ncase \"$*\" in *'show server_version'*) echo '15.18';; *) printf '2026-11-25T04:00:00.000Z|f||15.18\\n';; esac\n",
                "pg_dump": recorder + "\ncase \"$*\" in *--version*) echo 'pg_dump (PostgreSQL) 15.18';; *) printf 'PGDMP fake dump';; esac\n",
                "pg_dumpall": recorder + "\nprintf 'CREATE ROLE cnadmin;'\n",
            ]
            for (name, script) in tools {
                try script.write(toFile: "\(bin)/\(name)", atomically: true, encoding: .utf8)
                chmod("\(bin)/\(name)", 0o755)
            }
            setenv("CNBACKUP_TEST_PARENT_SECRET", password, 1)
            defer { unsetenv("CNBACKUP_TEST_PARENT_SECRET") }
            let result = try f.run(try f.pipeline("""
              - name: apps
                role: apps
                postgres: { host: db.example, user: cnadmin, passwordFile: "\(dir)/pw", databases: [cantonnet_sv], globals: true, binDirectory: "\(bin)" }
            """))
            #expect(result.isComplete, "\(result.manifest.failures)")
            let seen = try String(contentsOfFile: dir + "/seen", encoding: .utf8)
            let lines = seen.split(separator: "\n").map(String.init)
            // The password is only ever in the pgpass file, which is private.
            #expect(lines.filter { $0.contains(password) }.allSatisfy { $0.hasPrefix("PASS: ") })
            #expect(lines.contains { $0.hasPrefix("PASS: db.example:5432:*:cnadmin:\(password)") })
            #expect(lines.filter { $0.hasPrefix("MODE: ") }.allSatisfy { $0 == "MODE: 600" })
            #expect(!lines.contains { $0.hasPrefix("ENV: CNBACKUP_TEST_PARENT_SECRET") }, "the parent's environment leaked into a child")
            // The pass files are gone, and nothing the run wrote holds the password.
            let passFiles = lines.filter { $0.hasPrefix("ENV: PGPASSFILE=") }.map { String($0.dropFirst("ENV: PGPASSFILE=".count)) }
            #expect(!passFiles.isEmpty && passFiles.allSatisfy { !FileManager.default.fileExists(atPath: $0) })
            for object in try f.store.list(prefix: "") {
                let bytes = try f.store.getBytes(key: object.key, limit: 1 << 24)
                #expect(String(decoding: bytes, as: UTF8.self).range(of: password) == nil, "\(object.key) holds the password")
            }
            // The manifest records the evidence the fake server gave.
            let record = try #require(result.manifest.components.first { $0.name == "apps-cantonnet_sv" })
            #expect(record.postgres?.serverVersion == "15.18" && record.postgres?.isReplica == false)
        }
    }

    /// Key buffers are overwritten in place (OPENSSL_cleanse), not reallocated: the memory that
    /// held the secret is the memory that is zeroed.
    @Test func wipeZeroesTheBufferInPlace() {
        var secret = patternBytes(64)
        let before = secret.withUnsafeBytes { $0.baseAddress }
        wipe(&secret)
        #expect(secret == [UInt8](repeating: 0, count: 64))
        #expect(secret.withUnsafeBytes { $0.baseAddress } == before)
    }

    /// A run's children inherit no core dumps: cnbackup's limit is 0 and children inherit it.
    @Test func coreDumpsAreOffForTheProcessAndItsChildren() throws {
        disableCoreDumps()
        var limit = rlimit()
        #if os(Linux)
        getrlimit(__rlimit_resource_t(RLIMIT_CORE.rawValue), &limit)
        #else
        getrlimit(RLIMIT_CORE, &limit)
        #endif
        #expect(limit.rlim_cur == 0 && limit.rlim_max == 0)
        let shown = try ChildProcessStream(arguments: ["sh", "-c", "ulimit -c"]).readAll(limit: 100)
        #expect(String(decoding: shown, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) == "0")
    }
}

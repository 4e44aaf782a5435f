import Foundation
import CNBackupCore
import CNBackupProcess

/// A database this process created and has not finished with: a restore's new database until
/// pg_restore succeeded, a drill's scratch database on a server it was pointed at until it is
/// dropped. While one is held, an immediate exit (a second signal, a grace period run out, the
/// default answer of every command but `run` to SIGTERM) drops it through `LastResort`, so a killed
/// restore or drill leaves no half-restored database behind. The owner drops it itself on failure
/// or keeps it on success, then calls `release()`.
package final class CreatedDatabase {
    package let name: String
    private let key: String

    /// `environment` must reach the server (its pgpass file must outlive this value).
    package init(name: String, dropdb: String, environment: [String: String]) {
        self.name = name
        key = "drop database \(name) \(UUID().uuidString)"
        // Bounded: the process waits for this before it exits.
        var bounded = environment
        bounded["PGCONNECT_TIMEOUT"] = "5"
        bounded["PGOPTIONS"] = "-c statement_timeout=15s -c lock_timeout=10s"
        let env = bounded
        LastResort.register(action: key) { Self.drop(name, dropdb: dropdb, environment: env) }
    }

    /// `dropdb --if-exists --force` (PostgreSQL 13 and later end the sessions a killed pg_restore
    /// left, which the server may not have noticed yet), else without `--force` (older servers).
    package static func drop(_ name: String, dropdb: String, environment: [String: String]) {
        for force in [true, false] {
            let arguments = [dropdb, "-w", "--if-exists"] + (force ? ["--force"] : []) + [name]
            if (try? ChildProcessStream(arguments: arguments, environment: environment).readAll(limit: 1 << 20)) != nil { return }
        }
    }

    package func release() { LastResort.unregister(action: key) }

    deinit { release() }
}

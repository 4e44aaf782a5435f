import Foundation
import CNBackupCore

/// A restored data directory's configuration comes from the backup, so from whoever could write
/// it: before a drill starts a server on it, cnbackup replaces it with its own. Settings that run
/// commands or load code (`restore_command`, `archive_command`, `ssl_passphrase_command`,
/// `*_preload_libraries`, `include` lines) and the files that start a recovery or a standby
/// (`*.signal`, `recovery.conf`) are removed; `backup_label` and `tablespace_map` stay, since
/// crash recovery from the backup's own WAL needs them.
public enum RestoredConfiguration {
    /// Files removed from the data directory's top level.
    static let removedFiles = ["postgresql.conf", "postgresql.auto.conf", "pg_hba.conf", "pg_ident.conf", "recovery.conf",
                               "recovery.signal", "standby.signal"]
    /// Settings whose presence in a removed file the receipt names.
    static let codeSettings = ["restore_command", "archive_command", "archive_library", "ssl_passphrase_command",
                               "shared_preload_libraries", "session_preload_libraries", "local_preload_libraries",
                               "dynamic_library_path", "include", "include_if_exists", "include_dir", "recovery_end_command",
                               "archive_cleanup_command", "primary_conninfo"]

    /// Overrides on the server's command line, which no file can change.
    public static let serverOverrides: [String] = [
        "restore_command=", "archive_command=", "archive_mode=off", "recovery_end_command=", "archive_cleanup_command=",
        "shared_preload_libraries=", "session_preload_libraries=", "local_preload_libraries=", "ssl=off",
        "ssl_passphrase_command=", "primary_conninfo=", "jit=off",
    ].flatMap { ["-c", $0] }

    /// A physical drill counts rows as the restored cluster's superuser (a base backup's roles are
    /// the source's): a superuser bypasses row-level security, so no policy function runs; the
    /// session's own settings keep the dump's search paths and libraries out.
    public static let superuserSessionOptions = "-c search_path=pg_catalog,pg_temp -c local_preload_libraries= -c session_preload_libraries="

    /// Replaces the configuration in `dataDirectory` with an empty `postgresql.conf` and returns what
    /// it removed, for the drill's receipt (for example `postgresql.auto.conf (restore_command)`).
    public static func neutralize(dataDirectory: String) throws -> [String] {
        var removed: [String] = []
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dataDirectory)) ?? []
        for name in names.sorted() where removedFiles.contains(name) || name.hasSuffix(".signal") {
            let path = dataDirectory + "/" + name
            let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
            let found = Set(text.split(separator: "\n").compactMap { line -> String? in
                let setting = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
                let key = setting.split(whereSeparator: { $0 == "=" || $0 == " " || $0 == "\t" }).first.map { $0.lowercased() }
                return key.flatMap { codeSettings.contains($0) ? $0 : nil }
            }).sorted()
            guard unlink(path) == 0 else {
                throw CNBackupError(.io, "cannot remove \(path) before the drill starts a server on it: \(String(cString: strerror(errno)))")
            }
            removed.append(found.isEmpty ? name : "\(name) (\(found.joined(separator: ", ")))")
        }
        try KeyFile.writeSecretFile(path: dataDirectory + "/postgresql.conf",
                                    contents: Array("# Written by cnbackup for a restore drill: the backup's own configuration was removed.\n".utf8),
                                    what: "drill configuration")
        return removed
    }
}

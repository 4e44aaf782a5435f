import Foundation
import CNBackupCore
import CNBackupProcess

/// Finds the PostgreSQL client tools to run. pg_dump refuses a server newer than itself and
/// pg_restore an archive from a newer pg_dump, while an older server or archive is fine; so each
/// capture takes the oldest tools whose major version is at least the server's (the closest
/// match), and each restore the oldest pg_restore at least as new as the pg_dump that wrote the
/// archive. Candidates: `binDirectory` alone when it is given; else every folder on PATH that
/// holds the tool, then `/usr/lib/postgresql/*/bin` (Debian's and PostgreSQL's apt packages).
package enum PostgresClients {
    /// The major version in `pg_dump (PostgreSQL) 17.2 (Debian 17.2-1.pgdg120+1)` or a server's
    /// `18.6`: the number before the first dot (PostgreSQL 10 and later).
    package static func majorVersion(in text: String) -> Int? {
        let afterName = text.range(of: "(PostgreSQL) ").map { String(text[$0.upperBound...]) } ?? text
        let digits = afterName.trimmingCharacters(in: .whitespaces).prefix { $0.isNumber }
        return Int(digits)
    }

    /// The tool's major version, from running it with `--version`.
    package static func majorVersion(ofTool path: String) -> Int? {
        guard let output = try? ChildProcessStream(arguments: [path, "--version"]).readAll(limit: 4096) else { return nil }
        return majorVersion(in: String(decoding: output, as: UTF8.self))
    }

    /// Folders holding `tool`, with the tool's major version, in the order they are looked at.
    package static func candidates(tool: String, binDirectory: String?,
                           path: String = ProcessInfo.processInfo.environment["PATH"] ?? "") -> [(folder: String, major: Int)] {
        var folders: [String]
        if let binDirectory {
            folders = [binDirectory]
        } else {
            folders = path.split(separator: ":").map(String.init)
            let debian = "/usr/lib/postgresql"
            let versions = ((try? FileManager.default.contentsOfDirectory(atPath: debian)) ?? []).sorted()
            folders += versions.map { "\(debian)/\($0)/bin" }
        }
        var seen = Set<String>(), found: [(String, Int)] = []
        for folder in folders where seen.insert(folder).inserted {
            let candidate = "\(folder)/\(tool)"
            guard FileManager.default.isExecutableFile(atPath: candidate), let major = majorVersion(ofTool: candidate) else { continue }
            found.append((folder, major))
        }
        return found
    }

    /// The folder of the oldest `tool` whose major version is at least `major`.
    /// - Parameter what: names the server or archive in the error.
    package static func folder(for tool: String, atLeast major: Int, binDirectory: String?, what: String) throws -> String {
        let found = candidates(tool: tool, binDirectory: binDirectory)
        if let best = found.filter({ $0.major >= major }).min(by: { $0.major < $1.major }) { return best.folder }
        let seen = found.isEmpty ? "none found" : "found: " + found.map { "\($0.major) in \($0.folder)" }.joined(separator: ", ")
        let whereLooked = binDirectory.map { "in binDirectory \($0)" } ?? "on PATH or under /usr/lib/postgresql/*/bin"
        throw CNBackupError(.capture,
            "\(what) needs \(tool) \(major) or newer \(whereLooked) (\(seen)): install the PostgreSQL \(major) client (postgresql-client-\(major)) or point binDirectory / --pg-bin at it")
    }

    /// The folder of a pg_restore that reads the archive `archive` (at least as new as the pg_dump
    /// that wrote it, `pgDumpVersion` as the manifest records); `binDirectory` when that is not
    /// known (a command capture's own pg_dump), which may be nil for PATH.
    package static func restoreFolder(forArchive archive: String, writtenBy pgDumpVersion: String?, binDirectory: String?) throws -> String? {
        guard let written = pgDumpVersion, let major = majorVersion(in: written) else { return binDirectory }
        return try folder(for: "pg_restore", atLeast: major, binDirectory: binDirectory,
                          what: "the archive \(archive) (written by pg_dump \(major))")
    }
}

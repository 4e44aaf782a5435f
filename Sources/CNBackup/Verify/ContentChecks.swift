import Foundation
import CNBackupCore
import CNBackupStorage
import CNBackupProcess
import CNBackupPostgres
import CNBackupCatalog

/// What deep verify checks in a component's plaintext beyond its digest, as the bytes stream past:
/// a pg_dump custom-format archive (it starts with `PGDMP`) must pass `pg_restore --list`, and an
/// identities dump must have its documented shape; a physical base backup (the record has
/// `physical` evidence) must be a well-formed tar whose files match its own backup_manifest. Neither check keeps the plaintext: pg_restore
/// reads it from a pipe, and an identities dump is small and checked in memory, then wiped.
final class ContentChecks {
    private let record: ComponentRecord
    private let pgBinDirectory: String?
    private var first = true
    private var listCheck: PgRestoreListCheck?
    private var identities: [UInt8]?
    private var physical: (reader: TarReader, check: PhysicalTarCheck)?
    private static let identitiesLimit = 64 << 20
    /// What was checked, for the report.
    private(set) var checked: [String] = []

    init(record: ComponentRecord, pgBinDirectory: String?) {
        self.record = record
        self.pgBinDirectory = pgBinDirectory
        if record.role == .identities { identities = [] }
        if let evidence = record.physical {
            let check = PhysicalTarCheck(evidence: evidence, component: record.name)
            physical = (TarReader(visitor: check), check)
        }
    }

    func consume(_ chunk: [UInt8]) throws {
        if let physical { try physical.reader.consume(chunk); return }
        if first {
            first = false
            if chunk.starts(with: Array("PGDMP".utf8)) {
                listCheck = try PgRestoreListCheck(binDirectory: try PostgresClients.restoreFolder(forArchive: record.name, writtenBy: record.postgres?.pgDumpVersion, binDirectory: pgBinDirectory),
                                                   component: record.name)
            }
        }
        listCheck?.write(chunk)
        if identities != nil {
            guard identities!.count + chunk.count <= Self.identitiesLimit else {
                throw CNBackupError(.integrity, "\(record.name) is larger than any identities dump (\(Self.identitiesLimit >> 20) MiB)")
            }
            identities! += chunk
        }
    }

    func finish() throws {
        if let physical {
            do { try physical.reader.finish() } catch let error as CNBackupError {
                throw CNBackupError(.integrity, "\(record.name): \(error.message)")
            }
            checked += try physical.check.finish()
        }
        if let listCheck {
            let entries = try listCheck.finish()
            checked.append("pg_restore --list (\(entries) entries)")
        }
        if var bytes = identities {
            defer { wipe(&bytes); identities = nil }
            do {
                try IdentitiesShape.check(bytes)
            } catch let error as CNBackupError {
                throw CNBackupError(.integrity, "\(record.name): \(error.message)")
            }
            checked.append("identities shape")
        }
    }

    deinit { if identities != nil { wipe(&identities!) } }
}

/// Feeds a dump to `pg_restore --list` on its standard input. pg_restore reads the archive's
/// table of contents and exits; the rest of the stream is still read (and hashed) by the caller,
/// so a pipe it closed early is no error. Its output goes to a private temporary file, never a
/// pipe, so a long listing cannot block it while the caller blocks writing to it.
final class PgRestoreListCheck {
    private let child: ChildProcess
    private let outputPath: String
    private let errorPath: String
    private var inputOpen = true
    private let component: String

    init(binDirectory: String?, component: String) throws {
        self.component = component
        let program = binDirectory.map { "\($0)/pg_restore" } ?? "pg_restore"
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        guard ChildProcess.resolve(program, path: path) != nil else {
            throw CNBackupError(.notFound,
                "pg_restore was not found (needed to check the dump \(component)): install the PostgreSQL client or pass --pg-bin DIR")
        }
        let base = NSTemporaryDirectory() + "cnbackup-pglist-\(UUID().uuidString)"
        outputPath = base + ".out"; errorPath = base + ".err"
        LastResort.register(file: outputPath); LastResort.register(file: errorPath)
        let output = open(outputPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        let errors = open(errorPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        defer { if output >= 0 { close(output) }; if errors >= 0 { close(errors) } }
        guard output >= 0, errors >= 0 else {
            unlink(outputPath); unlink(errorPath)
            throw CNBackupError(.io, "cannot create a temporary file in \(NSTemporaryDirectory())")
        }
        do {
            child = try ChildProcess(arguments: [program, "--list"], environment: ["PATH": path, "LANG": "C"],
                                     inputPipe: true, output: .file(output), error: .file(errors))
        } catch {
            unlink(outputPath); unlink(errorPath)
            throw error
        }
    }

    func write(_ chunk: [UInt8]) {
        guard inputOpen, let input = child.standardInput else { return }
        // EPIPE: pg_restore has read the table of contents and exited (the executable ignores SIGPIPE).
        if (try? writeFully(fd: input, chunk, what: "pg_restore")) == nil { closeInput() }
    }

    private func closeInput() {
        if inputOpen, let input = child.standardInput { close(input) }
        inputOpen = false
    }

    /// Waits for pg_restore and returns the number of entries it listed.
    func finish() throws -> Int {
        closeInput()
        let termination = child.wait()
        defer { removeFiles() }
        let listing = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        guard termination == .exited(0) else {
            let error = ((try? String(contentsOfFile: errorPath, encoding: .utf8)) ?? "").suffix(2048)
            throw CNBackupError(.integrity, "\(component) is not a dump pg_restore can read (pg_restore --list failed)",
                                cause: error.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        return listing.split(separator: "\n").filter { !$0.hasPrefix(";") && !$0.isEmpty }.count
    }

    private func removeFiles() {
        unlink(outputPath); unlink(errorPath)
        LastResort.unregister(file: outputPath); LastResort.unregister(file: errorPath)
    }

    deinit {
        closeInput()
        child.stop()
        removeFiles()
    }
}

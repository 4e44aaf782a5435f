import Foundation
import CNBackupCore
import CNBackupStorage

/// What deep verify checks in a component's plaintext beyond its digest, as the bytes stream past:
/// a pg_dump custom-format archive (it starts with `PGDMP`) must pass `pg_restore --list`, and an
/// identities dump must have its documented shape. Neither check keeps the plaintext: pg_restore
/// reads it from a pipe, and an identities dump is small and checked in memory, then wiped.
final class ContentChecks {
    private let record: ComponentRecord
    private let pgBinDirectory: String?
    private var first = true
    private var listCheck: PgRestoreListCheck?
    private var identities: [UInt8]?
    private static let identitiesLimit = 64 << 20
    /// What was checked, for the report.
    private(set) var checked: [String] = []

    init(record: ComponentRecord, pgBinDirectory: String?) {
        self.record = record
        self.pgBinDirectory = pgBinDirectory
        if record.role == ComponentRole.identities.rawValue { identities = [] }
    }

    func consume(_ chunk: [UInt8]) throws {
        if first {
            first = false
            if chunk.starts(with: Array("PGDMP".utf8)) {
                listCheck = try PgRestoreListCheck(binDirectory: pgBinDirectory, component: record.name)
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
    private let process = Process()
    private let input: FileHandle
    private let outputPath: String
    private let errorPath: String
    private var inputOpen = true
    private let component: String
    private var outputs: [FileHandle] = []

    init(binDirectory: String?, component: String) throws {
        self.component = component
        let program = binDirectory.map { "\($0)/pg_restore" } ?? "pg_restore"
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        guard let executable = ChildProcessStream.resolve(program, path: path) else {
            throw CNBackupError(.notFound,
                "pg_restore was not found (needed to check the dump \(component)): install the PostgreSQL client or pass --pg-bin DIR")
        }
        let base = NSTemporaryDirectory() + "cnbackup-pglist-\(UUID().uuidString)"
        outputPath = base + ".out"; errorPath = base + ".err"
        for file in [outputPath, errorPath] {
            guard FileManager.default.createFile(atPath: file, contents: nil, attributes: [.posixPermissions: 0o600]) else {
                throw CNBackupError(.io, "cannot create a temporary file in \(NSTemporaryDirectory())")
            }
        }
        let stdinPipe = Pipe()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = ["--list"]
        process.environment = ["PATH": path, "LANG": "C"]
        process.standardInput = stdinPipe
        guard let output = FileHandle(forWritingAtPath: outputPath), let errors = FileHandle(forWritingAtPath: errorPath) else {
            unlink(outputPath); unlink(errorPath)
            throw CNBackupError(.io, "cannot open a temporary file in \(NSTemporaryDirectory())")
        }
        outputs = [output, errors]
        process.standardOutput = output
        process.standardError = errors
        input = stdinPipe.fileHandleForWriting
        do { try process.run() } catch {
            try? input.close()
            removeFiles()
            throw CNBackupError(.io, "could not start pg_restore: \(error.localizedDescription)")
        }
        try? stdinPipe.fileHandleForReading.close()
    }

    func write(_ chunk: [UInt8]) {
        guard inputOpen else { return }
        // EPIPE: pg_restore has read the table of contents and exited (SIGPIPE is ignored).
        if (try? writeFully(fd: input.fileDescriptor, chunk, what: "pg_restore")) == nil {
            inputOpen = false
            try? input.close()
        }
    }

    /// Waits for pg_restore and returns the number of entries it listed.
    func finish() throws -> Int {
        if inputOpen { inputOpen = false; try? input.close() }
        process.waitUntilExit()
        defer { removeFiles() }
        let listing = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        guard process.terminationReason == .exit, process.terminationStatus == 0 else {
            let error = ((try? String(contentsOfFile: errorPath, encoding: .utf8)) ?? "").suffix(2048)
            throw CNBackupError(.integrity, "\(component) is not a dump pg_restore can read (pg_restore --list failed)",
                                cause: error.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        return listing.split(separator: "\n").filter { !$0.hasPrefix(";") && !$0.isEmpty }.count
    }

    private func removeFiles() {
        for handle in outputs { try? handle.close() }
        outputs = []
        unlink(outputPath); unlink(errorPath)
    }

    deinit {
        if process.isRunning { process.terminate() }
    }
}

import Foundation
import CNBackupCore
import CNBackupStorage
import CNBackupProcess
import CNBackupPostgres
import CNBackupCatalog

/// Restores a physical component (a pg_basebackup tar) to a data directory that `pg_ctl start`
/// opens: the object is read through `ComponentReader` (every segment authenticated, the signed
/// sizes and digests enforced), its plaintext is checked by a `TarReader` (a well-formed tar) and
/// written by a `DataDirectoryWriter` (no absolute or `..` paths, no links leaving the folder,
/// nothing written through a link) into a new or empty folder (mode 0700), then `pg_verifybackup`
/// checks every file against the backup's own backup_manifest (sizes, CRC-32C) and parses its WAL.
/// Whatever fails, the folder is emptied again: a half restored data directory never stays behind.
public struct PhysicalRestorer: Sendable {
    public let catalog: Catalog
    public init(catalog: Catalog) { self.catalog = catalog }

    public struct Outcome: Sendable {
        public var plaintextBytes: Int64
        public var members: Int
        public var serverVersion: String
        /// What pg_verifybackup checked (or why it could not parse the WAL).
        public var verification: String
    }

    /// The disk a restore of `record` needs: the tar's plaintext size (the data directory, its WAL
    /// and backup_manifest); for an incremental, every link of its chain (each extracted to a
    /// private folder) plus the combined result, which is at most the full's size plus the
    /// incrementals' (`chain`: the links' plaintext sizes, full first).
    public static func diskNeeded(_ record: ComponentRecord, chain: [Int64] = []) -> Int64 {
        guard !chain.isEmpty else { return record.plaintextSize }
        let links = chain.reduce(0, +)
        return links + links
    }

    /// The plaintext sizes of the chain's links, full first (empty for a full backup).
    public func chainSizes(_ set: TrustedSet, component: String) throws -> [Int64] {
        guard let record = try? set.component(component), record.physical?.incremental != nil else { return [] }
        return try IncrementalChainLinks.resolve(record: record, set: set, catalog: catalog).map(\.record.plaintextSize)
    }

    public func restore(_ set: TrustedSet, component: String, identities: [Identity], directory: String,
                        binDirectory: String?) throws -> Outcome {
        let record = try set.component(component)
        guard let evidence = record.physical else {
            throw CNBackupError(.invalidInput, "\(component) is not a physical base backup: restore it with --to PATH (or --to-database for a pg_dump)")
        }
        guard let major = PostgresClients.majorVersion(in: evidence.serverVersion) else {
            throw CNBackupError(.integrity, "the manifest's server version \(evidence.serverVersion) cannot be read")
        }
        // Pick the tools before anything is written: a missing tool should not cost a download.
        let verifier = try Self.verifier(major: major, binDirectory: binDirectory)
        let links = evidence.incremental == nil ? [] : try IncrementalChainLinks.resolve(record: record, set: set, catalog: catalog)
        let combiner = links.isEmpty ? nil : try PostgresClients.folder(for: "pg_combinebackup", atLeast: major, binDirectory: binDirectory,
                                                                        what: "the PostgreSQL \(major) incremental backup")

        let created = try Self.prepare(directory: directory)
        var done = false
        // A signal that ends the process at once must not leave a half-written data directory.
        if created { LastResort.register(directory: directory) }
        defer {
            if !done { Self.empty(directory: directory, remove: created) }
            if created { LastResort.unregister(directory: directory) }
        }

        var plaintextBytes: Int64 = 0
        var members = 0
        if let combiner {
            // Every link, full first, each into its own private folder beside the target, then
            // pg_combinebackup into the target.
            let parent = (directory as NSString).deletingLastPathComponent
            let work = try PrivateFolder.create(prefix: ".cnbackup-chain-", in: parent)
            LastResort.register(directory: work)
            defer { try? FileManager.default.removeItem(atPath: work); LastResort.unregister(directory: work) }
            var folders: [String] = []
            for (index, link) in links.enumerated() {
                let folder = work + "/link-\(index)"
                guard mkdir(folder, 0o700) == 0 else { throw CNBackupError(.io, "cannot create \(folder)") }
                members += try Self.extract(link.record, manifest: link.manifest, layout: link.inSet.layout, store: catalog.store,
                                            identities: identities, into: folder)
                plaintextBytes += link.record.plaintextSize
                folders.append(folder)
            }
            let errorPath = work + "/combine.err"
            let errorFd = open(errorPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            guard errorFd >= 0 else { throw CNBackupError(.io, "cannot create \(errorPath)") }
            let combine = try ChildProcess(arguments: ["\(combiner)/pg_combinebackup"] + Self.combineMode(combiner: combiner, work: work, target: directory)
                                                      + folders + ["-o", directory],
                                           environment: ChildProcess.environment(adding: ["LANG": "C"]), output: .discard, error: .file(errorFd))
            let status = combine.wait()
            close(errorFd)
            guard status == .exited(0) else {
                let message = ((try? String(contentsOfFile: errorPath, encoding: .utf8)) ?? "").suffix(2048)
                throw CNBackupError(.io, "pg_combinebackup of the \(links.count) links into \(directory) failed", cause: message.trimmingCharacters(in: .whitespacesAndNewlines))
            }
        } else {
            members = try Self.extract(record, manifest: set.manifest, layout: set.layout, store: catalog.store, identities: identities, into: directory)
            plaintextBytes = record.plaintextSize
        }
        var arguments = ["\(verifier.folder)/pg_verifybackup"]
        if !verifier.exact { arguments.append("--no-parse-wal") }
        arguments.append(directory)
        do {
            _ = try ChildProcessStream(arguments: arguments, environment: ["LANG": "C"]).readAll(limit: 16 << 20)
        } catch let error as CNBackupError {
            throw CNBackupError(.integrity, "pg_verifybackup refused the restored data directory", cause: error.description)
        }
        chmod(directory, 0o700)
        done = true
        let checked = verifier.exact
            ? "pg_verifybackup \(major) (every file against backup_manifest, WAL parsed)"
            : "pg_verifybackup \(verifier.major) --no-parse-wal (no pg_waldump \(major) found: files checked, WAL not parsed)"
        return Outcome(plaintextBytes: plaintextBytes, members: members, serverVersion: evidence.serverVersion,
                       verification: links.isEmpty ? checked : "pg_combinebackup of \(links.count) links (full \(links[0].inSet.setId)), then " + checked)
    }

    /// Extracts one physical object into `folder` (new and empty), checking the tar and that its
    /// backup_manifest is the one the signed manifest records. Returns the tar's member count.
    static func extract(_ record: ComponentRecord, manifest: Manifest, layout: SetLayout, store: any ObjectStore,
                        identities: [Identity], into directory: String) throws -> Int {
        let reader = try ComponentReader(store: store, key: layout.key(relative: record.objectKey),
                                         expect: .record(record, manifest: manifest, layout: layout), keys: .identities(identities),
                                         plaintextDigest: false)
        let writer = try DataDirectoryWriter(directory: directory)
        let tarReader = TarReader(visitor: writer)
        try reader.plaintext.forEachChunk { chunk in try tarReader.consume(chunk) }
        try tarReader.finish()
        try reader.finish()
        try writer.finish()
        // The backup manifest in the folder must be the one the signed manifest binds.
        guard let evidence = record.physical, let written = FileManager.default.contents(atPath: directory + "/backup_manifest"),
              SHA256Hasher.hash(Array(written)).hex == evidence.backupManifestSHA256 else {
            throw CNBackupError(.integrity, "the restored backup_manifest of \(record.name) in set \(manifest.setId) is not the one the signed manifest records")
        }
        return tarReader.entries
    }

    /// How pg_combinebackup makes the output's files. The links' folders are private and removed
    /// right after, so the output may take their files over as hard links (`--link`, PostgreSQL 18)
    /// instead of copying every unchanged file: the chain then costs about what its full costs
    /// (BENCHMARKS.md). That needs one filesystem (a target that is a mount point of its own is
    /// not on its parent's); otherwise, and with PostgreSQL 17, `--copy-file-range` copies inside
    /// the kernel (a reflink where the filesystem has them).
    ///
    /// `--no-sync`, as the extraction writes without fsync: the first start of a server on a base
    /// backup (a backup_label, a control file that was not shut down) fsyncs the whole data
    /// directory before it replays anything (PostgreSQL's SyncDataDirectory), so a restore that
    /// syncs too pays for the disk writes twice.
    static func combineMode(combiner: String, work: String, target: String) -> [String] {
        var workInfo = stat(), targetInfo = stat()
        let sameFilesystem = stat(work, &workInfo) == 0 && stat(target, &targetInfo) == 0 && workInfo.st_dev == targetInfo.st_dev
        let major = PostgresClients.majorVersion(ofTool: combiner + "/pg_combinebackup") ?? 17
        if sameFilesystem && major >= 18 { return ["--no-sync", "--link"] }
        return ["--no-sync", "--copy-file-range"]
    }

    /// pg_verifybackup of the backup's own major version (its pg_waldump reads only that version's
    /// WAL), else the closest newer one without WAL parsing.
    static func verifier(major: Int, binDirectory: String?) throws -> (folder: String, major: Int, exact: Bool) {
        let found = PostgresClients.candidates(tool: "pg_verifybackup", binDirectory: binDirectory)
        if let exact = found.first(where: { $0.major == major }),
           FileManager.default.isExecutableFile(atPath: exact.folder + "/pg_waldump") {
            return (exact.folder, major, true)
        }
        let folder = try PostgresClients.folder(for: "pg_verifybackup", atLeast: major, binDirectory: binDirectory,
                                                what: "the PostgreSQL \(major) base backup")
        return (folder, PostgresClients.majorVersion(ofTool: folder + "/pg_verifybackup") ?? major, false)
    }

    /// Creates the folder (mode 0700), or accepts an existing empty one. Returns whether it was created.
    static func prepare(directory: String) throws -> Bool {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { throw CNBackupError(.alreadyExists, "\(directory) exists and is not a folder") }
            let contents = try FileManager.default.contentsOfDirectory(atPath: directory)
            guard contents.isEmpty else {
                throw CNBackupError(.alreadyExists, "\(directory) is not empty: restore a data directory into a new or empty folder")
            }
            guard chmod(directory, 0o700) == 0 else { throw CNBackupError(.io, "cannot set \(directory) to mode 0700") }
            return false
        }
        guard mkdir(directory, 0o700) == 0 else {
            throw CNBackupError(.io, "cannot create \(directory): \(String(cString: strerror(errno)))")
        }
        return true
    }

    static func empty(directory: String, remove: Bool) {
        if remove { try? FileManager.default.removeItem(atPath: directory); return }
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] {
            try? FileManager.default.removeItem(atPath: directory + "/" + name)
        }
    }
}

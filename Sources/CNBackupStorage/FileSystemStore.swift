import Foundation
import CNBackupCore

/// A store on a local or mounted file system, the embedded default (`file:///var/backups/cnbackup`).
///
/// Atomic put: bytes go to a temporary file under `.cnbackup-tmp/` in the same file system, are
/// fsynced, then renamed into place, and the directory is fsynced; a crash leaves at most a
/// temporary file that `list` never shows. Tags live beside the objects under `.cnbackup-tags/`.
public struct FileSystemStore: ObjectStore {
    public let root: String
    public var displayName: String { "file://\(root)" }
    private static let temporaryFolder = ".cnbackup-tmp"
    private static let tagsFolder = ".cnbackup-tags"

    public init(root: String) {
        self.root = root.count > 1 && root.hasSuffix("/") ? String(root.dropLast()) : root
    }

    private func path(_ key: String) -> String { root + "/" + key }

    /// The store never follows a symbolic link inside it: a writer who planted one (a set folder
    /// pointing elsewhere, an object linked to /etc/shadow) must not make cnbackup read or write
    /// outside the store. Every folder of `key` and the key itself must not be a link.
    private func refuseLinks(_ key: String) throws {
        var current = root
        for segment in key.split(separator: "/") {
            current += "/" + segment
            var status = stat()
            guard lstat(current, &status) == 0 else { return }  // missing: nothing further to follow
            if (status.st_mode & S_IFMT) == S_IFLNK {
                throw CNBackupError(.storage, "\(key) in \(displayName) passes through a symbolic link (\(current)): the file store never follows links inside the store; remove it")
            }
        }
    }

    private func systemError(_ what: String) -> CNBackupError {
        let code = errno
        var hint = ""
        if code == ENOSPC { hint = ": the file system is full; free space or choose another store" }
        if code == EACCES || code == EROFS { hint = ": check that this user may write to \(root)" }
        return CNBackupError(.storage, "\(what) in \(displayName) failed: \(String(cString: strerror(code)))\(hint)")
    }

    private func makeDirectories(_ directory: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
        } catch {
            throw CNBackupError(.storage, "cannot create folder \(directory) in \(displayName): check the path and this user's rights",
                                cause: "\(error.localizedDescription)")
        }
    }

    private func syncDirectory(_ directory: String) {
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 { fsync(fd); close(fd) }
    }

    public func put(key: String, from source: ByteStream, options: PutOptions) throws -> ObjectInfo {
        try validateObjectKey(key)
        do { try refuseLinks(key) } catch { source.close(); throw error }
        let target = path(key)
        let directory = (target as NSString).deletingLastPathComponent
        try makeDirectories(directory)
        try makeDirectories(root + "/" + Self.temporaryFolder)
        let temporary = "\(root)/\(Self.temporaryFolder)/\(UUID().uuidString).part"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { source.close(); throw systemError("creating a temporary file") }
        var renamed = false
        defer { if !renamed { unlink(temporary) } }
        do {
            defer { close(fd) }
            _ = try writeAll(source, to: fd, what: "\(displayName)/\(key)")
            guard fsync(fd) == 0 else { throw systemError("syncing \(key)") }
        } catch let error as CNBackupError where error.code == .io {
            throw CNBackupError(.storage, error.message + (errno == ENOSPC ? ": the file system is full" : ""))
        }
        if options.ifAbsent {
            // link() fails when the target exists, which makes "if absent" atomic.
            if link(temporary, target) != 0 {
                guard errno == EEXIST else { throw systemError("writing \(key)") }
                let same = try filesEqual(temporary, target)
                guard same else { throw CNBackupError(.alreadyExists, "\(key) already exists in \(displayName) with other bytes; it is never replaced") }
            }
            unlink(temporary)
            renamed = true
        } else {
            guard rename(temporary, target) == 0 else { throw systemError("renaming \(key) into place") }
            renamed = true
        }
        syncDirectory(directory)
        if !options.tags.isEmpty { try writeTags(key: key, options.tags) }
        guard let info = try head(key: key) else { throw CNBackupError(.storage, "\(key) vanished right after it was written") }
        return info
    }

    private func filesEqual(_ a: String, _ b: String) throws -> Bool {
        guard let left = FileManager.default.contents(atPath: a), let right = FileManager.default.contents(atPath: b) else { return false }
        return left == right
    }

    private func writeTags(key: String, _ tags: [String: String]) throws {
        let tagPath = "\(root)/\(Self.tagsFolder)/\(key).json"
        try makeDirectories((tagPath as NSString).deletingLastPathComponent)
        let encoder = JSONEncoder(); encoder.outputFormatting = [.sortedKeys]
        let data = try encoder.encode(tags)
        guard FileManager.default.createFile(atPath: tagPath, contents: data, attributes: [.posixPermissions: 0o600]) else {
            throw systemError("writing the tags of \(key)")
        }
    }

    public func get(key: String, range: ClosedRange<Int64>?) throws -> ByteStream {
        try validateObjectKey(key)
        try refuseLinks(key)
        let fd = open(path(key), O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else {
            if errno == ENOENT { throw CNBackupError(.notFound, "\(key) is not in \(displayName)") }
            throw systemError("opening \(key)")
        }
        var limit: Int64?
        if let range {
            guard lseek(fd, off_t(range.lowerBound), SEEK_SET) >= 0 else { close(fd); throw systemError("seeking in \(key)") }
            limit = range.upperBound - range.lowerBound + 1
        }
        return FileDescriptorStream(fd: fd, owns: true, limit: limit, what: "\(displayName)/\(key)")
    }

    public func head(key: String) throws -> ObjectInfo? {
        try validateObjectKey(key)
        try refuseLinks(key)
        var status = stat()
        guard lstat(path(key), &status) == 0 else {
            if errno == ENOENT || errno == ENOTDIR { return nil }
            throw systemError("reading the size of \(key)")
        }
        guard (status.st_mode & S_IFMT) == S_IFREG else { return nil }
        return ObjectInfo(key: key, size: Int64(status.st_size),
                          lastModified: Date(timeIntervalSince1970: TimeInterval(status.st_mtim.tv_sec)))
    }

    public func list(prefix: String) throws -> [ObjectInfo] {
        var rootStatus = stat()
        if lstat(root, &rootStatus) != 0 {
            if errno == ENOENT || errno == ENOTDIR { return [] }  // nothing written yet; readers check with requireReadable()
            throw systemError("reading the root")
        }
        var results: [ObjectInfo] = []
        try walk("", prefix: prefix, into: &results)
        return results.sorted { $0.key < $1.key }
    }

    /// Checks that the store's root exists and this user may read it: a reader must never take a
    /// store it cannot see for an empty one.
    public func requireReadable() throws {
        var status = stat()
        guard stat(root, &status) == 0 else {
            if errno == ENOENT || errno == ENOTDIR {
                throw CNBackupError(.notFound, "the store \(displayName) does not exist: check the --store path (the folder is made by the first `cnbackup run` or `upload`)")
            }
            throw systemError("reading the root")
        }
        guard (status.st_mode & S_IFMT) == S_IFDIR else {
            throw CNBackupError(.invalidInput, "the store \(displayName) is not a folder: check the --store path")
        }
        guard access(root, R_OK | X_OK) == 0 else {
            throw CNBackupError(.authentication, "this user (uid \(getuid())) cannot read the store \(displayName): run as the user that writes it, or grant read access (the writer makes folders 0700)")
        }
    }

    /// Lists one folder and, recursively, those under it. A folder that cannot be read is an
    /// error (EACCES for a second user: the writer makes folders 0700), never an empty folder.
    private func walk(_ relativeFolder: String, prefix: String, into results: inout [ObjectInfo]) throws {
        let folder = relativeFolder.isEmpty ? root : path(relativeFolder)
        guard let handle = opendir(folder) else {
            let code = errno
            if code == ENOENT { return }  // removed while listing
            if code == EACCES || code == EPERM {
                throw CNBackupError(.authentication, "this user (uid \(getuid())) cannot read the folder \(relativeFolder.isEmpty ? "/" : relativeFolder) of \(displayName): run as the user that writes the store, or grant read access (the writer makes folders 0700); the store is not empty, it is unreadable")
            }
            throw CNBackupError(.storage, "listing \(relativeFolder.isEmpty ? "/" : relativeFolder) in \(displayName) failed: \(String(cString: strerror(code)))")
        }
        defer { closedir(handle) }
        var names: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name == "." || name == ".." { continue }
            names.append(name)
        }
        for name in names {
            let relative = relativeFolder.isEmpty ? name : relativeFolder + "/" + name
            if relativeFolder.isEmpty && (name.hasPrefix(Self.temporaryFolder) || name.hasPrefix(Self.tagsFolder)) { continue }
            guard relative.hasPrefix(prefix) || prefix.hasPrefix(relative + "/") else { continue }
            // A link (planted, or a folder linked elsewhere) is not an object: left out, never followed.
            var status = stat()
            guard lstat(path(relative), &status) == 0 else { continue }
            let type = status.st_mode & S_IFMT
            if type == S_IFDIR {
                try walk(relative, prefix: prefix, into: &results)
                continue
            }
            // Read with lstat, not `head`: a name no cnbackup key can have (control characters) is
            // still listed, for the catalog to report as ignored, instead of failing the listing.
            guard relative.hasPrefix(prefix), type == S_IFREG else { continue }
            results.append(ObjectInfo(key: relative, size: Int64(status.st_size),
                                      lastModified: Date(timeIntervalSince1970: TimeInterval(status.st_mtim.tv_sec))))
        }
    }

    public func delete(keys: [String]) throws {
        for key in keys {
            try validateObjectKey(key)
            try refuseLinks((key as NSString).deletingLastPathComponent)
            if unlink(path(key)) != 0 && errno != ENOENT { throw systemError("deleting \(key)") }
            unlink("\(root)/\(Self.tagsFolder)/\(key).json")
        }
    }

    public func tags(key: String) throws -> [String: String] {
        guard try head(key: key) != nil else { throw CNBackupError(.notFound, "\(key) is not in \(displayName)") }
        guard let data = FileManager.default.contents(atPath: "\(root)/\(Self.tagsFolder)/\(key).json") else { return [:] }
        return (try? JSONDecoder().decode([String: String].self, from: data)) ?? [:]
    }
}

/// A file-system put interrupted by a crash leaves a temporary file; cleanup treats it like a
/// stale multipart upload.
extension FileSystemStore: MultipartUploadCleaning {
    public func staleMultipartUploads(olderThan cutoff: Date) throws -> [StaleUpload] {
        let folder = "\(root)/\(Self.temporaryFolderName)"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        return names.compactMap { name in
            let modified = (try? FileManager.default.attributesOfItem(atPath: "\(folder)/\(name)"))?[.modificationDate] as? Date
            guard let modified, modified < cutoff else { return nil }
            return StaleUpload(key: "\(Self.temporaryFolderName)/\(name)", uploadId: name, initiated: modified)
        }
    }

    public func abort(_ upload: StaleUpload) throws {
        guard !upload.uploadId.contains("/") else { return }
        unlink("\(root)/\(Self.temporaryFolderName)/\(upload.uploadId)")
    }

    package static var temporaryFolderName: String { temporaryFolder }
}

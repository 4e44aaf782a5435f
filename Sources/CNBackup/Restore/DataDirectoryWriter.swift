import Foundation
import CNBackupCore

/// Writes the members of a base backup's tar into a new or empty folder, in this process: each
/// file's data goes from the decompressed chunks straight to `write(2)`, in the chunks' own large
/// pieces. A `tar -x` child cost a second copy of every byte through a pipe and wrote in 10 KiB
/// records, which the kernel pays for in partial-page work: it was half of a restore's CPU
/// (BENCHMARKS.md, the restore profile).
///
/// Every member is checked before anything of it is written (`check`): no absolute path, no `..`,
/// no link that leaves the folder, files, folders and symbolic links only (pg_basebackup writes no
/// hard links and no devices). Every path is walked from the folder's own descriptor, one
/// component at a time, with `O_NOFOLLOW`: a member can never be written through a symbolic link,
/// even one an earlier member made. Files are created with `O_EXCL` (a member named twice is
/// refused), with the member's permission bits (the reader already refused setuid, setgid and
/// sticky) and modification time; folders it must create on the way are mode 0700.
final class DataDirectoryWriter: TarVisitor {
    private let root: Int32
    private let rootPath: String
    /// Open folders by their path inside the root ("" is the root), so a folder of many files is
    /// walked once.
    private var folders: [String: Int32] = [:]
    private var file: Int32 = -1
    private var fileEntry: TarEntry?
    private var written: Int64 = 0
    /// Folder times are set last: writing into a folder changes its time.
    private var folderTimes: [(path: String, modified: Int64)] = []

    init(directory: String) throws {
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw CNBackupError(.io, "cannot open \(directory): \(String(cString: strerror(errno)))") }
        root = fd
        rootPath = directory
        folders[""] = fd
    }

    deinit {
        if file >= 0 { close(file) }
        for fd in folders.values { close(fd) }
    }

    /// What may be extracted at all; thrown before a byte of the member is written.
    static func check(_ entry: TarEntry) throws {
        func unsafe(_ path: String) -> Bool {
            path.hasPrefix("/") || path.split(separator: "/").contains("..")
        }
        if unsafe(entry.path) { throw CNBackupError(.integrity, "the base backup holds a member outside its folder: \(entry.path)") }
        switch entry.kind {
        case .file, .directory: break
        case .symlink:
            if unsafe(entry.linkTarget) {
                throw CNBackupError(.integrity, "the base backup holds a link leaving its folder: \(entry.path) -> \(entry.linkTarget)")
            }
        case .hardlink, .other:
            throw CNBackupError(.integrity, "the base backup holds a member of an unexpected type: \(entry.path)")
        }
    }

    func begin(_ entry: TarEntry) throws {
        try Self.check(entry)
        let components = entry.path.split(separator: "/").filter { $0 != "." }.map(String.init)
        guard let name = components.last else {
            if entry.kind == .directory { return }   // "./" itself: the root
            throw CNBackupError(.integrity, "the base backup holds a member without a name")
        }
        let parentPath = components.dropLast().joined(separator: "/")
        let parent = try folder(parentPath)
        let permissions = mode_t(entry.mode & 0o777)
        switch entry.kind {
        case .directory:
            let path = parentPath.isEmpty ? name : parentPath + "/" + name
            let fd = try folder(path, creatingWith: permissions | 0o700)
            guard fchmod(fd, permissions | 0o700) == 0 else { throw failure("set the mode of", path) }
            folderTimes.append((path, entry.modified))
        case .file:
            let fd = openat(parent, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw failure("create", entry.path) }
            file = fd
            fileEntry = entry
            written = 0
        case .symlink:
            guard symlinkat(entry.linkTarget, parent, name) == 0 else { throw failure("create the link", entry.path) }
        case .hardlink, .other:
            break   // refused by check
        }
    }

    func data(_ bytes: ArraySlice<UInt8>) throws {
        guard file >= 0 else { return }
        try bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let n = write(file, buffer.baseAddress! + offset, buffer.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw failure("write", fileEntry?.path ?? "?")
                }
                offset += n
            }
        }
        written += Int64(bytes.count)
    }

    func end(_ entry: TarEntry) throws {
        guard entry.kind == .file, file >= 0 else { return }
        defer { close(file); file = -1; fileEntry = nil }
        guard written == entry.size else {
            throw CNBackupError(.integrity, "\(entry.path) was written with \(written) of its \(entry.size) bytes")
        }
        var times = [timespec(tv_sec: Int(entry.modified), tv_nsec: 0), timespec(tv_sec: Int(entry.modified), tv_nsec: 0)]
        guard fchmod(file, mode_t(entry.mode & 0o777)) == 0, futimens(file, &times) == 0 else {
            throw failure("set the mode and time of", entry.path)
        }
    }

    /// Sets the folders' times (after everything in them was written).
    func finish() throws {
        for (path, modified) in folderTimes.reversed() {
            var times = [timespec(tv_sec: Int(modified), tv_nsec: 0), timespec(tv_sec: Int(modified), tv_nsec: 0)]
            guard utimensat(root, path, &times, AT_SYMLINK_NOFOLLOW) == 0 else { throw failure("set the time of", path) }
        }
    }

    /// The open folder at `path` inside the root, made (mode `creatingWith`) where missing, never
    /// through a symbolic link.
    private func folder(_ path: String, creatingWith mode: mode_t = 0o700) throws -> Int32 {
        if let fd = folders[path] { return fd }
        let slash = path.lastIndex(of: "/")
        let parentPath = slash.map { String(path[..<$0]) } ?? ""
        let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        let parent = try folder(parentPath)
        if mkdirat(parent, name, mode) != 0 && errno != EEXIST { throw failure("create the folder", path) }
        let fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ELOOP || errno == ENOTDIR {
                throw CNBackupError(.integrity, "the base backup writes through \(path), which is not a folder (a link or a file): refused")
            }
            throw failure("open the folder", path)
        }
        folders[path] = fd
        return fd
    }

    private func failure(_ what: String, _ path: String) -> CNBackupError {
        CNBackupError(.io, "cannot \(what) \(rootPath)/\(path): \(String(cString: strerror(errno)))")
    }
}

import Foundation
import CNBackupCore
import CNBackupStorage

/// Restores one component of a set to a file or to standard output.
///
/// To a file: the plaintext goes to a temporary file (mode 0600) beside the target, and is
/// fsynced and renamed into place only after the last segment authenticated, the zstd checksum
/// held and the plaintext matched the manifest; a failure removes the temporary file, so no
/// unauthenticated plaintext ever reaches the final path. To standard output: bytes flow as each
/// segment authenticates, and only exit code 0 says the output is whole.
public struct Restorer: Sendable {
    public let catalog: Catalog
    public init(catalog: Catalog) { self.catalog = catalog }

    public enum Destination: Sendable {
        case file(path: String, overwrite: Bool)
        case standardOutput
    }

    @discardableResult
    public func restore(setId: String, component: String, node: String? = nil, identities: [Identity],
                        to destination: Destination) throws -> Int64 {
        let entry = try catalog.entry(setId: setId, node: node)
        guard entry.isTrusted, let manifest = entry.manifest else {
            throw CNBackupError(.authentication,
                "set \(setId) cannot be trusted: signature \(entry.signature)\(entry.problems.isEmpty ? "" : "; " + entry.problems.joined(separator: "; "))")
        }
        guard let record = manifest.components.first(where: { $0.name == component }) else {
            let names = manifest.components.map(\.name).joined(separator: ", ")
            throw CNBackupError(.notFound, "set \(setId) has no component \"\(component)\"; it has: \(names)")
        }
        let reader = try ComponentReader(store: catalog.store, layout: entry.layout, manifest: manifest,
                                         record: record, identities: identities)

        switch destination {
        case .standardOutput:
            let written = try writeAll(reader.plaintext, to: STDOUT_FILENO, what: "standard output")
            try reader.finish()
            return written
        case .file(let path, let overwrite):
            if !overwrite && FileManager.default.fileExists(atPath: path) {
                throw CNBackupError(.alreadyExists, "\(path) already exists: choose another path or pass --force")
            }
            let directory = (path as NSString).deletingLastPathComponent
            let temporary = (directory.isEmpty ? "." : directory) + "/.\((path as NSString).lastPathComponent).cnbackup-\(UUID().uuidString).part"
            let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            guard fd >= 0 else {
                throw CNBackupError(.io, "cannot create a file in \(directory.isEmpty ? "." : directory): \(String(cString: strerror(errno)))")
            }
            // Registered so that a signal that ends the process at once still removes the plaintext.
            LastResort.register(file: temporary)
            var done = false
            defer { if !done { unlink(temporary) }; LastResort.unregister(file: temporary) }
            let written: Int64
            do {
                defer { close(fd) }
                written = try writeAll(reader.plaintext, to: fd, what: temporary)
                try reader.finish()
                guard fsync(fd) == 0 else { throw CNBackupError(.io, "cannot sync \(temporary)") }
            }
            guard rename(temporary, path) == 0 else {
                throw CNBackupError(.io, "cannot move the restored file to \(path): \(String(cString: strerror(errno)))")
            }
            done = true
            return written
        }
    }
}

import Foundation

/// Makes private temporary folders: mode 0700 by `mkdtemp`, so no other user can list or open
/// what is put inside (a pgpass file, a restore's plaintext, a throwaway server's data). The one
/// place folder names and the error are chosen; owners register what they make with `LastResort`.
public enum PrivateFolder {
    /// Creates `<parent>/<prefix>XXXXXX` (parent: the temporary directory unless given) and returns its path.
    public static func create(prefix: String, in parent: String? = nil) throws -> String {
        let base = parent.map { ($0.isEmpty ? "." : $0) + "/" } ?? NSTemporaryDirectory()
        var buffer = Array((base + prefix + "XXXXXX").utf8CString)
        guard let made = mkdtemp(&buffer) else {
            throw CNBackupError(.io, "cannot create a private folder in \(parent ?? NSTemporaryDirectory()): \(String(cString: strerror(errno)))")
        }
        return String(cString: made)
    }
}

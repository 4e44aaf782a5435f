import Foundation

extension CaptureSourceDefinition {
    /// Starts the source and returns its bytes as a stream.
    func open() throws -> ByteStream {
        switch self {
        case .command(let arguments, let environment):
            return try ChildProcessStream(arguments: arguments, environment: environment)
        case .file(let path):
            let fd = Foundation.open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else {
                throw CNBackupError(.capture, "cannot open \(path): \(String(cString: strerror(errno)))")
            }
            return FileDescriptorStream(fd: fd, owns: true, what: path)
        case .directory(let path):
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw CNBackupError(.capture, "\(path) is not a folder")
            }
            return try ChildProcessStream(arguments: ["tar", "-C", path, "-cf", "-", "."])
        }
    }

    /// The size to expect, when the source knows it (for the store's part size).
    var sizeHint: Int64? {
        if case .file(let path) = self, let attributes = try? FileManager.default.attributesOfItem(atPath: path) {
            return (attributes[.size] as? NSNumber)?.int64Value
        }
        return nil
    }
}

import Foundation
import CNBackupCore
import CNBackupProcess

/// Keeps a password for libpq in a private temporary pgpass file (mode 0600 in a 0700 folder),
/// so it never appears in a process's arguments or environment; removed when released.
package final class TemporaryPassFile {
    package let path: String
    private let directory: String

    package init(host: String, port: Int, user: String, passwordFile: String) throws {
        guard var data = FileManager.default.contents(atPath: passwordFile).map(Array.init) else {
            throw CNBackupError(.invalidInput, "cannot read the password file \(passwordFile): check the path and the secret's mount")
        }
        defer { wipe(&data) }
        while let last = data.last, last == 0x0A || last == 0x0D { data.removeLast() }
        Redaction.register(String(decoding: data, as: UTF8.self))
        // pgpass fields escape ':' and '\'.
        func escape(_ bytes: [UInt8]) -> [UInt8] {
            bytes.flatMap { $0 == 0x3A || $0 == 0x5C ? [0x5C, $0] : [$0] }
        }
        var line = escape(Array(host.utf8)) + Array(":\(port):*:".utf8) + escape(Array(user.utf8)) + [0x3A] + escape(data) + [0x0A]
        defer { wipe(&line) }
        directory = try PrivateFolder.create(prefix: "cnbackup-pg-")
        path = directory + "/pgpass"
        LastResort.register(file: path, inPrivateFolder: true)
        do {
            try KeyFile.writeSecretFile(path: path, contents: line, what: "pgpass file")
        } catch {
            LastResort.unregister(file: path); rmdir(directory)
            throw error
        }
    }

    deinit {
        // Overwrite before unlinking: the password should not linger in the file system's free blocks.
        if let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.intValue {
            let fd = open(path, O_WRONLY)
            if fd >= 0 { try? writeFully(fd: fd, [UInt8](repeating: 0, count: size), what: "pgpass"); fsync(fd); close(fd) }
        }
        unlink(path)
        rmdir(directory)
        LastResort.unregister(file: path)
    }
}

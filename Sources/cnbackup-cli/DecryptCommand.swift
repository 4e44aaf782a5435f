import ArgumentParser
import CNBackup
import Foundation
import CNBackupCore
import CNBackupStorage

struct DecryptCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decrypt",
        abstract: "Open a sealed object from standard input, writing the plaintext to standard output.",
        discussion: "Each segment is authenticated before it is written; only exit code 0 means the output is whole. Break-glass: cnbackup decrypt --identity KEY < OBJECT.zst.cnb | zstd -d | pg_restore ...")

    @Option(name: .customLong("identity"), help: "A private key file (X25519 or symmetric); repeat to offer several.")
    var identities: [String] = []

    func validate() throws {
        if identities.isEmpty { throw ValidationError("give the private key file with --identity") }
    }

    func run() throws {
        try reporting {
            let keys = try identities.map { try KeyFile.loadIdentity(path: $0) }
            let input = PipelinedStream(FileDescriptorStream(fd: STDIN_FILENO, owns: false, what: "standard input"), name: "stdin")
            let opened = try OpeningStream(input, identities: keys)
            _ = try writeAll(PipelinedStream(opened, name: "open"), to: STDOUT_FILENO, what: "standard output")
        }
    }
}

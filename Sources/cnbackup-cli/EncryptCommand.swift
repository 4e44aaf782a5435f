import ArgumentParser
import CNBackup
import Foundation
import CNBackupCore
import CNBackupStorage

struct EncryptCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "encrypt", abstract: "Seal standard input to recipients, writing the sealed object to standard output.")

    @Option(name: .customLong("recipient"), help: "A recipient (cnb1-x25519-pub-...); repeat for several.")
    var recipients: [String] = []
    @Option(name: .customLong("key-file"), help: "A symmetric key file to seal to; repeat for several.")
    var keyFiles: [String] = []

    func validate() throws {
        if recipients.isEmpty && keyFiles.isEmpty { throw ValidationError("give at least one --recipient or --key-file") }
    }

    func run() throws {
        try reporting {
            var sealTo = try recipients.map { try Recipient(parsing: $0) }
            sealTo += try keyFiles.map { try KeyFile.loadSymmetricRecipient(path: $0) }
            guard !sealTo.isEmpty else { throw CNBackupError(.invalidInput, "give at least one --recipient or --key-file") }
            if isatty(STDOUT_FILENO) == 1 {
                throw CNBackupError(.invalidInput, "standard output is a terminal: redirect it to a file (> out.cnb)")
            }
            let input = PipelinedStream(FileDescriptorStream(fd: STDIN_FILENO, owns: false, what: "standard input"), name: "stdin")
            let sealed = try SealingStream(input, recipients: sealTo, description: ObjectDescription())
            _ = try writeAll(PipelinedStream(sealed, name: "seal"), to: STDOUT_FILENO, what: "standard output")
        }
    }
}

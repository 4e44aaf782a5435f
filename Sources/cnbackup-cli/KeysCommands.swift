import ArgumentParser
import CNBackup
import Foundation
import CNBackupCore
import CNBackupStorage

struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "keys", abstract: "Make keys.",
                                                    subcommands: [KeysGenerate.self])
}

struct KeysGenerate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Write a new private key file (mode 0600) and print its public string.",
        discussion: "X25519 by default (a recipient: seal to the printed cnb1-x25519-pub-... string). --signing makes the node's Ed25519 manifest-signing key (readers pin the printed cnb1-ed25519-pub-... string). --symmetric makes a 32-byte symmetric key file.")

    @Option(help: "Where to write the private key; never overwritten.") var out: String
    @Flag(help: "An Ed25519 signing key instead of an X25519 recipient key.") var signing = false
    @Flag(help: "A symmetric key file instead of an X25519 recipient key.") var symmetric = false

    func validate() throws {
        if signing && symmetric { throw ValidationError("choose one of --signing and --symmetric") }
    }

    func run() throws {
        try reporting {
            let kind: KeyFile.Kind = signing ? .ed25519 : (symmetric ? .symmetric : .x25519)
            let publicString = try KeyFile.generate(kind: kind, at: out)
            printError("wrote private key to \(out) (mode 0600); keep it off the cluster and backed up")
            print(publicString)
        }
    }
}

struct EncryptCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "encrypt", abstract: "Seal standard input to recipients, writing the sealed object to standard output.")

    @Option(name: .customLong("recipient"), help: "A recipient (cnb1-x25519-pub-...); repeat for several.")
    var recipients: [String] = []
    @Option(name: .customLong("key-file"), help: "A symmetric key file to seal to; repeat for several.")
    var keyFiles: [String] = []

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

struct DecryptCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decrypt",
        abstract: "Open a sealed object from standard input, writing the plaintext to standard output.",
        discussion: "Each segment is authenticated before it is written; only exit code 0 means the output is whole. Break-glass: cnbackup decrypt --identity KEY < OBJECT.zst.cnb | zstd -d | pg_restore ...")

    @Option(name: .customLong("identity"), help: "A private key file (X25519 or symmetric); repeat to offer several.")
    var identities: [String] = []

    func run() throws {
        try reporting {
            guard !identities.isEmpty else { throw CNBackupError(.invalidInput, "give the private key file with --identity") }
            let keys = try identities.map { try KeyFile.loadIdentity(path: $0) }
            let input = PipelinedStream(FileDescriptorStream(fd: STDIN_FILENO, owns: false, what: "standard input"), name: "stdin")
            let opened = try OpeningStream(input, identities: keys)
            _ = try writeAll(PipelinedStream(opened, name: "open"), to: STDOUT_FILENO, what: "standard output")
        }
    }
}

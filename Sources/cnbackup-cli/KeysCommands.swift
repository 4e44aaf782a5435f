import ArgumentParser
import CNBackup
import Foundation
import CNBackupCore
import CNBackupStorage

struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "keys", abstract: "Make keys and show what a key file holds.",
                                                    subcommands: [KeysGenerate.self, KeysShow.self])
}

struct KeysGenerate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Write a new private key file (mode 0600) and print its public string.",
        discussion: "X25519 by default (a recipient: seal to the printed cnb1-x25519-pub-... string). --signing makes the node's Ed25519 manifest-signing key (readers pin the printed cnb1-ed25519-pub-... string). --symmetric makes a 32-byte symmetric key file. --dedup makes the secret of deduplicated captures (dedup.keyFile): it keys chunk ids and chunk boundaries and opens nothing.")

    @Option(help: "Where to write the private key; never overwritten.") var out: String
    @Flag(help: "An Ed25519 signing key instead of an X25519 recipient key.") var signing = false
    @Flag(help: "A symmetric key file instead of an X25519 recipient key.") var symmetric = false
    @Flag(help: "The dedup secret of deduplicated captures (the pipeline's dedup.keyFile).") var dedup = false

    func validate() throws {
        if [signing, symmetric, dedup].filter({ $0 }).count > 1 { throw ValidationError("choose one of --signing, --symmetric and --dedup") }
    }

    func run() throws {
        try reporting {
            let kind: KeyFile.Kind = signing ? .ed25519 : (symmetric ? .symmetric : (dedup ? .dedup : .x25519))
            let publicString = try KeyFile.generate(kind: kind, at: out)
            switch kind {
            case .ed25519:
                printToStandardError("wrote the node's signing key to \(out) (mode 0600): this private key is the one that lives on the cluster, in the backup job's Secret (signing.keyFile); keep a copy off the cluster to re-sign after a loss")
                printToStandardError("the public key below is what readers pin: cnbackup list/verify/restore/prune --signer KEY (or CNBACKUP_SIGNER)")
            case .x25519:
                printToStandardError("wrote private key to \(out) (mode 0600): it opens every set sealed to it; keep it off the cluster and backed up")
                printToStandardError("the public key below goes in the pipeline's encryption.recipients")
            case .symmetric:
                printToStandardError("wrote symmetric key to \(out) (mode 0600): it seals and opens; the key id below names it")
            case .dedup:
                printToStandardError("wrote the dedup secret to \(out) (mode 0600): it goes in the backup job's Secret (dedup.keyFile); it names chunks and cuts dumps into them, and opens nothing. A new one makes the next dump of each capture a full one")
            }
            print(publicString)
        }
    }
}

struct KeysShow: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show", abstract: "Print a key file's public half and key id (private and public key files; never the private key).")

    @Argument(help: "The key file.") var file: String
    @Flag(help: "JSON output.") var json = false

    func run() throws {
        try reporting {
            let summary = try KeyFile.summary(path: file)
            if json {
                struct Shown: Encodable { var schemaVersion = 1; var file: String; var kind: String; var `private`: Bool; var publicKey: String?; var keyId: String }
                try printJSON(Shown(file: file, kind: summary.kind, private: summary.isPrivate, publicKey: summary.publicKey, keyId: summary.keyId))
                return
            }
            let role: String
            switch summary.kind {
            case "x25519-private": role = "X25519 private key: opens sets sealed to its public key"
            case "x25519-public": role = "X25519 public key: a recipient (encryption.recipients)"
            case "ed25519-private": role = "Ed25519 signing key (private): the node's, in the backup job's Secret; readers pin its public key"
            case "ed25519-public": role = "Ed25519 public key: a signer readers pin (--signer)"
            case "dedup": role = "dedup secret (private): keys chunk ids and chunk boundaries; opens nothing"
            default: role = "symmetric key (private): seals and opens"
            }
            print("\(file): \(role)")
            if let publicKey = summary.publicKey { print("public key: \(publicKey)") }
            print("key id: \(summary.keyId)")
        }
    }
}

import CLibFuzzer
import CNBackup
import Foundation
import CNBackupCore
import CNBackupStorage

/// Runs libFuzzer on `testOneInput` with the process's arguments (libFuzzer's flags, corpus
/// folders, or files to replay) and exits with libFuzzer's status.
public func runLibFuzzer(_ testOneInput: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> Never {
    var argc = CommandLine.argc
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
    exit(LLVMFuzzerRunDriver(&argc, &argv, testOneInput))
}

/// The fixed test keys of the fuzz targets: those of the golden vector (docs/FORMAT.md), so the
/// seed objects open, plus a signing key for manifests. Test keys only: never use them for data.
public enum FuzzKeys {
    /// X25519 secret 0x11 * 32 (the golden vector's recipient).
    public static let x25519Secret = "CNB1-X25519-SECRET-ERERERERERERERERERERERERERERERERERERERERERFEhKJD"
    /// Symmetric key 0x22 * 32 (the golden vector's symmetric recipient).
    public static let symmetricSecret = "CNB1-SYMMETRIC-SECRET-IiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiKLRcSF"
    /// Ed25519 secret 0x66 * 32: the pinned signer of the manifest target.
    public static let signingSecret = "CNB1-ED25519-SECRET-ZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmaYkIVZ"

    /// Loads a key through the library's own key-file reader (the public way in), from a file
    /// written to a fresh temporary folder and removed again.
    public static func load<T>(_ line: String, _ reader: (String) throws -> T) -> T {
        let dir = NSTemporaryDirectory() + "cnbackup-fuzz-key-" + UUID().uuidString
        let path = dir + "/key"
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            // Private, as cnbackup requires of a private key file (it refuses one open to others).
            guard FileManager.default.createFile(atPath: path, contents: Data((line + "\n").utf8), attributes: [.posixPermissions: 0o600]) else {
                throw CocoaError(.fileWriteUnknown)
            }
            return try reader(path)
        } catch {
            fatalError("cannot load a fixed fuzz key: \(error)")
        }
    }
}

/// The readers' contract under fuzzing: any input either reads or is refused with a
/// CNBackupError. Any other error (or a trap, a hang, a huge allocation, which libFuzzer itself
/// catches) is a finding.
public func expectRefusalOrSuccess(_ what: String, _ body: () throws -> Void) {
    do {
        try body()
    } catch is CNBackupError {
    } catch {
        fatalError("\(what) threw \(type(of: error)), not a CNBackupError: \(error)")
    }
}

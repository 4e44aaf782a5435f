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
            try (line + "\n").write(toFile: path, atomically: false, encoding: .utf8)
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

/// An object store in memory: enough of the protocol for the catalog and the verifier to read from.
public final class MemoryStore: ObjectStore, @unchecked Sendable {
    // @unchecked: one fuzz input at a time, on one thread.
    public var objects: [String: [UInt8]] = [:]
    public init() {}

    public var displayName: String { "memory://fuzz" }

    public func put(key: String, from source: ByteStream, options: PutOptions) throws -> ObjectInfo {
        let bytes = try source.readAll(limit: 1 << 24)
        objects[key] = bytes
        return ObjectInfo(key: key, size: Int64(bytes.count), lastModified: Date(timeIntervalSince1970: 0))
    }

    public func get(key: String, range: ClosedRange<Int64>?) throws -> ByteStream {
        guard let bytes = objects[key] else { throw CNBackupError(.notFound, "no object \(key) in \(displayName)") }
        guard let range else { return MemoryStream(bytes) }
        let lower = Int(max(0, range.lowerBound)), upper = Int(min(Int64(bytes.count - 1), range.upperBound))
        return MemoryStream(lower <= upper ? Array(bytes[lower...upper]) : [])
    }

    public func head(key: String) throws -> ObjectInfo? {
        objects[key].map { ObjectInfo(key: key, size: Int64($0.count), lastModified: Date(timeIntervalSince1970: 0)) }
    }

    public func list(prefix: String) throws -> [ObjectInfo] {
        objects.keys.filter { $0.hasPrefix(prefix) }.sorted().compactMap { try? head(key: $0) }
    }

    public func delete(keys: [String]) throws { for key in keys { objects[key] = nil } }
    public func tags(key: String) throws -> [String: String] { [:] }
}

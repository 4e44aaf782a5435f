import Foundation
import CNBackupCore
import CNBackupHTTP
import CNBackupStorage

/// A fresh temporary folder, removed when `body` returns.
package func withTemporaryDirectory<T>(_ body: (String) throws -> T) throws -> T {
    let path = NSTemporaryDirectory() + "cnbackup-test-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try body(path)
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
package func patternBytes(_ count: Int, seed: UInt64 = 0x9E3779B97F4A7C15) -> [UInt8] {
    var state = seed
    var out = [UInt8](repeating: 0, count: count)
    for i in 0..<count {
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        out[i] = UInt8(truncatingIfNeeded: state)
    }
    return out
}

package func newIdentity() throws -> Identity {
    let secret = try randomBytes(32)
    return .x25519(secret: SecretBytes(secret), publicKey: try X25519.publicKey(privateKey: secret))
}

package func seal(_ plaintext: [UInt8], to recipients: [Recipient], segmentSize: Int = 64,
          description: ObjectDescription = ObjectDescription()) throws -> [UInt8] {
    try SealingStream(MemoryStream(plaintext, chunkSize: 37), recipients: recipients, description: description,
                      segmentSize: segmentSize).readAll(limit: 1 << 30)
}

package func openSealed(_ sealed: [UInt8], with identities: [Identity]) throws -> [UInt8] {
    try OpeningStream(MemoryStream(sealed, chunkSize: 41), identities: identities).readAll(limit: 1 << 30)
}

/// A stream that yields some bytes and then fails, as a dying pg_dump does.
package final class FailingStream: ByteStream {
    private var sent = false
    private let bytes: [UInt8]
    package init(after bytes: [UInt8]) { self.bytes = bytes }
    package func next() throws -> [UInt8]? {
        if !sent { sent = true; return bytes }
        throw CNBackupError(.capture, "the source died")
    }
}

/// Starts a stand-in HTTP server written in Python (`script` prints its port first, then serves
/// for a bounded time and ends by itself, so a failed test leaves nothing behind). Returns
/// `http://127.0.0.1:PORT`.
package func startPythonServer(_ script: String, arguments: [String]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", "-c", script] + arguments
    let out = Pipe()
    process.standardOutput = out
    try process.run()
    let port = String(decoding: out.fileHandleForReading.availableData, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    return "http://127.0.0.1:\(port)"
}

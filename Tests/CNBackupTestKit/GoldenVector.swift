import Foundation
@testable import CNBackupCore

/// The golden vector of docs/FORMAT.md: a sealed object made from fixed keys, salts and data key,
/// so its bytes never change (the Core tests compare it with Resources/golden-v1.hex; the fuzz
/// seeds start from it).
package enum GoldenVector {
    /// The fixed inputs of the golden vector in docs/FORMAT.md and Resources/golden-v1.hex.
    package static func object() throws -> [UInt8] {
        let recipientSecret = [UInt8](hex: String(repeating: "11", count: 32))!
        let symmetric = try SymmetricKey([UInt8](hex: String(repeating: "22", count: 32))!)
        let dataKey = try DataKey([UInt8](hex: String(repeating: "33", count: 32))!)
        let ephemeral = [UInt8](hex: String(repeating: "44", count: 32))!
        let salt = [UInt8](hex: String(repeating: "55", count: 16))!
        let description = ObjectDescription(setId: "20261125T040000Z-0a1b2c3d", node: "sv-1", migrationId: 3, serial: 0,
                                            component: "identities", role: "identities", captureStart: "2026-11-25T04:00:00.000Z")
        let plaintext = Array("cnbackup golden vector: two segments of 64 bytes and a short last one.\n".utf8)
            + Array("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef!".utf8)
        let stream = try SealingStream(MemoryStream(plaintext), recipients: [.x25519(publicKey: try X25519.publicKey(privateKey: recipientSecret)), .symmetric(symmetric)],
                                       description: description, segmentSize: 64, dataKey: dataKey,
                                       ephemeralSecrets: [ephemeral], symmetricSalts: [salt])
        return try stream.readAll(limit: 1 << 20)
    }
}

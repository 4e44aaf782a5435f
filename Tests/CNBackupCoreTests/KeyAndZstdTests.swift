import Foundation
import Testing
import CNBackupCore
import CNBackupTestKit

@Suite struct KeyTests {
    @Test func generatedKeyFilesAreSecretAndRoundTrip() throws {
        try withTemporaryDirectory { dir in
            let recipientText = try KeyFile.generate(kind: .x25519, at: dir + "/k")
            #expect(recipientText.hasPrefix("cnb1-x25519-pub-"))
            let attributes = try FileManager.default.attributesOfItem(atPath: dir + "/k")
            #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
            let identity = try KeyFile.loadIdentity(path: dir + "/k")
            #expect(try Recipient(parsing: recipientText).keyID == identity.keyID)
            // Never overwritten.
            #expect(throws: CNBackupError.self) { try KeyFile.generate(kind: .x25519, at: dir + "/k") }
            let signerText = try KeyFile.generate(kind: .ed25519, at: dir + "/s")
            #expect(try KeyFile.loadSigningKey(path: dir + "/s").publicKey == SignerKey(parsing: signerText))
        }
    }

    @Test func anIdentityFileOpenToOthersIsRefused() throws {
        try withTemporaryDirectory { dir in
            _ = try KeyFile.generate(kind: .x25519, at: dir + "/k")
            _ = try KeyFile.loadIdentity(path: dir + "/k")
            for mode: mode_t in [0o644, 0o640, 0o604] {
                chmod(dir + "/k", mode)
                let error = #expect(throws: CNBackupError.self) { try KeyFile.loadIdentity(path: dir + "/k") }
                #expect(error?.message.contains("open to others") == true && error?.message.contains("chmod 600") == true)
            }
        }
    }

    @Test func encodingsTellPrivateFromPublicAndCatchTypos() throws {
        try withTemporaryDirectory { dir in
            _ = try KeyFile.generate(kind: .x25519, at: dir + "/k")
            let secretLine = try KeyFile.readKeyLine(path: dir + "/k")
            #expect(secretLine.hasPrefix("CNB1-X25519-SECRET-"))
            let misuse = #expect(throws: CNBackupError.self) { try Recipient(parsing: secretLine) }
            #expect(misuse?.message.contains("private key") == true)
            #expect(misuse?.message.contains(secretLine) == false)
            let recipient = KeyText.encode(.x25519Public, patternBytes(32))
            var typo = Array(recipient); typo[20] = typo[20] == "A" ? "B" : "A"
            let damaged = #expect(throws: CNBackupError.self) { try Recipient(parsing: String(typo)) }
            #expect(damaged?.message.contains("checksum") == true)
        }
    }

    @Test func symmetricKeyIDIsNotAPlainHash() throws {
        let key = patternBytes(32)
        let id = try KeyID.ofSymmetricKey(key)
        #expect(id.bytes != Array(SHA256Hasher.hash(key)[0..<8]))
        #expect(id == (try KeyID.ofSymmetricKey(key)))
    }
}

@Suite struct ZstdTests {
    @Test(arguments: [0, 1, 1 << 20, 3 << 20 + 5])
    func roundTrip(size: Int) throws {
        let plaintext = patternBytes(size)
        let compressed = try ZstdCompressStream(MemoryStream(plaintext), settings: CompressionSettings()).readAll(limit: 1 << 30)
        #expect(try ZstdDecompressStream(MemoryStream(compressed)).readAll(limit: 1 << 30) == plaintext)
    }

    @Test func workersGiveAStandardFrame() throws {
        let plaintext = Array(String(repeating: "canton network backup ", count: 200_000).utf8)
        let compressed = try ZstdCompressStream(MemoryStream(plaintext), settings: CompressionSettings(level: 5, workers: 2)).readAll(limit: 1 << 30)
        #expect(compressed.count < plaintext.count / 10)
        #expect(try ZstdDecompressStream(MemoryStream(compressed, chunkSize: 999)).readAll(limit: 1 << 30) == plaintext)
    }

    @Test func cutOrDamagedFramesFail() throws {
        let compressed = try ZstdCompressStream(MemoryStream(patternBytes(100_000)), settings: CompressionSettings()).readAll(limit: 1 << 30)
        #expect(throws: CNBackupError.self) { try ZstdDecompressStream(MemoryStream(Array(compressed.dropLast(3)))).readAll(limit: 1 << 30) }
        var damaged = compressed; damaged[damaged.count - 2] ^= 0xff  // the content checksum
        #expect(throws: CNBackupError.self) { try ZstdDecompressStream(MemoryStream(damaged)).readAll(limit: 1 << 30) }
        #expect(throws: CNBackupError.self) { try ZstdDecompressStream(MemoryStream([])).readAll(limit: 1 << 30) }
    }

    @Test func levelOutOfRangeIsRefused() {
        #expect(throws: CNBackupError.self) { try ZstdCompressStream(MemoryStream([]), settings: CompressionSettings(level: 20)) }
    }
}

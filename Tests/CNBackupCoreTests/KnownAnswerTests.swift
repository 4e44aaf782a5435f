import Foundation
import Testing
import CNBackupCore
import CNBackupTestKit

/// Published vectors: NIST/McGrew-Viega GCM test cases, RFC 7748, RFC 5869, RFC 8032, RFC 3720 (CRC-32C).
@Suite struct KnownAnswerTests {
    func hex(_ s: String) -> [UInt8] { [UInt8](hex: s)! }

    func crc32c(_ bytes: [UInt8], splits: [Int] = []) -> CRC32C {
        var crc = CRC32C()
        var start = 0
        for end in splits + [bytes.count] {
            bytes[start..<end].withUnsafeBytes { crc.update($0) }
            start = end
        }
        return crc
    }

    @Test func crc32cRFC3720Vectors() {
        #expect(crc32c(Array("123456789".utf8)).value == 0xE306_9283)
        #expect(crc32c([UInt8](repeating: 0, count: 32)).value == 0x8A91_36AA)
        #expect(crc32c([UInt8](repeating: 0xFF, count: 32)).value == 0x62A8_AB43)
        #expect(crc32c((0..<32).map { UInt8($0) }).value == 0x46DD_794E)
        #expect(crc32c((0..<32).map { UInt8(31 - $0) }).value == 0x113F_DB5C)
        #expect(crc32c([]).value == 0)
    }

    @Test func crc32cInPiecesEqualsWhole() {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<100_003).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let whole = crc32c(bytes).value
        // Pieces that leave the 8-byte steps misaligned, and empty pieces.
        #expect(crc32c(bytes, splits: [1, 1, 8, 13, 4_096, 4_099, 65_537]).value == whole)
        var flipped = bytes; flipped[50_000] ^= 0x10
        #expect(crc32c(flipped).value != whole)
    }

    @Test func crc32cAsBackupManifestWritesIt() {
        // PostgreSQL lists the value's little-endian bytes (checked against a real backup_manifest).
        let crc = crc32c(Array("123456789".utf8))
        #expect(crc.matches(manifestHex: "839206e3"))
        #expect(crc.matches(manifestHex: "839206E3"))
        #expect(crc.matches(manifestHex: "e3069283"))   // a big-endian server's order
        #expect(!crc.matches(manifestHex: "839206e4"))
        #expect(!crc.matches(manifestHex: ""))
    }

    @Test func aesGCMTestCase13And14() throws {
        let key = [UInt8](repeating: 0, count: 32), nonce = [UInt8](repeating: 0, count: 12)
        #expect(try AES256GCM.seal(key: key, nonce: nonce, plaintext: []).hex == "530f8afbc74536b9a963b4f1c4cb738b")
        #expect(try AES256GCM.seal(key: key, nonce: nonce, plaintext: [UInt8](repeating: 0, count: 16)).hex
                == "cea7403d4d606b6e074ec5d3baf39d18" + "d0d1c8a799996bf0265b98b5d48ab919")
    }

    @Test func aesGCMTestCase16WithAAD() throws {
        let key = hex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308")
        let nonce = hex("cafebabefacedbaddecaf888")
        let plaintext = hex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39")
        let aad = hex("feedfacedeadbeeffeedfacedeadbeefabaddad2")
        let expected = "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"
            + "76fc6ece0f4e1768cddf8853bb2d551b"
        let sealed = try AES256GCM.seal(key: key, nonce: nonce, plaintext: plaintext, aad: aad)
        #expect(sealed.hex == expected)
        #expect(try AES256GCM.open(key: key, nonce: nonce, sealed: sealed, aad: aad) == plaintext)
        var tampered = sealed; tampered[0] ^= 1
        #expect(try AES256GCM.open(key: key, nonce: nonce, sealed: tampered, aad: aad) == nil)
        #expect(try AES256GCM.open(key: key, nonce: nonce, sealed: sealed, aad: []) == nil)
    }

    @Test func x25519RFC7748() throws {
        // Section 6.1: Alice and Bob.
        let alice = hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
        let bob = hex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
        #expect(try X25519.publicKey(privateKey: alice).hex == "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
        #expect(try X25519.publicKey(privateKey: bob).hex == "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
        let shared = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
        #expect(try X25519.sharedSecret(privateKey: alice, peerPublicKey: X25519.publicKey(privateKey: bob)).hex == shared)
        #expect(try X25519.sharedSecret(privateKey: bob, peerPublicKey: X25519.publicKey(privateKey: alice)).hex == shared)
        // Section 5.2, first vector.
        #expect(try X25519.sharedSecret(privateKey: hex("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4"),
                                        peerPublicKey: hex("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c")).hex
                == "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552")
    }

    @Test func x25519RefusesLowOrderPoints() {
        // The all-zero point gives an all-zero shared secret, which must be refused.
        #expect(throws: CNBackupError.self) {
            try X25519.sharedSecret(privateKey: hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"),
                                    peerPublicKey: [UInt8](repeating: 0, count: 32))
        }
    }

    @Test func hkdfRFC5869() throws {
        let okm1 = try hkdfSHA256(ikm: [UInt8](repeating: 0x0b, count: 22), salt: Array(0x00...0x0c),
                                  info: Array(0xf0...0xf9), count: 42)
        #expect(okm1.hex == "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865")
        let okm3 = try hkdfSHA256(ikm: [UInt8](repeating: 0x0b, count: 22), salt: [], info: [], count: 42)
        #expect(okm3.hex == "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8")
    }

    @Test func ed25519RFC8032() throws {
        let cases = [
            ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
             "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
             "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
            ("c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
             "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
             "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"),
        ]
        for (secret, publicKey, message, signature) in cases {
            #expect(try Ed25519.publicKey(privateKey: hex(secret)).hex == publicKey)
            #expect(try Ed25519.sign(privateKey: hex(secret), message: hex(message)).hex == signature)
            #expect(Ed25519.verify(publicKey: hex(publicKey), message: hex(message), signature: hex(signature)))
            #expect(!Ed25519.verify(publicKey: hex(publicKey), message: hex(message) + [0], signature: hex(signature)))
        }
    }

    @Test func sha256AndHMAC() throws {
        #expect(SHA256Hasher.hash(Array("abc".utf8)).hex == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        // RFC 4231 test case 2.
        #expect(try hmacSHA256(key: Array("Jefe".utf8), data: Array("what do ya want for nothing?".utf8)).hex
                == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }

    /// RS256 is deterministic (PKCS #1 v1.5): a throwaway key's signature, as
    /// `openssl dgst -sha256 -sign rs256-test-key.pem` made it, from both PEM forms of the key.
    @Test func rs256MatchesOpenSSLsCommandLine() throws {
        func resource(_ name: String, _ ext: String) throws -> [UInt8] {
            let url = try #require(Bundle.module.url(forResource: name, withExtension: ext, subdirectory: "Resources"))
            return Array(try Data(contentsOf: url))
        }
        let expected = String(decoding: try resource("rs256-known-answer", "hex"), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        let message = Array("cnbackup RS256 known answer".utf8)
        #expect(try RS256.sign(pemPrivateKey: try resource("rs256-test-key", "pem"), message: message).hex == expected)
        #expect(try RS256.sign(pemPrivateKey: try resource("rs256-test-key-pkcs1", "pem"), message: message).hex == expected)
        #expect(try RS256.sign(pemPrivateKey: try resource("rs256-test-key", "pem"), message: message + [0]).hex != expected)
        let notAKey = #expect(throws: CNBackupError.self) { try RS256.sign(pemPrivateKey: Array("not a key".utf8), message: message) }
        #expect(notAKey?.code == .invalidInput)
    }
}

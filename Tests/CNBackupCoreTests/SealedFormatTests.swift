import Foundation
import Testing
import CNBackupCore
import CNBackupTestKit

@Suite struct SealedFormatTests {
    let segment = 64

    @Test(arguments: [0, 1, 63, 64, 65, 64 * 5, 64 * 5 + 17, 10_000])
    func roundTrip(size: Int) throws {
        let identity = try newIdentity(), other = try newIdentity()
        let plaintext = patternBytes(size, seed: UInt64(size) + 1)
        let sealed = try seal(plaintext, to: [identity.recipient, other.recipient], segmentSize: segment)
        #expect(try openSealed(sealed, with: [identity]) == plaintext)
        #expect(try openSealed(sealed, with: [other]) == plaintext)
    }

    @Test func symmetricRecipientRoundTrip() throws {
        let key = try SymmetricKey(try randomBytes(32))
        let plaintext = patternBytes(300)
        let sealed = try seal(plaintext, to: [.symmetric(key)])
        #expect(try openSealed(sealed, with: [.symmetric(key)]) == plaintext)
        #expect(throws: CNBackupError.self) { try openSealed(sealed, with: [.symmetric(try SymmetricKey(try randomBytes(32)))]) }
    }

    /// Every flipped bit of the header, the stanzas, the body and the tags is refused.
    @Test func everyFlippedBitIsRefused() throws {
        let identity = try newIdentity()
        let sealed = try seal(patternBytes(150), to: [identity.recipient], segmentSize: segment)
        var accepted: [Int] = []
        for bit in 0..<(sealed.count * 8) {
            var tampered = sealed
            tampered[bit / 8] ^= UInt8(1 << (bit % 8))
            if (try? openSealed(tampered, with: [identity])) != nil { accepted.append(bit) }
        }
        #expect(accepted.isEmpty, "flipped bits accepted: \(accepted)")
    }

    /// Every truncation, at and between segment boundaries, and appended bytes are refused.
    @Test func truncationsAndAppendedBytesAreRefused() throws {
        let identity = try newIdentity()
        let sealed = try seal(patternBytes(64 * 3), to: [identity.recipient], segmentSize: segment)
        for length in 0..<sealed.count {
            #expect(throws: CNBackupError.self, "truncated to \(length)") { try openSealed(Array(sealed[0..<length]), with: [identity]) }
        }
        #expect(throws: CNBackupError.self) { try openSealed(sealed + [0], with: [identity]) }
        #expect(throws: CNBackupError.self) { try openSealed(sealed + patternBytes(80), with: [identity]) }
    }

    @Test func swappedAndDroppedSegmentsAreRefused() throws {
        let identity = try newIdentity()
        let sealed = try seal(patternBytes(64 * 3 + 10), to: [identity.recipient], segmentSize: segment)
        let headerLength = try SealedHeader.read(from: ChunkReader(MemoryStream(sealed))).bytes.count
        let s = segment + 16
        let body = Array(sealed[headerLength...])
        let segments = [Array(body[0..<s]), Array(body[s..<2 * s]), Array(body[2 * s..<3 * s]), Array(body[(3 * s)...])]
        let header = Array(sealed[0..<headerLength])
        let swapped = header + segments[1] + segments[0] + segments[2] + segments[3]
        let dropped = header + segments[0] + segments[2] + segments[3]
        let droppedLast = header + segments[0] + segments[1] + segments[2]
        for variant in [swapped, dropped, droppedLast] {
            #expect(throws: CNBackupError.self) { try openSealed(variant, with: [identity]) }
        }
        let error = #expect(throws: CNBackupError.self) { try openSealed(droppedLast, with: [identity]) }
        #expect(error?.message.contains("cut short") == true)
    }

    @Test func wrongKeyErrorNamesTheKeyIDs() throws {
        let a = try newIdentity(), b = try newIdentity(), wrong = try newIdentity()
        let sealed = try seal(patternBytes(10), to: [a.recipient, b.recipient])
        let error = #expect(throws: CNBackupError.self) { try openSealed(sealed, with: [wrong]) }
        #expect(error?.code == .wrongKey)
        #expect(error?.message.contains(a.keyID.description) == true)
        #expect(error?.message.contains(b.keyID.description) == true)
        #expect(error?.message.contains(wrong.keyID.description) == true)
    }

    @Test func headerFromAnotherObjectIsRefused() throws {
        let identity = try newIdentity()
        let one = try seal(patternBytes(100, seed: 1), to: [identity.recipient])
        let two = try seal(patternBytes(100, seed: 2), to: [identity.recipient])
        let h1 = try SealedHeader.read(from: ChunkReader(MemoryStream(one))).bytes.count
        let h2 = try SealedHeader.read(from: ChunkReader(MemoryStream(two))).bytes.count
        #expect(throws: CNBackupError.self) { try openSealed(Array(one[0..<h1]) + Array(two[h2...]), with: [identity]) }
    }

    @Test func notASealedObject() throws {
        let error = #expect(throws: CNBackupError.self) { try openSealed(Array("hello, this is plain text".utf8), with: [try newIdentity()]) }
        #expect(error?.message.contains("not a cnbackup sealed object") == true)
    }

    // MARK: golden vector

    @Test func goldenVector() throws {
        let url = try #require(Bundle.module.url(forResource: "golden-v1", withExtension: "hex", subdirectory: "Resources"))
        let expected = try String(contentsOf: url, encoding: .utf8).filter { !$0.isWhitespace }
        let produced = try GoldenVector.object()
        #expect(produced.hex == expected)
        // And it opens with the fixed recipient key and the symmetric key alike.
        let secret = [UInt8](hex: String(repeating: "11", count: 32))!
        let identity = Identity.x25519(secret: SecretBytes(secret), publicKey: try X25519.publicKey(privateKey: secret))
        let symmetric = Identity.symmetric(try SymmetricKey([UInt8](hex: String(repeating: "22", count: 32))!))
        let golden = [UInt8](hex: expected)!
        #expect(try openSealed(golden, with: [identity]).count == 136)
        #expect(try openSealed(golden, with: [identity]) == openSealed(golden, with: [symmetric]))
    }
}

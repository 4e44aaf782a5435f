import Foundation

// The sealed object format, version 1 (docs/FORMAT.md is the specification; keep them in step).
//
//   header  = magic "cnb-seal" | version 0x01 | segment size u32 | description length u32 |
//             description (canonical JSON) | stanza count u8 | stanzas | HMAC-SHA256 (32 bytes)
//   stanza  = type u8 | key id (8 bytes) | body length u16 | body
//   payload = segments: AES-256-GCM(payload key, nonce = counter (11 bytes BE) | last flag, plaintext)
//
// One random 32-byte data key per object; HKDF-SHA256 derives from it, under distinct labels, the
// header MAC key, the payload key and the key of the plaintext digest HMAC in the manifest. The
// header MAC commits to the data key, so every recipient provably opens the same bytes.

/// What a sealed object says about itself, in its authenticated header: enough to tell what an
/// orphan object is without any manifest.
public struct ObjectDescription: Codable, Sendable, Equatable {
    public var setId: String?
    public var node: String?
    public var migrationId: Int?
    public var serial: Int?
    public var component: String?
    public var role: String?
    public var captureStart: String?

    public init(setId: String? = nil, node: String? = nil, migrationId: Int? = nil, serial: Int? = nil,
                component: String? = nil, role: String? = nil, captureStart: String? = nil) {
        self.setId = setId; self.node = node; self.migrationId = migrationId; self.serial = serial
        self.component = component; self.role = role; self.captureStart = captureStart
    }

    /// Sorted keys, no whitespace: the same description always gives the same header bytes.
    package func canonicalJSON() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(self))
    }
}

public enum SealedFormat {
    package static let magic: [UInt8] = Array("cnb-seal".utf8)
    package static let version: UInt8 = 1
    public static let defaultSegmentSize = 1 << 20
    package static let segmentSizeRange = 64...(16 << 20)
    package static let maxDescriptionSize = 64 << 10
    package static let maxStanzas = 64
    package static let macSize = 32
    package static let stanzaX25519: UInt8 = 1
    package static let stanzaSymmetric: UInt8 = 2

    package static let labelHeaderMAC = Array("cnbackup v1 header mac".utf8)
    package static let labelPayload = Array("cnbackup v1 payload".utf8)
    package static let labelPlaintextDigest = Array("cnbackup v1 plaintext digest".utf8)
    package static let labelX25519Wrap = Array("cnbackup v1 x25519 wrap".utf8)
    package static let labelSymmetricWrap = Array("cnbackup v1 symmetric wrap".utf8)
    package static let zeroNonce = [UInt8](repeating: 0, count: 12)

    /// Nonce of segment `counter`: 11-byte big-endian counter, then 0x01 for the last segment.
    package static func segmentNonce(_ counter: UInt64, last: Bool) -> [UInt8] {
        var nonce = [UInt8](repeating: 0, count: 12)
        for i in 0..<8 { nonce[3 + i] = UInt8(truncatingIfNeeded: counter >> (56 - 8 * UInt64(i))) }
        nonce[11] = last ? 1 : 0
        return nonce
    }
}

/// An object's data key and the keys derived from it. Lives only in memory, wiped when released.
public final class DataKey: @unchecked Sendable {
    // @unchecked: all fields are set in init and only read afterwards.
    package let key: SecretBytes
    package let macKey: SecretBytes
    package let payloadKey: SecretBytes
    package let digestKey: SecretBytes

    package init(_ bytes: [UInt8]) throws {
        precondition(bytes.count == 32)
        key = SecretBytes(bytes)
        macKey = SecretBytes(try hkdfSHA256(ikm: bytes, salt: [], info: SealedFormat.labelHeaderMAC, count: 32))
        payloadKey = SecretBytes(try hkdfSHA256(ikm: bytes, salt: [], info: SealedFormat.labelPayload, count: 32))
        digestKey = SecretBytes(try hkdfSHA256(ikm: bytes, salt: [], info: SealedFormat.labelPlaintextDigest, count: 32))
    }

    package static func random() throws -> DataKey {
        var bytes = try randomBytes(32)
        defer { wipe(&bytes) }
        return try DataKey(bytes)
    }

    /// HMAC of a plaintext digest, for the manifest: a bare digest would tell anyone who can read
    /// the bucket when the identities dump changed.
    public func plaintextDigestMAC(_ digest: [UInt8]) throws -> [UInt8] {
        try hmacSHA256(key: digestKey.bytes, data: digest)
    }
}

/// One recipient's wrapped copy of the data key.
public struct Stanza: Sendable, Equatable {
    public let type: UInt8
    public let keyID: KeyID
    package let body: [UInt8]
}

/// A parsed header. `bytes` are its exact bytes, MAC included.
public struct SealedHeader: Sendable {
    public let segmentSize: Int
    public let description: ObjectDescription
    public let stanzas: [Stanza]
    package let bytes: [UInt8]

    public var keyIDs: [KeyID] { stanzas.map(\.keyID) }

    /// Builds and MACs a header for `recipients`.
    /// - Parameters:
    ///   - ephemeralSecrets: fixed X25519 ephemeral keys, one per X25519 recipient (golden vectors
    ///     only); nil draws fresh ones.
    ///   - symmetricSalts: fixed 16-byte salts, one per symmetric recipient (golden vectors only).
    package static func build(recipients: [Recipient], description: ObjectDescription, segmentSize: Int,
                      dataKey: DataKey, ephemeralSecrets: [[UInt8]]? = nil,
                      symmetricSalts: [[UInt8]]? = nil) throws -> SealedHeader {
        guard !recipients.isEmpty else { throw CNBackupError(.invalidInput, "no recipients: an object must be sealed to at least one key") }
        guard recipients.count <= SealedFormat.maxStanzas else {
            throw CNBackupError(.invalidInput, "too many recipients (\(recipients.count)); at most \(SealedFormat.maxStanzas)")
        }
        guard SealedFormat.segmentSizeRange.contains(segmentSize) else {
            throw CNBackupError(.invalidInput, "segment size \(segmentSize) is out of range \(SealedFormat.segmentSizeRange)")
        }
        let descriptionBytes = try description.canonicalJSON()
        var bytes = SealedFormat.magic
        bytes.append(SealedFormat.version)
        bytes.appendBigEndian(UInt32(segmentSize))
        bytes.appendBigEndian(UInt32(descriptionBytes.count))
        bytes += descriptionBytes
        bytes.append(UInt8(recipients.count))
        var stanzas: [Stanza] = []
        var x25519Index = 0, symmetricIndex = 0
        for recipient in recipients {
            let stanza: Stanza
            switch recipient {
            case .x25519(let recipientPublic):
                var ephemeral = try ephemeralSecrets.map { $0[x25519Index] } ?? randomBytes(32)
                defer { wipe(&ephemeral) }
                x25519Index += 1
                let ephemeralPublic = try X25519.publicKey(privateKey: ephemeral)
                var shared = try X25519.sharedSecret(privateKey: ephemeral, peerPublicKey: recipientPublic)
                defer { wipe(&shared) }
                var wrapKey = try hkdfSHA256(ikm: shared, salt: ephemeralPublic + recipientPublic,
                                             info: SealedFormat.labelX25519Wrap, count: 32)
                defer { wipe(&wrapKey) }
                let wrapped = try AES256GCM.seal(key: wrapKey, nonce: SealedFormat.zeroNonce, plaintext: dataKey.key.bytes)
                stanza = Stanza(type: SealedFormat.stanzaX25519, keyID: recipient.keyID, body: ephemeralPublic + wrapped)
            case .symmetric(let symmetric):
                let salt = try symmetricSalts.map { $0[symmetricIndex] } ?? randomBytes(16)
                symmetricIndex += 1
                var wrapKey = try hkdfSHA256(ikm: symmetric.secret.bytes, salt: salt,
                                             info: SealedFormat.labelSymmetricWrap, count: 32)
                defer { wipe(&wrapKey) }
                let wrapped = try AES256GCM.seal(key: wrapKey, nonce: SealedFormat.zeroNonce, plaintext: dataKey.key.bytes)
                stanza = Stanza(type: SealedFormat.stanzaSymmetric, keyID: symmetric.keyID, body: salt + wrapped)
            }
            bytes.append(stanza.type)
            bytes += stanza.keyID.bytes
            bytes.appendBigEndian(UInt16(stanza.body.count))
            bytes += stanza.body
            stanzas.append(stanza)
        }
        bytes += try hmacSHA256(key: dataKey.macKey.bytes, data: bytes)
        return SealedHeader(segmentSize: segmentSize, description: description, stanzas: stanzas, bytes: bytes)
    }

    /// Reads a header from the front of `reader`. Nothing in it is authenticated yet: call
    /// `unlock` or `authenticate` before trusting it.
    package static func read(from reader: ChunkReader) throws -> SealedHeader {
        func take(_ n: Int, _ part: String) throws -> [UInt8] {
            let bytes = try reader.read(exactly: n)
            guard bytes.count == n else {
                throw CNBackupError(.authentication, "the sealed object is cut short in its header (\(part))")
            }
            return bytes
        }
        var raw = try take(SealedFormat.magic.count, "magic")
        guard raw == SealedFormat.magic else {
            throw CNBackupError(.invalidInput, "this is not a cnbackup sealed object (it does not start with \"cnb-seal\")")
        }
        let version = try take(1, "version")[0]
        guard version == SealedFormat.version else {
            throw CNBackupError(.invalidInput, "sealed format version \(version) is not supported by this cnbackup (it reads version 1): upgrade cnbackup")
        }
        raw.append(version)
        let segmentBytes = try take(4, "segment size"); raw += segmentBytes
        let segmentSize = Int(UInt32(bigEndianBytes: segmentBytes))
        guard SealedFormat.segmentSizeRange.contains(segmentSize) else {
            throw CNBackupError(.authentication, "the sealed header is damaged: segment size \(segmentSize) is out of range")
        }
        let lengthBytes = try take(4, "description length"); raw += lengthBytes
        let descriptionLength = Int(UInt32(bigEndianBytes: lengthBytes))
        guard descriptionLength <= SealedFormat.maxDescriptionSize else {
            throw CNBackupError(.authentication, "the sealed header is damaged: description of \(descriptionLength) bytes")
        }
        let descriptionBytes = try take(descriptionLength, "description"); raw += descriptionBytes
        guard let description = try? JSONDecoder().decode(ObjectDescription.self, from: Data(descriptionBytes)) else {
            throw CNBackupError(.authentication, "the sealed header is damaged: its description is not valid JSON")
        }
        let count = Int(try take(1, "stanza count")[0]); raw.append(UInt8(count))
        guard (1...SealedFormat.maxStanzas).contains(count) else {
            throw CNBackupError(.authentication, "the sealed header is damaged: \(count) recipient stanzas")
        }
        var stanzas: [Stanza] = []
        for _ in 0..<count {
            let type = try take(1, "stanza type")[0]
            let keyID = try take(8, "stanza key id")
            let lengthBytes = try take(2, "stanza length")
            let length = Int(UInt16(bigEndianBytes: lengthBytes))
            let body = try take(length, "stanza body")
            raw.append(type); raw += keyID; raw += lengthBytes; raw += body
            stanzas.append(Stanza(type: type, keyID: KeyID(keyID), body: body))
        }
        raw += try take(SealedFormat.macSize, "header MAC")
        return SealedHeader(segmentSize: segmentSize, description: description, stanzas: stanzas, bytes: raw)
    }

    /// Finds a stanza one of `identities` opens, then checks the header MAC with the data key.
    /// Throws `.wrongKey` naming the key ids the object was sealed for when none matches.
    package func unlock(with identities: [Identity]) throws -> DataKey {
        for identity in identities {
            for stanza in stanzas where stanza.keyID == identity.keyID {
                guard var keyBytes = try unwrap(stanza, identity) else {
                    throw CNBackupError(.authentication,
                        "the stanza for key \(stanza.keyID) does not open: the object is damaged or was not sealed by cnbackup")
                }
                defer { wipe(&keyBytes) }
                let dataKey = try DataKey(keyBytes)
                try authenticate(with: dataKey)
                return dataKey
            }
        }
        throw CNBackupError(.wrongKey,
            "none of the offered keys (\(identities.map(\.keyID.description).joined(separator: ", "))) opens this object; it was sealed for key ids \(keyIDs.map(\.description).joined(separator: ", "))")
    }

    /// Checks the header MAC under `dataKey` (the job's read-back, which holds no private key).
    package func authenticate(with dataKey: DataKey) throws {
        let body = Array(bytes[0..<(bytes.count - SealedFormat.macSize)])
        let mac = Array(bytes[(bytes.count - SealedFormat.macSize)...])
        guard constantTimeEqual(try hmacSHA256(key: dataKey.macKey.bytes, data: body), mac) else {
            throw CNBackupError(.authentication, "the sealed header does not authenticate: it was changed after sealing")
        }
    }

    private func unwrap(_ stanza: Stanza, _ identity: Identity) throws -> [UInt8]? {
        switch (identity, stanza.type) {
        case (.x25519(let secret, let publicKey), SealedFormat.stanzaX25519):
            guard stanza.body.count == 32 + 48 else { return nil }
            let ephemeralPublic = Array(stanza.body[0..<32])
            guard var shared = try? X25519.sharedSecret(privateKey: secret.bytes, peerPublicKey: ephemeralPublic) else { return nil }
            defer { wipe(&shared) }
            var wrapKey = try hkdfSHA256(ikm: shared, salt: ephemeralPublic + publicKey, info: SealedFormat.labelX25519Wrap, count: 32)
            defer { wipe(&wrapKey) }
            return try AES256GCM.open(key: wrapKey, nonce: SealedFormat.zeroNonce, sealed: Array(stanza.body[32...]))
        case (.symmetric(let key), SealedFormat.stanzaSymmetric):
            guard stanza.body.count == 16 + 48 else { return nil }
            var wrapKey = try hkdfSHA256(ikm: key.secret.bytes, salt: Array(stanza.body[0..<16]),
                                         info: SealedFormat.labelSymmetricWrap, count: 32)
            defer { wipe(&wrapKey) }
            return try AES256GCM.open(key: wrapKey, nonce: SealedFormat.zeroNonce, sealed: Array(stanza.body[16...]))
        default:
            return nil
        }
    }
}

/// Seals its upstream: yields the header, then one sealed segment per `segmentSize` bytes. Holds
/// one segment of look-ahead so that it knows which segment is the last. Segments are sealed
/// slice by slice from the upstream's chunks straight into their output: no plaintext is copied.
public final class SealingStream: ByteStream {
    private let reader: ChunkReader
    public let header: SealedHeader
    /// Kept for the job's read-back; released with the stream.
    public let dataKey: DataKey
    private let cipher: AES256GCM
    private var counter: UInt64 = 0
    private var headerSent = false
    private var finished = false

    public convenience init(_ upstream: ByteStream, recipients: [Recipient], description: ObjectDescription,
                            segmentSize: Int = SealedFormat.defaultSegmentSize) throws {
        try self.init(upstream, recipients: recipients, description: description, segmentSize: segmentSize,
                      dataKey: try DataKey.random(), ephemeralSecrets: nil, symmetricSalts: nil)
    }

    /// Fixed keys and salts are for golden vectors; production code uses the initialiser above.
    package init(_ upstream: ByteStream, recipients: [Recipient], description: ObjectDescription, segmentSize: Int,
         dataKey: DataKey, ephemeralSecrets: [[UInt8]]?, symmetricSalts: [[UInt8]]?) throws {
        self.reader = ChunkReader(upstream)
        self.dataKey = dataKey
        self.header = try SealedHeader.build(recipients: recipients, description: description, segmentSize: segmentSize,
                                             dataKey: dataKey, ephemeralSecrets: ephemeralSecrets, symmetricSalts: symmetricSalts)
        self.cipher = try AES256GCM(key: dataKey.payloadKey.bytes)
    }

    public func next() throws -> [UInt8]? {
        if !headerSent { headerSent = true; return header.bytes }
        if finished { return nil }
        let segmentSize = header.segmentSize
        // A segment is sealed as "not last" only once a byte beyond it is known to exist.
        let available = try reader.fill(atLeast: segmentSize + 1)
        let last = available <= segmentSize
        let take = min(available, segmentSize)
        let output = try [UInt8](unsafeUninitializedCapacity: take + AES256GCM.tagSize) { buffer, count in
            let base = buffer.baseAddress!
            try cipher.begin(nonce: SealedFormat.segmentNonce(counter, last: last), encrypt: true)
            var written = 0
            try reader.forEachSlice(take) { slice in
                try cipher.update(slice, into: base + written)
                written += slice.count
            }
            try cipher.finishSeal(tag: base + take)
            count = take + AES256GCM.tagSize
        }
        reader.consume(take)
        counter += 1
        if last { finished = true }
        return output
    }

    public func close() { reader.close() }
}

/// Opens a sealed object segment by segment. Each chunk it returns has been authenticated; the
/// end of the stream is reported only after the last segment authenticated and nothing follows it.
public final class OpeningStream: ByteStream {
    private let reader: ChunkReader
    public let header: SealedHeader
    public let dataKey: DataKey
    private let cipher: AES256GCM
    private var counter: UInt64 = 0
    private var finished = false

    /// Opens with a private or symmetric key (restore, verify --deep, decrypt).
    public convenience init(_ upstream: ByteStream, identities: [Identity]) throws {
        let reader = ChunkReader(upstream)
        let header = try SealedHeader.read(from: reader)
        try self.init(reader: reader, header: header, dataKey: try header.unlock(with: identities))
    }

    /// Opens with the data key still in memory after sealing (the job's read-back); also checks
    /// that the stored header is byte for byte the one written.
    public convenience init(_ upstream: ByteStream, dataKey: DataKey, expectedHeader: SealedHeader) throws {
        let reader = ChunkReader(upstream)
        let header = try SealedHeader.read(from: reader)
        guard header.bytes == expectedHeader.bytes else {
            throw CNBackupError(.integrity, "the stored header differs from the header written")
        }
        try header.authenticate(with: dataKey)
        try self.init(reader: reader, header: header, dataKey: dataKey)
    }

    private init(reader: ChunkReader, header: SealedHeader, dataKey: DataKey) throws {
        self.reader = reader
        self.header = header
        self.dataKey = dataKey
        self.cipher = try AES256GCM(key: dataKey.payloadKey.bytes)
    }

    public func next() throws -> [UInt8]? {
        while !finished {
            let full = header.segmentSize + AES256GCM.tagSize
            let available = try reader.fill(atLeast: full + 1)
            guard available >= AES256GCM.tagSize else {
                throw CNBackupError(.authentication,
                    "the sealed object is cut short: it ends after segment \(counter) without its last segment")
            }
            let last = available <= full
            let length = min(available, full)
            guard let plaintext = try open(length: length, last: last) else {
                // Tell a cut at a segment boundary (a full segment that is not the last) from damage.
                if last && length == full, var asNotLast = try open(length: length, last: false) {
                    wipe(&asNotLast)
                    throw CNBackupError(.authentication,
                        "the sealed object is cut short: it ends after segment \(counter), which is not its last")
                }
                throw CNBackupError(.authentication,
                    "segment \(counter) does not authenticate: the object was damaged, reordered or tampered with")
            }
            reader.consume(length)
            counter += 1
            if last {
                finished = true
                if plaintext.isEmpty && counter > 1 {
                    throw CNBackupError(.authentication, "the sealed object ends in an empty segment, which cnbackup never writes")
                }
            }
            if !plaintext.isEmpty { return plaintext }
        }
        return nil
    }

    /// Opens the next `length` buffered bytes as segment `counter`, slice by slice, without
    /// consuming them; nil (and nothing kept) when the tag does not authenticate.
    private func open(length: Int, last: Bool) throws -> [UInt8]? {
        let textCount = length - AES256GCM.tagSize
        let tag = reader.copy(from: textCount, count: AES256GCM.tagSize)
        var plaintext = try [UInt8](unsafeUninitializedCapacity: textCount) { buffer, count in
            try cipher.begin(nonce: SealedFormat.segmentNonce(counter, last: last), encrypt: false)
            var written = 0
            try reader.forEachSlice(textCount) { slice in
                try cipher.update(slice, into: buffer.baseAddress! + written)
                written += slice.count
            }
            count = textCount
        }
        guard cipher.finishOpen(tag: tag) else {
            // Unauthenticated plaintext never leaves this function.
            wipe(&plaintext)
            return nil
        }
        return plaintext
    }

    public func close() { reader.close() }
}

/// Random access to single segments, for the sampled read-back: segment `i` starts at
/// `header + i * (segmentSize + tag)`, and only the last one may be shorter.
public struct SegmentLayout: Sendable {
    public let headerSize: Int64
    public let sealedSegmentSize: Int64
    public let count: Int64
    package let storedSize: Int64

    /// nil when no object sealed with this header can have `storedSize` bytes.
    public init?(header: SealedHeader, storedSize: Int64) {
        headerSize = Int64(header.bytes.count)
        sealedSegmentSize = Int64(header.segmentSize + AES256GCM.tagSize)
        let body = storedSize - headerSize
        guard body >= Int64(AES256GCM.tagSize) else { return nil }
        count = (body + sealedSegmentSize - 1) / sealedSegmentSize
        self.storedSize = storedSize
        // A last segment of only a tag (empty plaintext) is written only when it is the sole one.
        guard count == 1 || body - (count - 1) * sealedSegmentSize > Int64(AES256GCM.tagSize) else { return nil }
    }

    public func range(ofSegment index: Int64) -> ClosedRange<Int64> {
        let start = headerSize + index * sealedSegmentSize
        return start...(min(start + sealedSegmentSize, storedSize) - 1)
    }

    /// Authenticates and decrypts segment `index`, given its sealed bytes.
    public func open(segment index: Int64, sealed: [UInt8], dataKey: DataKey) throws -> [UInt8] {
        let cipher = try AES256GCM(key: dataKey.payloadKey.bytes)
        var plaintext: [UInt8] = []
        let ok = try sealed.withUnsafeBytes {
            try cipher.open(nonce: SealedFormat.segmentNonce(UInt64(index), last: index == count - 1), sealed: $0, into: &plaintext)
        }
        guard ok, Int64(sealed.count) == Int64(range(ofSegment: index).count) else {
            throw CNBackupError(.authentication, "segment \(index) does not authenticate: the object was damaged or tampered with")
        }
        return plaintext
    }
}

/// Buffers a chunked stream so that byte ranges across chunk boundaries can be read without
/// concatenating chunks: the buffered bytes are a queue of chunks, the first from `offset`.
package final class ChunkReader {
    private let upstream: ByteStream
    private var chunks: [[UInt8]] = []
    private var offset = 0
    /// Bytes buffered and not yet consumed.
    private(set) var buffered = 0
    private var ended = false

    package init(_ upstream: ByteStream) { self.upstream = upstream }

    /// Buffers until at least `count` bytes are there or the stream ended; returns how many are.
    @discardableResult
    package func fill(atLeast count: Int) throws -> Int {
        while buffered < count && !ended {
            guard let chunk = try upstream.next() else { ended = true; break }
            if chunk.isEmpty { continue }
            chunks.append(chunk)
            buffered += chunk.count
        }
        return buffered
    }

    /// Up to `count` bytes, consumed: fewer only at the end of the stream.
    package func read(exactly count: Int) throws -> [UInt8] {
        let take = min(try fill(atLeast: count), count)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(take)
        forEachSlice(take) { bytes.append(contentsOf: $0) }
        consume(take)
        return bytes
    }

    /// Whether no byte is left.
    package func atEnd() throws -> Bool { try fill(atLeast: 1) == 0 }

    /// Reads and drops everything left.
    package func skipToEnd() throws {
        while try fill(atLeast: 1) > 0 { consume(buffered) }
    }

    /// Calls `body` with the first `count` buffered bytes, one contiguous slice at a time,
    /// without consuming them.
    package func forEachSlice(_ count: Int, _ body: (UnsafeRawBufferPointer) throws -> Void) rethrows {
        precondition(count <= buffered)
        var remaining = count
        var start = offset
        for chunk in chunks where remaining > 0 {
            let n = min(chunk.count - start, remaining)
            try chunk.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[start..<(start + n)])) }
            remaining -= n
            start = 0
        }
    }

    /// A copy of `count` buffered bytes starting `position` bytes in (a tag).
    package func copy(from position: Int, count: Int) -> [UInt8] {
        precondition(position + count <= buffered)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(count)
        var skip = position + offset
        var remaining = count
        for chunk in chunks where remaining > 0 {
            if skip >= chunk.count { skip -= chunk.count; continue }
            let n = min(chunk.count - skip, remaining)
            bytes.append(contentsOf: chunk[skip..<(skip + n)])
            remaining -= n
            skip = 0
        }
        return bytes
    }

    /// Drops the first `count` buffered bytes.
    package func consume(_ count: Int) {
        precondition(count <= buffered)
        buffered -= count
        var remaining = count
        while remaining > 0 {
            let left = chunks[0].count - offset
            if remaining >= left {
                chunks.removeFirst()
                offset = 0
                remaining -= left
            } else {
                offset += remaining
                remaining = 0
            }
        }
    }

    package func close() { upstream.close() }
}

extension Array where Element == UInt8 {
    package mutating func appendBigEndian<T: FixedWidthInteger>(_ value: T) {
        let size = MemoryLayout<T>.size
        for i in 0..<size { append(UInt8(truncatingIfNeeded: value >> (8 * (size - 1 - i)))) }
    }
}

extension FixedWidthInteger {
    package init(bigEndianBytes bytes: [UInt8]) {
        self = bytes.reduce(0) { $0 << 8 | Self($1) }
    }
}

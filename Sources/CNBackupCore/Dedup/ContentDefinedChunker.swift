import Foundation

/// The dedup secret (`dedup.keyFile`, made by `cnbackup keys generate --dedup`). Two keys come from
/// it by HKDF: the id key, under which a chunk's id is an HMAC of its plaintext (ids reveal
/// equality and nothing else, and only to whoever holds this secret), and the gear table of the
/// chunker, so that where chunks are cut, which anyone who lists the bucket sees as object sizes,
/// does not follow from the content alone (restic randomises its polynomial for the same reason).
/// It opens nothing: chunks are sealed to the recipients like every object.
public struct DedupSecret: Sendable {
    private let idKey: SecretBytes
    package let gear: [UInt64]
    public let keyID: KeyID

    package init(_ secret: [UInt8]) throws {
        idKey = SecretBytes(try hkdfSHA256(ikm: secret, salt: [], info: Array("cnbackup dedup chunk id v1".utf8), count: 32))
        let table = try hkdfSHA256(ikm: secret, salt: [], info: Array("cnbackup dedup gear v1".utf8), count: 256 * 8)
        gear = (0..<256).map { i in table[(i * 8)..<(i * 8 + 8)].reduce(UInt64(0)) { $0 << 8 | UInt64($1) } }
        keyID = try KeyID.ofSymmetricKey(secret)
    }

    /// The chunk's id: HMAC-SHA256 of its plaintext under the id key, in hex.
    public func chunkID(_ plaintext: [UInt8]) throws -> String {
        try hmacSHA256(key: idKey.bytes, data: plaintext).hex
    }
}

/// Content-defined chunking (FastCDC with normalised chunking): a gear hash over the bytes, cut
/// where its top bits are zero, with a stricter mask before the average size and a looser one
/// after, between a minimum and a maximum. An insert in one table of a dump then changes the chunks
/// around it, not every chunk after it.
public struct ContentDefinedChunker: Sendable {
    public let minimumSize: Int
    public let averageSize: Int
    public let maximumSize: Int
    private let gear: [UInt64]
    private let strictMask: UInt64
    private let looseMask: UInt64

    /// 256 KiB, 1 MiB and 4 MiB by default: chunks large enough that per-object costs (a request, a
    /// sealed header, an index entry) stay small against their bytes.
    public init(secret: DedupSecret, minimumSize: Int = 256 << 10, averageSize: Int = 1 << 20, maximumSize: Int = 4 << 20) {
        precondition(minimumSize > 0 && minimumSize < averageSize && averageSize < maximumSize)
        self.minimumSize = minimumSize; self.averageSize = averageSize; self.maximumSize = maximumSize
        self.gear = secret.gear
        let bits = Int(log2(Double(averageSize)).rounded())
        // The top bits of a gear hash depend on the last 64 bytes; the low ones on the last few.
        strictMask = ~UInt64(0) << UInt64(64 - (bits + 2))
        looseMask = ~UInt64(0) << UInt64(64 - (bits - 2))
    }

    /// The length of the first chunk of `bytes`: a cut point, or `maximumSize`, or nil when `bytes`
    /// holds neither (more input is needed; at the end of the stream the rest is the last chunk).
    public func firstChunkLength(_ bytes: UnsafeRawBufferPointer) -> Int? {
        let count = bytes.count
        if count <= minimumSize { return nil }
        let normalEnd = min(count, averageSize)
        let end = min(count, maximumSize)
        var hash: UInt64 = 0
        var index = minimumSize
        return gear.withUnsafeBufferPointer { table -> Int? in
            while index < normalEnd {
                hash = (hash << 1) &+ table[Int(bytes[index])]
                if hash & strictMask == 0 { return index + 1 }
                index += 1
            }
            while index < end {
                hash = (hash << 1) &+ table[Int(bytes[index])]
                if hash & looseMask == 0 { return index + 1 }
                index += 1
            }
            return end == maximumSize ? maximumSize : nil
        }
    }
}

/// Cuts a byte stream into content-defined chunks, one `[UInt8]` each; memory is one maximum-size
/// chunk plus one input chunk.
public final class ChunkingStream: ByteStream {
    private let source: ByteStream
    private let chunker: ContentDefinedChunker
    private var buffer: [UInt8] = []
    private var ended = false

    public init(_ source: ByteStream, chunker: ContentDefinedChunker) {
        self.source = source; self.chunker = chunker
    }

    public func next() throws -> [UInt8]? {
        // A cut is looked for once a whole maximum-size chunk is buffered (or the input ended), so
        // every byte is hashed once.
        while buffer.count < chunker.maximumSize && !ended {
            if let more = try source.next() { buffer.append(contentsOf: more) } else { ended = true }
        }
        guard !buffer.isEmpty else { return nil }
        let length = buffer.withUnsafeBytes { chunker.firstChunkLength($0) } ?? buffer.count
        let chunk = Array(buffer[0..<length])
        buffer.removeFirst(length)
        return chunk
    }

    public func close() { source.close() }
}

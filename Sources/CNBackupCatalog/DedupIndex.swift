import Foundation
import CNBackupCore
import CNBackupStorage

// Deduplicated components (docs/FORMAT.md, "Deduplicated components"). A capture with
// `dedup: true` is cut into content-defined chunks; each chunk is an ordinary sealed object (zstd,
// a random data key, a stanza per recipient) under the node's chunk folder,
// `.chunks/<node>/<chunk id>-<16 hex>.zst.cnb`. The component's own object is its index, sealed
// like any object and bound by the signed manifest: the ordered chunk references, one JSON line
// each. Beside it, in clear, the chunk table: the same references once per distinct chunk, which
// the next run reads to reuse chunks and the pruner reads to know what is referenced, bound by its
// SHA-256 in the manifest (at scale it outgrows the manifest's size cap). The job never holds a
// key that opens a chunk: reusing one needs no key, only the signed records of a kept set.

/// One chunk, as the index (in order, repeats included) and the chunk table (once each) record it.
public struct ChunkReference: Codable, Sendable, Equatable {
    /// HMAC-SHA256 of the chunk's plaintext under the dedup secret's id key (hex): equality only.
    public var id: String
    /// The chunk object's key from the store's root.
    public var key: String
    /// SHA-256 of the chunk's sealed header: readers refuse another header before opening anything.
    public var headerSHA256: String
    public var storedSize: Int64
    public var storedSHA256: String
    public var plaintextSize: Int64
    /// The recipients the chunk is sealed to: a run reuses only chunks sealed to its own.
    public var keyIds: [KeyID]
    /// With Object Lock: until when the chunk is retained. A run reuses it only while that covers
    /// the retention of the set it writes.
    public var retainUntil: String? = nil

    package init(id: String, key: String, headerSHA256: String, storedSize: Int64, storedSHA256: String, plaintextSize: Int64, keyIds: [KeyID]) {
        self.id = id; self.key = key; self.headerSHA256 = headerSHA256; self.storedSize = storedSize
        self.storedSHA256 = storedSHA256; self.plaintextSize = plaintextSize; self.keyIds = keyIds
    }

    /// One line of an index or chunk table (JSON, sorted keys, a newline).
    package func line() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(self)) + [0x0A]
    }

    package static func parse(line: [UInt8], what: String) throws -> ChunkReference {
        do { return try JSONDecoder().decode(ChunkReference.self, from: Data(line)) } catch {
            throw CNBackupError(.integrity, "\(what) has a line that is not a chunk reference")
        }
    }
}

/// What the signed manifest says of a deduplicated component, beside its index object.
public struct DedupRecord: Codable, Sendable, Equatable {
    /// The chunk table's name in the set's folder, size and SHA-256.
    public var chunkTable: String
    public var chunkTableSize: Int64
    public var chunkTableSHA256: String
    /// Index entries (chunks in order) and distinct chunks.
    public var chunks: Int
    public var distinctChunks: Int
    /// Chunks this run stored, and their stored bytes; the rest were reused.
    public var newChunks: Int
    public var newStoredBytes: Int64
    /// Sets whose chunks were reused.
    public var reusedFrom: [String]
    /// The dedup secret's key id: a different one means no chunk could be reused.
    public var dedupKeyId: KeyID
    /// The grace period G the run kept to (`dedup.graceHours`): it reused only chunks of sets
    /// younger than G and committed within G, which is what prune's clock relies on.
    public var graceSeconds: Double = 7 * 86_400

    package init(chunkTable: String, chunkTableSize: Int64, chunkTableSHA256: String, chunks: Int, distinctChunks: Int,
                 newChunks: Int, newStoredBytes: Int64, reusedFrom: [String], dedupKeyId: KeyID) {
        self.chunkTable = chunkTable; self.chunkTableSize = chunkTableSize; self.chunkTableSHA256 = chunkTableSHA256
        self.chunks = chunks; self.distinctChunks = distinctChunks; self.newChunks = newChunks
        self.newStoredBytes = newStoredBytes; self.reusedFrom = reusedFrom; self.dedupKeyId = dedupKeyId
    }
}

extension SetLayout {
    /// The folder of a node's chunks. It starts with a dot, which no node name does, so it can be
    /// neither a node nor a set.
    public static func chunkFolder(node: String) -> String { ".chunks/\(node)/" }
    public static let chunkRoot = ".chunks/"

    /// A new chunk key: the id, then a random part chosen now, so that nobody can occupy the key
    /// a run will write.
    public static func newChunkKey(node: String, id: String) throws -> String {
        chunkFolder(node: node) + id + "-" + (try randomBytes(8)).hex + objectSuffix
    }

    public static let indexSuffix = ".index.cnb"
    public static let chunkTableSuffix = ".chunks.jsonl"

    /// A deduplicated component's index: sealed, but not named like a component's object, so
    /// that `recover` does not take an index for a dump.
    public static func newIndexName(component: String) throws -> String { component + "-" + (try randomBytes(8)).hex + indexSuffix }
    public static func newChunkTableName(component: String) throws -> String { component + "-" + (try randomBytes(8)).hex + chunkTableSuffix }
}

/// Reads a chunk table (or an index's plaintext) line by line, with its bytes bounded.
package final class ChunkReferenceLines {
    private let source: ByteStream
    private var buffer: [UInt8] = []
    private var offset = 0
    private var ended = false
    private let what: String
    /// A line longer than this is not a chunk reference.
    private static let lineLimit = 4096

    package init(_ source: ByteStream, what: String) { self.source = source; self.what = what }

    package func next() throws -> ChunkReference? {
        while true {
            if let newline = buffer[offset...].firstIndex(of: 0x0A) {
                let line = Array(buffer[offset..<newline])
                offset = newline + 1
                if offset > 1 << 20 { buffer.removeFirst(offset); offset = 0 }
                return try ChunkReference.parse(line: line, what: what)
            }
            guard buffer.count - offset <= Self.lineLimit else {
                throw CNBackupError(.integrity, "\(what) has a line longer than any chunk reference")
            }
            if ended {
                guard offset == buffer.count else { throw CNBackupError(.integrity, "\(what) ends in the middle of a line") }
                return nil
            }
            if let chunk = try source.next() { buffer.append(contentsOf: chunk) } else { ended = true }
        }
    }

    package func close() { source.close() }
}

/// A deduplicated component's plaintext: the chunks its index lists, in order. Each chunk's sealed
/// header must hash to the digest the index records before anything is opened, its description
/// must name a chunk of this node, every segment must authenticate, and its plaintext must have
/// the recorded size; only then are its bytes released. At most one chunk's plaintext is held.
package final class IndexedPlaintextStream: ByteStream {
    private let index: ChunkReferenceLines
    private let chunks: OrderedParallelMap<(Int, ChunkReference), [UInt8]>

    /// Chunks are fetched and opened `workers` at a time (a store's latency per object would
    /// otherwise bound a restore), handed out in the index's order; memory is `window` chunks.
    package init(index: ChunkReferenceLines, store: any ObjectStore, identities: [Identity], node: String, component: String,
                 workers: Int = 4) throws {
        self.index = index
        var position = 0
        let box = UncheckedBox((store, identities))
        chunks = OrderedParallelMap(workers: workers, window: workers * 2, name: "chunk-read", source: {
            guard let reference = try index.next() else { return nil }
            position += 1
            return (position, reference)
        }, transform: { item in
            let (store, identities) = box.value
            return try Self.open(item.1, store: store, identities: identities, node: node, decoder: try ZstdFrameDecoder(),
                                 what: "chunk \(item.0) of \(component) (\(item.1.key))")
        })
    }

    package func next() throws -> [UInt8]? { try chunks.next() }

    /// One chunk's plaintext, proven against its reference.
    package static func open(_ reference: ChunkReference, store: any ObjectStore, identities: [Identity], node: String,
                             decoder: ZstdFrameDecoder, what: String) throws -> [UInt8] {
        guard reference.key.hasPrefix(SetLayout.chunkFolder(node: node)) else {
            throw CNBackupError(.integrity, "\(what) is not in this node's chunk folder: the index was not written for this node")
        }
        let stored = DigestingStream(LimitedStream(try store.get(key: reference.key), limit: reference.storedSize, what: what))
        let opened: OpeningStream
        do {
            opened = try OpeningStream(stored, identities: identities)
        } catch let error as CNBackupError where error.code == .notFound {
            throw CNBackupError(.integrity, "\(what) is missing from the store", cause: error.message)
        }
        defer { opened.close() }
        guard SHA256Hasher.hash(opened.header.bytes).hex == reference.headerSHA256 else {
            throw CNBackupError(.integrity, "\(what) has another sealed header than the index binds: it was replaced (nothing of it was read)")
        }
        guard opened.header.description.node == node, opened.header.description.component == ChunkDescription.component else {
            throw CNBackupError(.integrity, "\(what) is not a chunk of node \(node)")
        }
        var compressed: [UInt8] = []
        do {
            try opened.forEachChunk { compressed.append(contentsOf: $0) }
        } catch let error as CNBackupError {
            throw CNBackupError(error.code, "\(what): \(error.message)", cause: error.cause)
        }
        guard stored.count == reference.storedSize, stored.digest?.hex == reference.storedSHA256 else {
            throw CNBackupError(.integrity, "\(what) has other bytes than the index records")
        }
        let plaintext = try decoder.decode(compressed, limit: Int(reference.plaintextSize))
        guard plaintext.count == reference.plaintextSize else {
            throw CNBackupError(.integrity, "\(what) holds \(plaintext.count) bytes, the index records \(reference.plaintextSize)")
        }
        return plaintext
    }

    package func close() {
        chunks.stop()
        index.close()
    }

    deinit { chunks.stop() }
}

/// What a chunk's sealed header says of it: the node's, a chunk, its id (an HMAC: equality only).
package enum ChunkDescription {
    package static let component = "dedup-chunk"
    package static func make(node: String, id: String) -> ObjectDescription {
        ObjectDescription(node: node, component: component, role: id)
    }
}

extension Catalog {
    /// The chunk table of a deduplicated component of a trusted set, each line bound by the
    /// signed manifest's size and SHA-256 (checked at the end; `body` sees lines as they come,
    /// so callers act only after this returns).
    package func readChunkTable(_ record: DedupRecord, layout: SetLayout, _ body: (ChunkReference) throws -> Void) throws {
        let stream = DigestingStream(LimitedStream(try store.get(key: layout.key(relative: record.chunkTable)),
                                                   limit: record.chunkTableSize, what: "chunk table \(record.chunkTable)"))
        let lines = ChunkReferenceLines(stream, what: "chunk table \(record.chunkTable)")
        while let reference = try lines.next() { try body(reference) }
        guard stream.count == record.chunkTableSize, stream.digest?.hex == record.chunkTableSHA256 else {
            throw CNBackupError(.integrity, "chunk table \(layout.key(relative: record.chunkTable)) has other bytes than the signed manifest records")
        }
    }
}

import Foundation
import Logging
import CNBackupCore
import CNBackupStorage
import CNBackupCatalog

/// The chunks a run may reuse: those that retained, trusted sets of this node already reference,
/// with their key, header digest and sizes carried forward from those sets' signed records. Never
/// a chunk because a listing shows it: the bucket's writer controls listings, and could re-plant
/// an id that prune removed. Only sets younger than the grace period count (what prune relies on),
/// and only chunks sealed to exactly this run's recipients (after a recipient change, nothing is
/// reused: the job cannot re-seal what it cannot open).
struct ChunkReuse: Sendable {
    var byID: [String: (reference: ChunkReference, setId: String)] = [:]
    var problems: [String] = []

    /// - Parameter lockDays: the store's Object Lock days, when it has a lock: a chunk is reused
    ///   only while its own retention covers that of the set being written (`ChunkLock`).
    static func load(store: any ObjectStore, node: String, signer: SignerKey, components: [String], dedupKeyId: KeyID,
                     recipients: [KeyID], start: Date, grace: TimeInterval, lockDays: Int? = nil) -> ChunkReuse {
        var reuse = ChunkReuse()
        guard !components.isEmpty else { return reuse }
        let catalog = Catalog(store: store, pins: SignerPins(anyNode: [], perNode: [node: [signer]]))
        let entries: [CatalogEntry]
        do { entries = try catalog.entries(node: node, now: start) } catch {
            reuse.problems.append("earlier sets cannot be read (\(error)): every chunk is stored anew")
            return reuse
        }
        let wanted = Set(recipients)
        let recent = entries.compactMap(\.trusted)
            .filter { set in SetLayout.time(ofSetId: set.setId).map { start.timeIntervalSince($0) < grace } ?? false }
            .sorted { $0.setId > $1.setId }
        for component in components {
            // The newest set that holds this component deduplicated under the same secret.
            guard let set = recent.first(where: { $0.manifest.components.contains { $0.name == component && $0.dedup?.dedupKeyId == dedupKeyId } }),
                  let record = set.manifest.components.first(where: { $0.name == component })?.dedup else { continue }
            var found: [String: (reference: ChunkReference, setId: String)] = [:]
            do {
                try catalog.readChunkTable(record, layout: set.layout) { reference in
                    if Set(reference.keyIds) == wanted, reference.key.hasPrefix(SetLayout.chunkFolder(node: node)),
                       ChunkLock.covers(reference, start: start, grace: grace, lockDays: lockDays) {
                        found[reference.id] = (reference, set.setId)
                    }
                }
            } catch {
                reuse.problems.append("the chunk table of \(component) in \(set.setId) cannot be used (\(error)): its chunks are stored anew")
                continue
            }
            reuse.byID.merge(found) { current, _ in current }
        }
        return reuse
    }
}

/// Stores one deduplicated capture: cuts the plaintext into content-defined chunks, names each by
/// its keyed HMAC, reuses the chunks `ChunkReuse` vouches for and this run's own repeats, and seals
/// and stores the others (zstd, a fresh data key, a stanza per recipient) a few at a time. Each
/// new chunk is read back like any object. Returns the index lines in order and the chunk table.
final class DedupWriter: @unchecked Sendable {
    // @unchecked: `completed` and `failure` are touched under `lock` only.
    private let store: any ObjectStore
    private let node: String
    private let secret: DedupSecret
    private let recipients: [Recipient]
    private let level: Int32
    private let readBack: ReadBackMode
    private let tags: [String: String]
    private let reuse: ChunkReuse
    private let chunkLock: ChunkLock?
    private let lock = NSLock()
    private var completed: [String: ChunkReference] = [:]
    private var failure: Error?
    private let slots: DispatchSemaphore
    private let group = DispatchGroup()

    struct Result {
        var index: [ChunkReference]
        var table: [ChunkReference]
        var newChunks: Int
        var newStoredBytes: Int64
        var reusedFrom: [String]
    }

    init(store: any ObjectStore, node: String, secret: DedupSecret, recipients: [Recipient], level: Int, readBack: ReadBackMode,
         tags: [String: String], reuse: ChunkReuse, chunkLock: ChunkLock? = nil, parallel: Int = 4) {
        self.store = store; self.node = node; self.secret = secret; self.recipients = recipients; self.chunkLock = chunkLock
        self.level = Int32(level); self.readBack = readBack; self.tags = tags; self.reuse = reuse
        self.slots = DispatchSemaphore(value: parallel)
    }

    func write(_ source: ByteStream, chunker: ContentDefinedChunker) throws -> Result {
        enum Slot { case known(ChunkReference), pending(String) }
        var slots: [Slot] = []
        var pendingKeys: [String: String] = [:]   // id -> key chosen for a chunk being stored
        var reusedFrom = Set<String>()
        let chunks = ChunkingStream(source, chunker: chunker)
        do {
            while let chunk = try chunks.next() {
                if let error = takeFailure() { throw error }
                let id = try secret.chunkID(chunk)
                if let reused = reuse.byID[id] {
                    slots.append(.known(reused.reference))
                    reusedFrom.insert(reused.setId)
                } else if pendingKeys[id] != nil {
                    slots.append(.pending(id))
                } else {
                    let key = try SetLayout.newChunkKey(node: node, id: id)
                    pendingKeys[id] = key
                    slots.append(.pending(id))
                    submit(chunk, id: id, key: key)
                }
            }
        } catch {
            chunks.close()
            group.wait()
            throw error
        }
        group.wait()
        if let error = takeFailure() { throw error }
        var index: [ChunkReference] = []
        index.reserveCapacity(slots.count)
        var table: [ChunkReference] = []
        var seen = Set<String>()
        for slot in slots {
            let reference: ChunkReference
            switch slot {
            case .known(let known): reference = known
            case .pending(let id):
                guard let stored = lock.withLock({ completed[id] }) else {
                    throw CNBackupError(.storage, "chunk \(id) was not stored")
                }
                reference = stored
            }
            index.append(reference)
            if seen.insert(reference.key).inserted { table.append(reference) }
        }
        let newStored = lock.withLock { completed.values.reduce(Int64(0)) { $0 + $1.storedSize } }
        return Result(index: index, table: table, newChunks: pendingKeys.count, newStoredBytes: newStored,
                      reusedFrom: reusedFrom.sorted())
    }

    private func takeFailure() -> Error? { lock.withLock { failure } }

    /// Compresses, seals, stores and reads back one new chunk on a worker; at most `parallel` at once.
    private func submit(_ chunk: [UInt8], id: String, key: String) {
        slots.wait()
        group.enter()
        DispatchQueue.global().async { [self] in
            defer { slots.signal(); group.leave() }
            do {
                let reference = try store(chunk, id: id, key: key)
                lock.withLock { completed[id] = reference }
            } catch {
                lock.withLock { if failure == nil { failure = error } }
            }
        }
    }

    private func store(_ chunk: [UInt8], id: String, key: String) throws -> ChunkReference {
        let compressed = try ZstdFrameEncoder(level: level).encode(chunk)
        // The read-back's proof that the stored chunk decodes to what was captured (the sealed
        // bytes are then authenticated from the store below).
        if readBack == .full, try ZstdFrameDecoder().decode(compressed, limit: chunk.count) != chunk {
            throw CNBackupError(.compression, "chunk \(key) does not decode to what was captured")
        }
        let sealing = try SealingStream(MemoryStream(compressed), recipients: recipients,
                                        description: ChunkDescription.make(node: node, id: id))
        let sealed = try sealing.readAll(limit: compressed.count + (1 << 20))
        var options = PutOptions(tags: tags, ifAbsent: true, sizeHint: Int64(sealed.count), settleByDigest: false)
        options.retentionDays = chunkLock?.chunkDays
        let written = Date()
        let info = try store.put(key: key, from: MemoryStream(sealed), options: options)
        guard info.size == Int64(sealed.count) else {
            throw CNBackupError(.integrity, "chunk \(key) holds \(info.size) bytes in \(store.displayName), \(sealed.count) were written")
        }
        if readBack != .none {
            _ = try ComponentReader.authenticateWritten(store: store, key: key, storedSize: Int64(sealed.count),
                                                        dataKey: sealing.dataKey, header: sealing.header)
        }
        var reference = ChunkReference(id: id, key: key, headerSHA256: SHA256Hasher.hash(sealing.header.bytes).hex,
                                       storedSize: Int64(sealed.count), storedSHA256: SHA256Hasher.hash(sealed).hex,
                                       plaintextSize: Int64(chunk.count), keyIds: sealing.header.keyIDs)
        // The earliest the lock can end (the store counts from its own receipt, a little later).
        reference.retainUntil = chunkLock.map { Timestamp.format(written.addingTimeInterval(TimeInterval($0.chunkDays) * 86_400)) }
        return reference
    }
}

/// What a run needs for its deduplicated captures.
struct DedupRun: Sendable {
    let secret: DedupSecret
    let reuse: ChunkReuse
    let grace: TimeInterval
    let start: Date
}

/// Object Lock and reuse. A set's objects are retained D days (`store.objectLock.days`); a chunk
/// that later sets reuse must stay retained as long as the longest-retained of them. Extending a
/// lock needs `s3:PutObjectRetention`, which the writer is denied (granted, a leaked writer could
/// lock anything for years), so chunks are instead written with D + 2G days (G the grace period),
/// and reused only while their retention covers a set committed within G from now: until
/// start + G + D. That holds for the G after a chunk is written, the same window in which sets
/// may reuse it at all; later runs store the chunk again under a new key. The cost: chunks stay
/// 2G longer, and a dump's unchanged chunks are stored again every G.
struct ChunkLock: Sendable {
    let lockDays: Int
    let graceDays: Int
    var chunkDays: Int { lockDays + 2 * graceDays }

    init(lockDays: Int, grace: TimeInterval) {
        self.lockDays = lockDays
        self.graceDays = Int((grace / 86_400).rounded(.up))
    }

    static func covers(_ reference: ChunkReference, start: Date, grace: TimeInterval, lockDays: Int?) -> Bool {
        guard let lockDays else { return true }
        guard let until = reference.retainUntil.flatMap(Timestamp.parse) else { return false }
        return until >= start.addingTimeInterval(grace + TimeInterval(lockDays) * 86_400)
    }
}

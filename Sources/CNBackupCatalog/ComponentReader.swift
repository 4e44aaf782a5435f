import Foundation
import CNBackupCore
import CNBackupStorage

/// The one reader of stored objects: verify, restore, copy's check, recover and the run's
/// read-back all open objects through it, so the rules below hold on every read path. Frames are
/// decoded several at a time (`ZstdParallelDecompressStream`).
///
/// - The stored bytes are hashed as they pass and never read past the signed stored size.
/// - The sealed header must be the one the signed manifest binds (`headerSHA256`), checked before
///   the first segment is opened: an object sealed by someone else to the same public recipients,
///   with a description copied from a real header, is refused before any of its plaintext exists.
///   A manifest written before that binding (no `headerSHA256`) has its object's SHA-256 checked
///   in a first pass instead, as the object is copied to a private file that the second pass then
///   reads: one read of the store, so what was checked is what is opened (two reads could meet
///   two objects, replaced in between).
/// - Each segment is authenticated; the header must name this set and component; the
///   decompressed plaintext never goes past the signed plaintext size.
/// - `finish()` then checks what only the end can tell: the stored SHA-256, the plaintext size and
///   its digest HMAC.
/// - A reader whose caller checks the plaintext itself may leave the plaintext digest out
///   (`plaintextDigest: false`, the physical restore): the plaintext is a function of the stored
///   bytes, which the stored SHA-256 binds; decompression is covered by zstd's content checksum
///   and the signed plaintext size; the caller checks the content (pg_verifybackup's per-file
///   checksums against the backup_manifest whose SHA-256 the manifest binds).
package final class ComponentReader {
    /// What opens the object: private keys (verify, restore, recover).
    package enum Keys {
        case identities([Identity])
    }

    /// What the object must be.
    package enum Expectation {
        /// A component of a trusted manifest.
        case record(ComponentRecord, manifest: Manifest, layout: SetLayout)
        /// An object without a manifest yet (recover): its header must name this place.
        case place(layout: SetLayout, component: String)
    }

    package let plaintext: DigestingStream
    package let header: SealedHeader
    package let dataKey: DataKey
    private let stored: DigestingStream
    private let expectation: Expectation
    private let name: String
    /// A legacy object's private copy, removed with the reader.
    private let staged: StagedObject?

    private let plaintextDigest: Bool

    package init(store: any ObjectStore, key: String, expect expectation: Expectation, keys: Keys, plaintextDigest: Bool = true) throws {
        self.expectation = expectation
        var source: ByteStream
        var staged: StagedObject?
        switch expectation {
        case .record(let record, _, _):
            name = record.name
            if record.headerSHA256 == nil {
                staged = try StagedObject(store: store, key: key, record: record)
                source = try staged!.stream()
            } else {
                source = LimitedStream(try store.get(key: key), limit: record.storedSize, what: "object \(record.objectKey)")
            }
        case .place(_, let component):
            name = component
            source = try store.get(key: key)
        }
        self.staged = staged
        stored = DigestingStream(source)
        let opened: OpeningStream
        switch keys {
        case .identities(let identities):
            opened = try OpeningStream(PipelinedStream(stored, name: "component-read"), identities: identities)
        }
        header = opened.header
        dataKey = opened.dataKey
        do {
            try Self.check(header: opened.header, against: expectation)
        } catch {
            opened.close()
            throw error
        }
        // Threads: reading and hashing the stored bytes, opening segments, the decompression
        // workers, and (the caller's) hashing the plaintext and writing it out.
        var decompressed: ByteStream = ZstdParallelDecompressStream(PipelinedStream(opened, name: "component-open"))
        let total: Int64?
        switch expectation {
        case .record(let record, _, _): total = record.plaintextSize
        case .place: total = nil
        }
        // A deduplicated component's object is its index: the plaintext is the chunks it lists.
        if case .record(let record, let manifest, _) = expectation, record.dedup != nil {
            guard case .identities(let identities) = keys else { throw CNBackupError(.invalidInput, "no key opens the chunks of \(name)") }
            decompressed = try IndexedPlaintextStream(index: ChunkReferenceLines(decompressed, what: "the index of \(name)"), store: store,
                                                      identities: identities, node: manifest.node.name, component: name)
        }
        if let total { decompressed = LimitedStream(decompressed, limit: total, what: "the plaintext of \(name)") }
        self.plaintextDigest = plaintextDigest
        plaintext = DigestingStream(Progress.track(decompressed, name: name, total: total), hashing: plaintextDigest)
    }

    /// The header binding and the place the header names.
    package static func check(header: SealedHeader, against expectation: Expectation) throws {
        let description = header.description
        switch expectation {
        case .record(let record, let manifest, _):
            if let bound = record.headerSHA256, SHA256Hasher.hash(header.bytes).hex != bound {
                throw CNBackupError(.integrity,
                    "object \(record.objectKey) has another sealed header than the signed manifest binds: it was replaced (nothing of it was read)")
            }
            guard description.setId == manifest.setId, description.component == record.name,
                  description.node == manifest.node.name, description.migrationId == manifest.epoch.migrationId,
                  description.serial == manifest.epoch.serial else {
                throw CNBackupError(.integrity,
                    "object \(record.objectKey) belongs to set \(description.setId ?? "?") component \(description.component ?? "?"), not to set \(manifest.setId) component \(record.name): it was swapped")
            }
        case .place(let layout, let component):
            guard description.setId == layout.setId, description.node == layout.node, description.migrationId == layout.epoch.migrationId,
                  description.serial == layout.epoch.serial, description.component == component else {
                throw CNBackupError(.integrity, "its header says set \(description.setId ?? "?") component \(description.component ?? "?"): it was moved or swapped here")
            }
        }
    }


    /// What the whole read saw; call once `plaintext` has ended.
    package struct Totals {
        package var storedSize: Int64
        package var storedSHA256: [UInt8]
        package var plaintextSize: Int64
        package var plaintextSHA256: [UInt8]

        package init(storedSize: Int64, storedSHA256: [UInt8], plaintextSize: Int64, plaintextSHA256: [UInt8]) {
            self.storedSize = storedSize
            self.storedSHA256 = storedSHA256
            self.plaintextSize = plaintextSize
            self.plaintextSHA256 = plaintextSHA256
        }
    }

    /// Checks the ends against the manifest (for a record) and returns what was read.
    @discardableResult
    package func finish() throws -> Totals {
        guard let storedDigest = stored.digest, let plaintextDigest = plaintext.digest else {
            throw CNBackupError(.integrity, "object \(name) ended before it was read whole")
        }
        if case .record(let record, _, _) = expectation {
            guard stored.count == record.storedSize, storedDigest.hex == record.storedSHA256 else {
                throw CNBackupError(.integrity, "object \(record.objectKey) has other bytes than the manifest records (SHA-256 differs)")
            }
            guard plaintext.count == record.plaintextSize,
                  try !self.plaintextDigest || dataKey.plaintextDigestMAC(plaintextDigest).hex == record.plaintextDigestHMAC else {
                throw CNBackupError(.integrity, "the plaintext of \(record.name) differs from what was captured")
            }
        }
        return Totals(storedSize: stored.count, storedSHA256: storedDigest, plaintextSize: plaintext.count, plaintextSHA256: plaintextDigest)
    }
}

extension ComponentReader {
    /// The run's read-back of an object it just wrote, with the data key it still holds (no
    /// private key): every stored byte is read, the header must be the one written byte for byte,
    /// and every segment must authenticate under the data key with its index and last flag, so a
    /// stored byte that differs from the written one fails its segment's tag. Returns the bytes of
    /// compressed stream the segments held. Nothing is decoded here: the frames were decoded and
    /// compared with their input as they were made (`ZstdFramedCompressStream`, checkingFrames).
    package static func authenticateWritten(store: any ObjectStore, key: String, storedSize: Int64,
                                            dataKey: DataKey, header: SealedHeader) throws -> Int64 {
        let stored = DigestingStream(LimitedStream(try store.get(key: key), limit: storedSize, what: "object \(key)"), hashing: false)
        let opened = try OpeningStream(stored, dataKey: dataKey, expectedHeader: header)
        var compressed: Int64 = 0
        try opened.forEachChunk { compressed += Int64($0.count) }
        guard stored.count == storedSize else {
            throw CNBackupError(.integrity, "\(key) reads back as \(stored.count) bytes; \(storedSize) were written")
        }
        return compressed
    }
}

/// For manifests that bind no header: the whole object, copied once to a private file (mode 0600 in
/// a 0700 folder; sealed bytes, no plaintext) while its SHA-256 is checked against the manifest,
/// then read from there. Removed when released, or by `LastResort` if the process ends at once.
final class StagedObject {
    private let folder: String
    private let path: String

    init(store: any ObjectStore, key: String, record: ComponentRecord) throws {
        folder = try PrivateFolder.create(prefix: "cnbackup-staged-")
        path = folder + "/object"
        LastResort.register(directory: folder)
        do {
            let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw CNBackupError(.io, "cannot create \(path): \(String(cString: strerror(errno)))") }
            defer { close(fd) }
            let whole = DigestingStream(LimitedStream(try store.get(key: key), limit: record.storedSize, what: "object \(record.objectKey)"))
            try whole.forEachChunk { chunk in try writeFully(fd: fd, chunk, what: "the staged copy of \(record.objectKey)") }
            guard whole.count == record.storedSize, whole.digest?.hex == record.storedSHA256 else {
                throw CNBackupError(.integrity, "object \(record.objectKey) has other bytes than the manifest records (SHA-256 differs)")
            }
        } catch {
            release()
            throw error
        }
    }

    func stream() throws -> ByteStream {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw CNBackupError(.io, "cannot read the staged copy \(path)") }
        return FileDescriptorStream(fd: fd, owns: true, what: path)
    }

    private func release() {
        try? FileManager.default.removeItem(atPath: folder)
        LastResort.unregister(directory: folder)
    }

    deinit { release() }
}

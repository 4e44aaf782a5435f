import Foundation
import CNBackupCore
import CNBackupStorage

/// Opens one stored component of a trusted set for reading: the stored bytes are hashed as they
/// pass, opened with a private key (each segment authenticated), checked to belong to this set and
/// component, and decompressed. `finish()` then checks what only the end can tell: the stored
/// SHA-256, the plaintext size and its digest HMAC. Verify and restore both read through this.
final class ComponentReader {
    let plaintext: DigestingStream
    private let stored: DigestingStream
    private let opened: OpeningStream
    private let record: ComponentRecord

    init(store: any ObjectStore, layout: SetLayout, manifest: Manifest, record: ComponentRecord, identities: [Identity]) throws {
        self.record = record
        stored = DigestingStream(try store.get(key: layout.key(relative: record.objectKey)))
        opened = try OpeningStream(PipelinedStream(stored, name: "component-read"), identities: identities)
        try checkDescription(opened.header.description, record: record, manifest: manifest)
        // Four threads: reading and hashing the stored bytes, opening segments, decompressing, and
        // (the caller's) hashing the plaintext and writing it out.
        let decompressed = try ZstdDecompressStream(PipelinedStream(opened, name: "component-open"))
        plaintext = DigestingStream(PipelinedStream(Progress.track(decompressed, name: record.name, total: record.plaintextSize),
                                                    name: "component-decompress"))
    }

    /// Call once `plaintext` has ended.
    func finish() throws {
        guard stored.digest?.hex == record.storedSHA256 else {
            throw CNBackupError(.integrity, "object \(record.objectKey) has other bytes than the manifest records (SHA-256 differs)")
        }
        guard plaintext.count == record.plaintextSize, let digest = plaintext.digest,
              try opened.dataKey.plaintextDigestMAC(digest).hex == record.plaintextDigestHMAC else {
            throw CNBackupError(.integrity, "the plaintext of \(record.name) differs from what was captured")
        }
    }
}

import Foundation
import CNBackupCore
import CNBackupStorage
import CNBackupCatalog

/// Captured -> Compressed: independent zstd frames, made by the compression workers (or on a
/// thread of their own without workers), each decoded again and compared with its input when
/// `checkingFrames` (the read-back's proof that what is stored decodes to what was captured).
public struct Compress: Stage {
    public let settings: CompressionSettings
    public let checkingFrames: Bool
    public init(settings: CompressionSettings, checkingFrames: Bool = true) {
        self.settings = settings
        self.checkingFrames = checkingFrames
    }

    public func run(_ input: Captured) throws -> Compressed {
        let zstd = try ZstdFramedCompressStream(input.stream, settings: settings, checkingFrames: checkingFrames)
        return Compressed(stream: settings.workers > 0 ? zstd : PipelinedStream(zstd, name: "zstd"),
                          codec: CodecInfo(name: "zstd", level: settings.level), captured: input,
                          checkedBytes: checkingFrames ? { zstd.checkedBytes } : nil)
    }
}

/// Compressed -> Sealed: AES-256-GCM segments on a thread of their own.
public struct Seal: Stage {
    public let recipients: [Recipient]
    public let segmentSize: Int
    public init(recipients: [Recipient], segmentSize: Int = SealedFormat.defaultSegmentSize) {
        self.recipients = recipients
        self.segmentSize = segmentSize
    }

    public func run(_ input: Compressed) throws -> Sealed {
        let sealing = try SealingStream(input.stream, recipients: recipients,
                                        description: input.captured.description, segmentSize: segmentSize)
        return Sealed(stream: PipelinedStream(sealing, name: "seal"), header: sealing.header,
                      dataKey: sealing.dataKey, compressed: input)
    }
}

/// Sealed -> Stored: writes the object, hashing the stored bytes on the way.
public struct Upload: Stage {
    public let store: any ObjectStore
    public let key: String
    public let tags: [String: String]

    public init(store: any ObjectStore, key: String, tags: [String: String]) {
        self.store = store; self.key = key; self.tags = tags
    }

    public func run(_ input: Sealed) throws -> Stored {
        let digesting = DigestingStream(input.stream)
        // Written only if absent: neither a re-run nor anyone else replaces a stored object through cnbackup.
        let info = try store.put(key: key, from: digesting, options: PutOptions(tags: tags, ifAbsent: true,
                                                                                  sizeHint: input.compressed.captured.sizeHint,
                                                                                  settleByDigest: false))
        guard let digest = digesting.digest else {
            throw CNBackupError(.storage, "\(store.displayName) accepted \(key) before reading all of it")
        }
        guard info.size == digesting.count else {
            throw CNBackupError(.integrity, "\(key) holds \(info.size) bytes in \(store.displayName), \(digesting.count) were written")
        }
        return Stored(key: key, info: info, storedSHA256: digest, storedSize: digesting.count, sealed: input)
    }
}

/// Stored -> Verified: reads the object back and opens it with the data key still in memory. The
/// job proves what it stored without ever holding a private key.
///
/// `full`: every stored byte is read back and every segment authenticated (`ComponentReader.
/// authenticateWritten`): the stored object is, byte for byte, the sealed stream this run made.
/// That stream's frames were each decoded and compared with their plaintext as they were made
/// (`Compress`, checkingFrames), on the compression workers' cores while the upload ran; together
/// that is the proof that the stored object decodes to what was captured, which decoding the whole
/// object again after the upload gave at 40% of a local run's time (docs/BENCHMARKS.md). No
/// SHA-256 is computed here: a stored byte that differs fails its segment's tag, a MAC.
/// `verify --deep` still checks both digests against the manifest.
public struct ReadBack: Stage {
    public let store: any ObjectStore
    public let mode: ReadBackMode
    public init(store: any ObjectStore, mode: ReadBackMode) { self.store = store; self.mode = mode }

    public func run(_ input: Stored) throws -> Verified {
        guard let head = try store.head(key: input.key), head.size == input.storedSize else {
            throw CNBackupError(.integrity, "\(input.key) is missing or has the wrong size in \(store.displayName) right after upload")
        }
        if mode == .none { return Verified(stored: input, mode: mode) }
        if mode == .sample { try readSample(input); return Verified(stored: input, mode: mode) }
        try ComponentReader.authenticateWritten(store: store, key: input.key, storedSize: input.storedSize,
                                                dataKey: input.sealed.dataKey, header: input.sealed.header)
        guard let checked = input.sealed.compressed.checkedBytes?() else {
            throw CNBackupError(.integrity, "\(input.key): readBack full needs the frames checked as they were made, and this run did not check them")
        }
        guard checked == input.plaintextSize else {
            throw CNBackupError(.integrity, "\(input.key): \(checked) of its \(input.plaintextSize) plaintext bytes were checked to decode from what was stored")
        }
        return Verified(stored: input, mode: mode)
    }

    /// Reads the header and the first, the last and up to two random segments by range, and
    /// authenticates each with the data key.
    func readSample(_ input: Stored) throws {
        let header = input.sealed.header
        guard let layout = SegmentLayout(header: header, storedSize: input.storedSize) else {
            throw CNBackupError(.integrity, "\(input.key) has a size no sealed object can have")
        }
        let storedHeader = try store.get(key: input.key, range: 0...(layout.headerSize - 1)).readAll(limit: Int(layout.headerSize))
        guard storedHeader == header.bytes else {
            throw CNBackupError(.integrity, "\(input.key) read back with another header than was written")
        }
        var indices: Set<Int64> = [0, layout.count - 1]
        for _ in 0..<2 where layout.count > 2 { indices.insert(Int64.random(in: 1..<(layout.count - 1))) }
        for index in indices.sorted() {
            let range = layout.range(ofSegment: index)
            let sealed = try store.get(key: input.key, range: range).readAll(limit: range.count)
            _ = try layout.open(segment: index, sealed: sealed, dataKey: input.sealed.dataKey)
        }
    }
}

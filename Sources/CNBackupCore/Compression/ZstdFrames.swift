import Foundation

// Objects are a concatenation of independent zstd frames of at most `frameSize` plaintext bytes
// each, every one with its content size and content checksum (docs/FORMAT.md, "Compression"). The
// `zstd` tool decodes the concatenation as one stream, so break-glass is unchanged; what the frames
// buy is parallel decompression: a restore decodes as many frames at once as it has cores, where
// one frame decodes on one core whatever the machine (BENCHMARKS.md, the restore profile).

/// Plaintext bytes per frame. Each frame starts without history, which costs a fraction of a
/// percent of compression at 4 MiB (the level-3 window is 2 MiB); memory in flight is a few frames,
/// and a frame stays under the executable's mmap threshold (ProcessHardening.swift), so its
/// buffers are reused from the heap instead of being mapped and faulted in anew each time.
package let zstdFrameSize = 4 << 20

/// Reads `upstream` into blocks of exactly `size` bytes (the last one shorter).
package final class BlockReader {
    private let upstream: ByteStream
    private let size: Int
    private var leftover: ArraySlice<UInt8> = []
    private var ended = false

    package init(_ upstream: ByteStream, size: Int) {
        self.upstream = upstream
        self.size = size
    }

    package func next() throws -> [UInt8]? {
        if ended && leftover.isEmpty { return nil }
        var block = [UInt8]()
        block.reserveCapacity(size)
        block.append(contentsOf: leftover.prefix(size))
        leftover = leftover.dropFirst(min(size, leftover.count))
        while block.count < size && !ended {
            guard let chunk = try upstream.next() else { ended = true; break }
            let take = min(size - block.count, chunk.count)
            block.append(contentsOf: chunk[0..<take])
            if take < chunk.count { leftover = chunk[take...] }
        }
        return block.isEmpty ? nil : block
    }
}

/// Compresses its upstream into independent frames of `zstdFrameSize` plaintext bytes, each with
/// its content size and checksum, `settings.workers` frames at a time (0: on the calling thread).
///
/// With `checkingFrames`, a checker thread decodes each frame and compares the result with the
/// frame's input byte for byte before handing it on: the proof that what is sealed decodes to what
/// was captured, made while the run still holds the plaintext, instead of by decoding the whole
/// object again after the upload (the run's read-back, docs/FORMAT.md). Its own thread, not the
/// compression workers': decoding is a quarter of the work of encoding, so where a core is left
/// over (one worker on two cores, two on four) the check costs no time at all.
public final class ZstdFramedCompressStream: ByteStream {
    private let upstream: ByteStream
    private let blocks: BlockReader
    private let map: OrderedParallelMap<[UInt8], (frame: [UInt8], block: [UInt8])>?
    private let checker: OrderedParallelMap<(frame: [UInt8], block: [UInt8]), [UInt8]>?
    private let level: Int32
    private let checking: Bool
    private var inlineEncoder: ZstdFrameEncoder?
    private var inlineDecoder: ZstdFrameDecoder?
    private var sawBlock = false
    private var done = false
    /// The plaintext bytes of the frames checked so far (`checkingFrames`), final at the end.
    public var checkedBytes: Int64 { counter.withLock { $0 } }
    private let counter = LockedCounter()

    public init(_ upstream: ByteStream, settings: CompressionSettings, checkingFrames: Bool = false) throws {
        guard (1...19).contains(settings.level) else {
            throw CNBackupError(.invalidInput, "compression level \(settings.level) is out of range: use 1 to 19")
        }
        self.upstream = upstream
        level = Int32(settings.level)
        let blocks = BlockReader(upstream, size: zstdFrameSize)
        self.blocks = blocks
        checking = checkingFrames
        if settings.workers > 0 {
            let level = Int32(settings.level)
            let encoders = CodecPool { try ZstdFrameEncoder(level: level) }
            let map = OrderedParallelMap(workers: settings.workers, window: settings.workers + 1, name: "zstd",
                                         source: { try blocks.next() },
                                         transform: { block in (frame: try encoders.with { try $0.encode(block) }, block: block) })
            self.map = map
            if checkingFrames {
                let decoder = try ZstdFrameDecoder()
                let counter = counter
                checker = OrderedParallelMap(workers: 1, window: 2, name: "zstd-check", source: { try map.next() },
                                             transform: { made in
                                                 try Self.check(made.frame, decodesTo: made.block, decoder: decoder)
                                                 counter.add(Int64(made.block.count))
                                                 return made.frame
                                             })
            } else {
                checker = nil
            }
        } else {
            map = nil
            checker = nil
        }
    }

    /// Decodes `frame` (its checksum checked by libzstd) and compares it with `block`.
    static func check(_ frame: [UInt8], decodesTo block: [UInt8], decoder: ZstdFrameDecoder) throws {
        let decoded = try decoder.decode(frame, limit: zstdFrameSize)
        let same = decoded.count == block.count && decoded.withUnsafeBytes { a in
            block.withUnsafeBytes { b in a.count == 0 || memcmp(a.baseAddress!, b.baseAddress!, a.count) == 0 }
        }
        guard same else {
            throw CNBackupError(.compression, "a zstd frame this run made does not decode to its input: the machine or libzstd is faulty; nothing of it was stored")
        }
    }

    public func next() throws -> [UInt8]? {
        if done { return nil }
        let frame: [UInt8]?
        if let checker {
            frame = try checker.next()
        } else if let map {
            frame = try map.next()?.frame
        } else if let block = try blocks.next() {
            if inlineEncoder == nil { inlineEncoder = try ZstdFrameEncoder(level: level) }
            frame = try inlineEncoder!.encode(block)
            if checking {
                if inlineDecoder == nil { inlineDecoder = try ZstdFrameDecoder() }
                try Self.check(frame!, decodesTo: block, decoder: inlineDecoder!)
                counter.add(Int64(block.count))
            }
        } else {
            frame = nil
        }
        if let frame { sawBlock = true; return frame }
        done = true
        // Empty input still makes one (empty) frame, so the object is a valid zstd stream.
        if !sawBlock {
            return try ZstdFrameEncoder(level: level).encode([])
        }
        return nil
    }

    public func close() {
        upstream.close()
        map?.stop()
        checker?.stop()
    }
}

/// Encoders or decoders, one per busy worker, kept between frames (a context's tables cost more
/// to set up than a small frame costs to compress).
final class CodecPool<Codec>: @unchecked Sendable {
    // @unchecked: `free` is only touched under `lock`; a codec is used by one thread at a time.
    private let lock = NSLock()
    private var free: [Codec] = []
    private let make: () throws -> Codec
    init(make: @escaping () throws -> Codec) { self.make = make }
    func with<T>(_ body: (Codec) throws -> T) throws -> T {
        let codec = try lock.withLock { free.popLast() } ?? make()
        defer { lock.withLock { free.append(codec) } }
        return try body(codec)
    }
}

/// A counter several threads add to.
final class LockedCounter: @unchecked Sendable {
    // @unchecked: `value` is only touched under `lock`.
    private let lock = NSLock()
    private var value: Int64 = 0
    func add(_ amount: Int64) { lock.withLock { value += amount } }
    func withLock<T>(_ body: (Int64) -> T) -> T { lock.withLock { body(value) } }
}

/// Cuts a zstd stream into whole frames without decoding them: the frame header (RFC 8878 3.1.1)
/// gives its own size, then each block header its block's size, then the checksum. Skippable
/// frames are passed over.
package final class ZstdFrameSplitter {
    package struct Frame {
        package var bytes: [UInt8]
        /// The content size the header declares, if it declares one.
        package var contentSize: Int64?
        package var hasChecksum: Bool
    }

    private let upstream: ByteStream
    private var buffer: [UInt8] = []
    private var ended = false
    /// The most one frame may take (memory stays bounded whatever the stream holds).
    private let maxFrameBytes: Int

    package init(_ upstream: ByteStream, maxFrameBytes: Int) {
        self.upstream = upstream
        self.maxFrameBytes = maxFrameBytes
    }

    /// The next frame's header, read without cutting anything: nil at the end of the stream.
    package func peekHeader() throws -> (contentSize: Int64?, hasChecksum: Bool)? {
        try skipSkippable()
        guard try fill(4) else {
            if buffer.isEmpty { return nil }
            throw Self.cut
        }
        let header = try frameHeader()
        return (header.contentSize, header.hasChecksum)
    }

    private func skipSkippable() throws {
        while try fill(4) {
            let magic = UInt32(truncatingIfNeeded: littleEndian(0, 4))
            guard magic & 0xFFFF_FFF0 == 0x184D_2A50 else { return }
            guard try fill(8) else { throw Self.cut }
            var skip = Int(littleEndian(4, 4)) + 8
            // Passed over in pieces: a skippable frame is never held whole.
            while skip > 0 {
                guard try fill(1) else { throw Self.cut }
                let take = min(skip, buffer.count)
                buffer.removeFirst(take)
                skip -= take
            }
        }
    }

    /// The header of the frame at the start of the buffer (its magic number checked).
    private func frameHeader() throws -> (size: Int, contentSize: Int64?, hasChecksum: Bool) {
        guard UInt32(truncatingIfNeeded: littleEndian(0, 4)) == 0xFD2F_B528 else {
            throw CNBackupError(.compression, "zstd decompression failed (the data is damaged or not zstd)", cause: "no frame magic number")
        }
        guard try fill(5) else { throw Self.cut }
        let descriptor = byte(4)
        let contentSizeFlag = descriptor >> 6, singleSegment = descriptor & 0x20 != 0
        guard descriptor & 0x08 == 0 else {
            throw CNBackupError(.compression, "zstd decompression failed (the data is damaged or not zstd)", cause: "reserved frame header bit set")
        }
        let dictionaryIdSize = [0, 1, 2, 4][descriptor & 0x03]
        let contentSizeBytes = [singleSegment ? 1 : 0, 2, 4, 8][contentSizeFlag]
        let headerSize = 5 + (singleSegment ? 0 : 1) + dictionaryIdSize + contentSizeBytes
        guard try fill(headerSize) else { throw Self.cut }
        var contentSize: Int64?
        if contentSizeBytes > 0 {
            let raw = littleEndian(headerSize - contentSizeBytes, contentSizeBytes)
            contentSize = contentSizeBytes == 2 ? raw + 256 : raw
        }
        return (headerSize, contentSize, descriptor & 0x04 != 0)
    }

    /// Makes sure `count` bytes are buffered; false when the stream ends first.
    private func fill(_ count: Int) throws -> Bool {
        while buffer.count < count && !ended {
            if let chunk = try upstream.next() { buffer.append(contentsOf: chunk) } else { ended = true }
        }
        return buffer.count >= count
    }

    private func byte(_ index: Int) -> Int { Int(buffer[index]) }
    private func littleEndian(_ at: Int, _ size: Int) -> Int64 {
        var value: Int64 = 0
        for i in 0..<size { value |= Int64(buffer[at + i]) << (8 * i) }
        return value
    }

    package func next() throws -> Frame? {
        try skipSkippable()
        guard try fill(4) else {
            if buffer.isEmpty { return nil }
            throw Self.cut
        }
        let header = try frameHeader()
        var position = header.size
        while true {
            guard position + 3 <= maxFrameBytes else {
                throw CNBackupError(.compression, "a zstd frame is larger than \(maxFrameBytes) bytes in a stream of small frames: the data is damaged")
            }
            guard try fill(position + 3) else { throw Self.cut }
            let block = Int(littleEndian(position, 3))
            let last = block & 1 != 0, type = (block >> 1) & 3, size = block >> 3
            guard type != 3 else {
                throw CNBackupError(.compression, "zstd decompression failed (the data is damaged or not zstd)", cause: "reserved block type")
            }
            position += 3 + (type == 1 ? 1 : size)
            if last { break }
        }
        if header.hasChecksum { position += 4 }
        guard position <= maxFrameBytes else {
            throw CNBackupError(.compression, "a zstd frame is larger than \(maxFrameBytes) bytes in a stream of small frames: the data is damaged")
        }
        guard try fill(position) else { throw Self.cut }
        let frame = Array(buffer[0..<position])
        buffer.removeFirst(position)
        return Frame(bytes: frame, contentSize: header.contentSize, hasChecksum: header.hasChecksum)
    }

    private static let cut = CNBackupError(.compression, "the zstd frame is cut short: the data is incomplete")
}

/// Decompresses a stream of frames, `workers` frames at a time, each checked against its content
/// checksum and declared size. A stream whose first frame does not declare a size of at most
/// `zstdFrameSize` (one large frame, as objects were written before framing) is decoded on one
/// thread by `ZstdDecompressStream`, with the same checks.
public final class ZstdParallelDecompressStream: ByteStream {
    private let upstream: ByteStream
    private var map: OrderedParallelMap<[UInt8], [UInt8]>?
    private var single: ZstdDecompressStream?
    private var started = false
    private let workers: Int

    public init(_ upstream: ByteStream, workers: Int = min(4, ProcessInfo.processInfo.activeProcessorCount)) {
        self.upstream = upstream
        self.workers = max(1, workers)
    }

    private func start() throws {
        started = true
        let splitter = ZstdFrameSplitter(upstream, maxFrameBytes: ZstdFrameEncoder.bound(zstdFrameSize))
        guard let first = try splitter.peekHeader() else {
            throw CNBackupError(.compression, "the zstd frame is cut short: the data is incomplete")
        }
        guard let size = first.contentSize, size <= Int64(zstdFrameSize), first.hasChecksum else {
            single = try ZstdDecompressStream(SplitterRest(splitter))
            return
        }
        let decoders = CodecPool { try ZstdFrameDecoder() }
        map = OrderedParallelMap(workers: workers, window: workers + 1, name: "unzstd",
                                 source: { try splitter.next()?.bytes },
                                 transform: { frame in try decoders.with { try $0.decode(frame, limit: zstdFrameSize) } })
    }

    public func next() throws -> [UInt8]? {
        if !started { try start() }
        if let single { return try single.next() }
        // A frame decodes to one chunk of up to `zstdFrameSize` bytes (an empty frame to none).
        while let chunk = try map!.next() {
            if !chunk.isEmpty { return chunk }
        }
        return nil
    }

    public func close() {
        upstream.close()
        map?.stop()
    }

    /// What the splitter still holds and has not cut, then the rest of the upstream.
    private final class SplitterRest: ByteStream {
        let splitter: ZstdFrameSplitter
        init(_ splitter: ZstdFrameSplitter) { self.splitter = splitter }
        func next() throws -> [UInt8]? { try splitter.remainder() }
        func close() { splitter.close() }
    }
}

extension ZstdFrameSplitter {
    /// The buffered bytes not yet cut, then the upstream's chunks as they come (for a stream that
    /// is not cut into frames after all).
    package func remainder() throws -> [UInt8]? {
        if !buffer.isEmpty { defer { buffer = [] }; return buffer }
        if ended { return nil }
        return try upstream.next()
    }

    package func close() { upstream.close() }
}

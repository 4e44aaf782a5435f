import CZstd
import Foundation

// The one door to libzstd (ZstdFrames.swift builds the framed streams on the two frame codecs
// here). Output is standard zstd frames
// with their content checksums, so the `zstd` tool decodes what cnbackup stores once it is
// decrypted (the break-glass path).

/// zstd settings of a pipeline.
public struct CompressionSettings: Sendable, Equatable {
    /// 1 to 19; 3 is zstd's own default, a good trade on the path to the network.
    public var level: Int
    /// zstd worker threads besides the caller; 0 compresses on the calling thread. Two by default:
    /// compression is the busiest stage on a database dump, and a single thread for it left the
    /// run slower than `zstd -T0` in a shell pipeline (BENCHMARKS.md).
    public var workers: Int

    public init(level: Int = 3, workers: Int = 2) {
        self.level = level
        self.workers = workers
    }
}

private func zstdCheck(_ code: Int, _ what: String) throws {
    if ZSTD_isError(code) != 0 {
        throw CNBackupError(.compression, "zstd \(what) failed", cause: String(cString: ZSTD_getErrorName(code)))
    }
}

private let outputChunkSize = 1 << 20

/// Compresses its upstream into one streamed zstd frame with a content checksum: what versions
/// before 0.3.0 stored (runs now write `ZstdFramedCompressStream`). Kept because readers must go
/// on reading such objects, and the tests that prove they do write them with it.
public final class ZstdCompressStream: ByteStream {
    private let upstream: ByteStream
    private let context: OpaquePointer
    private var input: [UInt8] = []
    private var inputPosition = 0
    private var upstreamDone = false
    private var frameDone = false

    package static let jobSize = 2 << 20

    public init(_ upstream: ByteStream, settings: CompressionSettings) throws {
        guard (1...19).contains(settings.level) else {
            throw CNBackupError(.invalidInput, "compression level \(settings.level) is out of range: use 1 to 19")
        }
        guard let context = ZSTD_createCCtx() else { throw CNBackupError(.compression, "zstd could not allocate a context") }
        self.context = context
        self.upstream = upstream
        try zstdCheck(ZSTD_CCtx_setParameter(context, ZSTD_c_compressionLevel, Int32(settings.level)), "level")
        try zstdCheck(ZSTD_CCtx_setParameter(context, ZSTD_c_checksumFlag, 1), "checksum flag")
        if settings.workers > 0 {
            try zstdCheck(ZSTD_CCtx_setParameter(context, ZSTD_c_nbWorkers, Int32(settings.workers)), "worker threads")
            // zstd's default job for level 3 is 8 MiB, and each worker holds a job's input, its
            // output and the overlap: 2 workers took peak RSS from 54 to 103 MiB. 2 MiB jobs cost
            // no compression (the overlap keeps the history) and keep it at 65 MiB (BENCHMARKS.md).
            try zstdCheck(ZSTD_CCtx_setParameter(context, ZSTD_c_jobSize, Int32(Self.jobSize)), "job size")
        }
    }

    deinit { ZSTD_freeCCtx(context) }

    public func next() throws -> [UInt8]? {
        if frameDone { return nil }
        var produced = 0
        // Uninitialised: zstd writes what it produces, and only that much is kept.
        let output = try [UInt8](unsafeUninitializedCapacity: outputChunkSize) { dst, count in
            defer { count = produced }
            while produced < outputChunkSize && !frameDone {
                if inputPosition == input.count && !upstreamDone {
                    if let chunk = try upstream.next() { input = chunk } else { input = []; upstreamDone = true }
                    inputPosition = 0
                }
                let directive = upstreamDone ? ZSTD_e_end : ZSTD_e_continue
                let remaining: Int = try input.withUnsafeBytes { src in
                    var inBuffer = ZSTD_inBuffer(src: src.baseAddress, size: src.count, pos: inputPosition)
                    var outBuffer = ZSTD_outBuffer(dst: dst.baseAddress, size: outputChunkSize, pos: produced)
                    let result = ZSTD_compressStream2(context, &outBuffer, &inBuffer, directive)
                    try zstdCheck(result, "compression")
                    inputPosition = inBuffer.pos
                    produced = outBuffer.pos
                    return result
                }
                if upstreamDone && remaining == 0 { frameDone = true }
            }
        }
        if produced == 0 { return nil }
        return output
    }

    public func close() { upstream.close() }
}

/// Decompresses zstd frames, checking each frame's content checksum; throws on a cut frame.
public final class ZstdDecompressStream: ByteStream {
    private let upstream: ByteStream
    private let context: OpaquePointer
    private var input: [UInt8] = []
    private var inputPosition = 0
    private var upstreamDone = false
    private var lastResult = 1  // zstd's "bytes still expected" hint; 0 when a frame just ended
    private var framesCompleted = 0

    public init(_ upstream: ByteStream) throws {
        guard let context = ZSTD_createDCtx() else { throw CNBackupError(.compression, "zstd could not allocate a context") }
        self.context = context
        self.upstream = upstream
    }

    deinit { ZSTD_freeDCtx(context) }

    public func next() throws -> [UInt8]? {
        var produced = 0
        // Uninitialised: zstd writes what it decodes, and only that much is kept.
        let output = try [UInt8](unsafeUninitializedCapacity: outputChunkSize) { dst, count in
            defer { count = produced }
            while produced < outputChunkSize {
                if inputPosition == input.count && !upstreamDone {
                    if let chunk = try upstream.next() { input = chunk; inputPosition = 0 } else {
                        // zstd may still hold decoded bytes: keep calling with no input until it
                        // makes no more progress.
                        upstreamDone = true
                        input = []; inputPosition = 0
                    }
                }
                // A finished frame with no input left: calling zstd again would start a new frame.
                if upstreamDone && inputPosition == input.count && lastResult == 0 { break }
                let before = (inputPosition, produced)
                try input.withUnsafeBytes { src in
                    var inBuffer = ZSTD_inBuffer(src: src.baseAddress, size: src.count, pos: inputPosition)
                    var outBuffer = ZSTD_outBuffer(dst: dst.baseAddress, size: outputChunkSize, pos: produced)
                    let result = ZSTD_decompressStream(context, &outBuffer, &inBuffer)
                    try zstdCheck(result, "decompression (the data is damaged or not zstd)")
                    inputPosition = inBuffer.pos
                    produced = outBuffer.pos
                    if result == 0 && lastResult != 0 { framesCompleted += 1 }
                    lastResult = result
                }
                if upstreamDone && before == (inputPosition, produced) { break }
            }
        }
        if produced > 0 { return output }
        if upstreamDone {
            guard lastResult == 0, framesCompleted > 0 else {
                throw CNBackupError(.compression, "the zstd frame is cut short: the data is incomplete")
            }
            return nil
        }
        return try next()
    }

    public func close() { upstream.close() }
}

/// Makes whole frames that declare their content size and end with their content checksum, one
/// at a time (a worker keeps one between frames).
package final class ZstdFrameEncoder {
    private let context: OpaquePointer

    package init(level: Int32) throws {
        guard let context = ZSTD_createCCtx() else { throw CNBackupError(.compression, "zstd could not allocate a context") }
        self.context = context
        try zstdCheck(ZSTD_CCtx_setParameter(context, ZSTD_c_compressionLevel, level), "level")
        try zstdCheck(ZSTD_CCtx_setParameter(context, ZSTD_c_checksumFlag, 1), "checksum flag")
        try zstdCheck(ZSTD_CCtx_setParameter(context, ZSTD_c_contentSizeFlag, 1), "content size flag")
    }

    deinit { ZSTD_freeCCtx(context) }

    /// The most bytes a frame of `size` plaintext bytes can take.
    package static func bound(_ size: Int) -> Int { ZSTD_compressBound(size) }

    package func encode(_ block: [UInt8]) throws -> [UInt8] {
        let bound = Self.bound(block.count)
        var failure = 0
        // Uninitialised: zstd writes the frame, and only that much is kept.
        let frame = [UInt8](unsafeUninitializedCapacity: bound) { dst, count in
            let result = block.withUnsafeBytes { ZSTD_compress2(context, dst.baseAddress, bound, $0.baseAddress, $0.count) }
            if ZSTD_isError(result) != 0 { failure = result; count = 0 } else { count = result }
        }
        try zstdCheck(failure, "compression")
        return frame
    }
}

/// Decodes one whole frame that declares its content size (at most `limit`) and carries its
/// content checksum, which libzstd checks.
package final class ZstdFrameDecoder {
    private let context: OpaquePointer

    package init() throws {
        guard let context = ZSTD_createDCtx() else { throw CNBackupError(.compression, "zstd could not allocate a context") }
        self.context = context
    }

    deinit { ZSTD_freeDCtx(context) }

    package func decode(_ frame: [UInt8], limit: Int) throws -> [UInt8] {
        let size = frame.withUnsafeBytes { ZSTD_getFrameContentSize($0.baseAddress, $0.count) }
        guard size <= UInt64(limit) else {
            throw CNBackupError(.compression, "zstd decompression failed (the data is damaged or not zstd)",
                                cause: "a frame without its size, or larger than \(limit) bytes, in a stream of small frames")
        }
        guard frame.count > 4, frame[4] & 0x04 != 0 else {
            throw CNBackupError(.compression, "zstd decompression failed (the data is damaged or not zstd)", cause: "a frame without its content checksum")
        }
        var failure = 0
        let whole = [UInt8](unsafeUninitializedCapacity: Int(size)) { dst, count in
            let result = frame.withUnsafeBytes { ZSTD_decompressDCtx(context, dst.baseAddress, Int(size), $0.baseAddress, $0.count) }
            if ZSTD_isError(result) != 0 { failure = result; count = 0 } else { count = result }
        }
        try zstdCheck(failure, "decompression (the data is damaged or not zstd)")
        guard whole.count == Int(size) else {
            throw CNBackupError(.compression, "a zstd frame decodes to \(whole.count) bytes, its header says \(size)")
        }
        return whole
    }
}

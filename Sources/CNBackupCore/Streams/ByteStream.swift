import Foundation

/// A pull-based source of bytes: the consumer asks for the next chunk when it is ready for it, so a
/// slow consumer holds back its producer (backpressure) and memory stays bounded.
///
/// `next()` returns a non-empty chunk, or `nil` once the stream has ended cleanly; it throws when
/// the bytes could not be produced (a failed command, a bad segment). One consumer at a time.
/// `close()` tells the producer that nobody will read further (after an error downstream), so it
/// can stop its work and release what it holds; it is safe to call more than once.
public protocol ByteStream: AnyObject {
    func next() throws -> [UInt8]?
    func close()
}

extension ByteStream {
    public func close() {}

    /// Reads the stream to its end and calls `body` with each chunk.
    public func forEachChunk(_ body: ([UInt8]) throws -> Void) throws {
        do {
            while let chunk = try next() { try body(chunk) }
        } catch {
            close()
            throw error
        }
    }

    /// Reads the whole stream into memory. Only for small, bounded objects (manifests, signatures).
    public func readAll(limit: Int) throws -> [UInt8] {
        var all: [UInt8] = []
        try forEachChunk { chunk in
            all.append(contentsOf: chunk)
            if all.count > limit {
                throw CNBackupError(.invalidInput, "object is larger than \(limit) bytes, the most expected here")
            }
        }
        return all
    }
}

/// A stream over bytes already in memory, cut into chunks of at most `chunkSize`.
public final class MemoryStream: ByteStream {
    private let bytes: [UInt8]
    private let chunkSize: Int
    private var offset = 0

    public init(_ bytes: [UInt8], chunkSize: Int = 1 << 20) {
        self.bytes = bytes
        self.chunkSize = max(1, chunkSize)
    }

    public func next() throws -> [UInt8]? {
        guard offset < bytes.count else { return nil }
        let end = min(bytes.count, offset + chunkSize)
        defer { offset = end }
        return Array(bytes[offset..<end])
    }
}

/// Reads a file descriptor in chunks of up to `chunkSize`, filling each chunk before returning it
/// (pipes deliver 64 KiB at a time; larger chunks mean fewer calls into zstd and AES-GCM).
public final class FileDescriptorStream: ByteStream {
    private let fd: Int32
    private let ownsDescriptor: Bool
    private let chunkSize: Int
    private let what: String
    private var finished = false
    private var limit: Int64?

    /// - Parameters:
    ///   - fd: the descriptor to read.
    ///   - owns: whether `close()` closes the descriptor.
    ///   - limit: the most bytes to read (for ranged reads of a file), or nil for all.
    ///   - what: names the source in error messages.
    public init(fd: Int32, owns: Bool, chunkSize: Int = 1 << 20, limit: Int64? = nil, what: String) {
        self.fd = fd
        self.ownsDescriptor = owns
        self.chunkSize = chunkSize
        self.limit = limit
        self.what = what
    }

    deinit { close() }

    public func next() throws -> [UInt8]? {
        if finished { return nil }
        var want = chunkSize
        if let limit { want = Int(min(Int64(want), limit)) }
        if want == 0 { finished = true; return nil }
        // Uninitialised: read(2) fills it, and zeroing 1 MiB per chunk first would be wasted work.
        var filled = 0
        let chunk = try [UInt8](unsafeUninitializedCapacity: want) { buffer, count in
            defer { count = filled }
            while filled < want {
                let n = read(fd, buffer.baseAddress! + filled, want - filled)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw CNBackupError(.io, "reading \(what) failed: \(String(cString: strerror(errno)))")
                }
                if n == 0 { finished = true; break }
                filled += n
            }
        }
        if let limit { self.limit = limit - Int64(filled) }
        if filled == 0 { return nil }
        return chunk
    }

    public func close() {
        finished = true
        if ownsDescriptor, fd >= 0 {
            // Only once: `finished` alone does not say whether the descriptor is still open.
            if !descriptorClosed { Foundation.close(fd); descriptorClosed = true }
        }
    }
    private var descriptorClosed = false
}

/// Writes every chunk of `stream` to `fd`, handling short writes.
public func writeAll(_ stream: ByteStream, to fd: Int32, what: String) throws -> Int64 {
    var total: Int64 = 0
    try stream.forEachChunk { chunk in
        try writeFully(fd: fd, chunk, what: what)
        total += Int64(chunk.count)
    }
    return total
}

/// Writes all of `bytes` to `fd`, retrying short writes and EINTR.
public func writeFully(fd: Int32, _ bytes: [UInt8], what: String) throws {
    var written = 0
    while written < bytes.count {
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, bytes.count - written) }
        if n < 0 {
            if errno == EINTR { continue }
            throw CNBackupError(.io, "writing \(what) failed: \(String(cString: strerror(errno)))")
        }
        written += n
    }
}

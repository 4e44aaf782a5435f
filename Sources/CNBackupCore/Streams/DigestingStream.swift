import Foundation

/// Passes bytes through unchanged while counting them and hashing them with SHA-256, so a digest
/// costs no second read. `digest` and `count` are final once the stream has returned nil.
public final class DigestingStream: ByteStream {
    private let upstream: ByteStream
    private let hasher: SHA256Hasher?
    public private(set) var count: Int64 = 0
    /// The SHA-256 once the stream ended (empty when it was only counting).
    public private(set) var digest: [UInt8]?

    /// - Parameter hashing: false only counts (the run's read-back, where authenticated segments
    ///   and the zstd checksum already prove the bytes, and a hash pass costs a core).
    public init(_ upstream: ByteStream, hashing: Bool = true) {
        self.upstream = upstream
        hasher = hashing ? SHA256Hasher() : nil
    }

    public func next() throws -> [UInt8]? {
        guard let chunk = try upstream.next() else {
            if digest == nil { digest = hasher?.finalize() ?? [] }
            return nil
        }
        hasher?.update(chunk)
        count += Int64(chunk.count)
        return chunk
    }

    public func close() { upstream.close() }
}

/// Passes at most `limit` bytes through and throws at the first byte beyond: a reader stops at the
/// sizes the signed manifest gives, so an object (or a decompressed frame) that grew cannot make
/// it hand out, or spend memory and time on, a byte nobody vouched for.
public final class LimitedStream: ByteStream {
    private let upstream: ByteStream
    private let limit: Int64
    private let what: String
    public private(set) var count: Int64 = 0

    public init(_ upstream: ByteStream, limit: Int64, what: String) {
        self.upstream = upstream; self.limit = limit; self.what = what
    }

    public func next() throws -> [UInt8]? {
        guard let chunk = try upstream.next() else { return nil }
        count += Int64(chunk.count)
        guard count <= limit else {
            upstream.close()
            throw CNBackupError(.integrity, "\(what) goes on past the \(limit) bytes the signed manifest records: it was altered")
        }
        return chunk
    }

    public func close() { upstream.close() }
}

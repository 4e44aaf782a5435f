import Foundation

/// Passes bytes through unchanged while counting them and hashing them with SHA-256, so a digest
/// costs no second read. `digest` and `count` are final once the stream has returned nil.
public final class DigestingStream: ByteStream {
    private let upstream: ByteStream
    private let hasher = SHA256Hasher()
    public private(set) var count: Int64 = 0
    public private(set) var digest: [UInt8]?

    public init(_ upstream: ByteStream) { self.upstream = upstream }

    public func next() throws -> [UInt8]? {
        guard let chunk = try upstream.next() else {
            if digest == nil { digest = hasher.finalize() }
            return nil
        }
        hasher.update(chunk)
        count += Int64(chunk.count)
        return chunk
    }

    public func close() { upstream.close() }
}

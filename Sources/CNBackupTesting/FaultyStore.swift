import Foundation
import CNBackupCore
import CNBackupStorage

/// Wraps a store and makes chosen calls fail, after kopia's `blobtesting.FaultyStorage`: each
/// operation has a queue of faults, and every call of that operation takes the next one. A fault
/// can throw a transient storage error before the call reaches the store, or let a `put` read part
/// of its source and then fail (the wrapped store must then keep its atomic-put guarantee).
public final class FaultyStore: ObjectStore, MultipartUploadCleaning, @unchecked Sendable {
    // @unchecked: `faults` and `calls` are only touched under `lock`.
    public enum Operation: String, Sendable, CaseIterable { case put, get, head, list, delete, tags }
    public enum Fault: Sendable {
        /// Throws a transient `.storage` error before the call reaches the store.
        case transientError
        /// Throws a `.storage` error that is not transient.
        case permanentError
        /// For `put`: the source fails after this many bytes were read.
        case sourceFailsAfter(bytes: Int)
    }

    public let base: any ObjectStore
    private let lock = NSLock()
    private var faults: [Operation: [Fault]] = [:]
    private var calls: [Operation: Int] = [:]

    public init(_ base: any ObjectStore) { self.base = base }

    public var displayName: String { base.displayName }

    /// Queues `fault` for the next calls of `operation`, `times` in a row.
    public func inject(_ fault: Fault, into operation: Operation, times: Int = 1) {
        lock.withLock { faults[operation, default: []] += Array(repeating: fault, count: times) }
    }

    /// How many calls of `operation` this store received.
    public func callCount(_ operation: Operation) -> Int { lock.withLock { calls[operation] ?? 0 } }

    private func take(_ operation: Operation) -> Fault? {
        lock.withLock {
            calls[operation, default: 0] += 1
            guard var queue = faults[operation], !queue.isEmpty else { return nil }
            let fault = queue.removeFirst()
            faults[operation] = queue
            return fault
        }
    }

    private func check(_ operation: Operation, _ key: String) throws {
        switch take(operation) {
        case .transientError?:
            throw CNBackupError(.storage, "injected transient fault: \(operation.rawValue) \(key) in \(displayName)", transient: true)
        case .permanentError?:
            throw CNBackupError(.storage, "injected permanent fault: \(operation.rawValue) \(key) in \(displayName)")
        case .sourceFailsAfter?, nil:
            return
        }
    }

    @discardableResult
    public func put(key: String, from source: ByteStream, options: PutOptions) throws -> ObjectInfo {
        switch take(.put) {
        case .transientError?:
            source.close()
            throw CNBackupError(.storage, "injected transient fault: put \(key) in \(displayName)", transient: true)
        case .permanentError?:
            source.close()
            throw CNBackupError(.storage, "injected permanent fault: put \(key) in \(displayName)")
        case .sourceFailsAfter(let bytes)?:
            return try base.put(key: key, from: FailingAfter(source, bytes: bytes), options: options)
        case nil:
            return try base.put(key: key, from: source, options: options)
        }
    }

    public func get(key: String, range: ClosedRange<Int64>?) throws -> ByteStream {
        try check(.get, key); return try base.get(key: key, range: range)
    }
    public func head(key: String) throws -> ObjectInfo? { try check(.head, key); return try base.head(key: key) }
    public func list(prefix: String) throws -> [ObjectInfo] { try check(.list, prefix); return try base.list(prefix: prefix) }
    public func delete(keys: [String]) throws { try check(.delete, keys.first ?? ""); try base.delete(keys: keys) }
    public func tags(key: String) throws -> [String: String] { try check(.tags, key); return try base.tags(key: key) }

    public func staleMultipartUploads(olderThan cutoff: Date) throws -> [StaleUpload] {
        try (base as? any MultipartUploadCleaning)?.staleMultipartUploads(olderThan: cutoff) ?? []
    }
    public func abort(_ upload: StaleUpload) throws { try (base as? any MultipartUploadCleaning)?.abort(upload) }
}

/// Passes `bytes` bytes of a source through, then fails as a dying capture would.
private final class FailingAfter: ByteStream {
    private let upstream: ByteStream
    private var left: Int
    init(_ upstream: ByteStream, bytes: Int) { self.upstream = upstream; left = bytes }
    func next() throws -> [UInt8]? {
        guard left > 0 else { throw CNBackupError(.capture, "injected fault: the source failed") }
        guard var chunk = try upstream.next() else { throw CNBackupError(.capture, "injected fault: the source failed") }
        if chunk.count > left { chunk = Array(chunk.prefix(left)) }
        left -= chunk.count
        return chunk
    }
    func close() { upstream.close() }
}

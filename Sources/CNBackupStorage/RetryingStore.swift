import Foundation
import CNBackupCore
import CNBackupHTTP

/// Applies a `RetryPolicy` to a store that does not retry by itself (the file store, which may sit
/// on a network file system that answers ESTALE or EIO for a moment). Reads, lists, deletes and
/// tag reads are retried on errors marked transient; `put` is not, because its source stream is
/// consumed once: the store's atomic put leaves nothing behind, and the caller's run fails the
/// component instead. S3 owns its retries (per request, part and resumed read) and is not wrapped.
public struct RetryingStore: ObjectStore, MultipartUploadCleaning {
    public let base: any ObjectStore
    public let policy: RetryPolicy

    public init(_ base: any ObjectStore, policy: RetryPolicy) { self.base = base; self.policy = policy }

    public var displayName: String { base.displayName }

    private func retrying<T>(_ body: () throws -> T) throws -> T {
        try policy.run { _, _ in
            do {
                return .success(try body())
            } catch let error as CNBackupError where error.isTransient {
                return .retry(error)
            }
        }
    }

    @discardableResult
    public func put(key: String, from source: ByteStream, options: PutOptions) throws -> ObjectInfo {
        try base.put(key: key, from: source, options: options)
    }
    public func get(key: String, range: ClosedRange<Int64>?) throws -> ByteStream { try retrying { try base.get(key: key, range: range) } }
    public func head(key: String) throws -> ObjectInfo? { try retrying { try base.head(key: key) } }
    public func list(prefix: String) throws -> [ObjectInfo] { try retrying { try base.list(prefix: prefix) } }
    public func delete(keys: [String]) throws { try retrying { try base.delete(keys: keys) } }
    public func tags(key: String) throws -> [String: String] { try retrying { try base.tags(key: key) } }

    public func staleMultipartUploads(olderThan cutoff: Date) throws -> [StaleUpload] {
        try retrying { try (base as? any MultipartUploadCleaning)?.staleMultipartUploads(olderThan: cutoff) ?? [] }
    }
    public func abort(_ upload: StaleUpload) throws {
        try retrying { try (base as? any MultipartUploadCleaning)?.abort(upload) }
    }
}

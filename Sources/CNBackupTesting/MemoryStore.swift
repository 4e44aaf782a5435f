// CNBackupTesting: stores for tests, not part of the library's products. It may know the
// ObjectStore protocol and its guarantees (CNBackupStorage) and the byte streams (CNBackupCore),
// nothing of the domain above them.
import Foundation
import CNBackupCore
import CNBackupStorage

/// An `ObjectStore` in memory that keeps every guarantee of the protocol: the reference the
/// conformance suite holds the other stores to, and a fast store for tests of the layers above.
public final class MemoryStore: ObjectStore, MultipartUploadCleaning, @unchecked Sendable {
    // @unchecked: `objects` is only touched under `lock`.
    private struct Object { var bytes: [UInt8]; var tags: [String: String]; var modified: Date }
    private let lock = NSLock()
    private var objects: [String: Object] = [:]
    public let displayName: String

    public init(name: String = "memory://test") { displayName = name }

    @discardableResult
    public func put(key: String, from source: ByteStream, options: PutOptions) throws -> ObjectInfo {
        try validateObjectKey(key)
        defer { source.close() }
        // Read the whole source first: a source that fails leaves nothing (atomic put).
        var bytes: [UInt8] = []
        while let chunk = try source.next() { bytes += chunk }
        return try lock.withLock {
            if options.ifAbsent, let existing = objects[key] {
                guard existing.bytes == bytes else {
                    throw CNBackupError(.alreadyExists, "\(key) already exists in \(displayName) with other bytes; it is never replaced")
                }
                return info(key, existing)
            }
            let object = Object(bytes: bytes, tags: options.tags, modified: Date())
            objects[key] = object
            return info(key, object)
        }
    }

    public func get(key: String, range: ClosedRange<Int64>?) throws -> ByteStream {
        try validateObjectKey(key)
        guard let object = lock.withLock({ objects[key] }) else { throw CNBackupError(.notFound, "\(key) is not in \(displayName)") }
        guard let range else { return MemoryStream(object.bytes) }
        guard range.lowerBound >= 0, range.lowerBound < Int64(object.bytes.count) else {
            throw CNBackupError(.storage, "range \(range) is outside \(key) (\(object.bytes.count) bytes)")
        }
        let upper = min(Int(range.upperBound), object.bytes.count - 1)
        return MemoryStream(Array(object.bytes[Int(range.lowerBound)...upper]))
    }

    public func head(key: String) throws -> ObjectInfo? {
        try validateObjectKey(key)
        return lock.withLock { objects[key].map { info(key, $0) } }
    }

    public func list(prefix: String) throws -> [ObjectInfo] {
        lock.withLock { objects.filter { $0.key.hasPrefix(prefix) }.map { info($0.key, $0.value) }.sorted { $0.key < $1.key } }
    }

    public func delete(keys: [String]) throws {
        for key in keys { try validateObjectKey(key) }
        lock.withLock { for key in keys { objects[key] = nil } }
    }

    public func tags(key: String) throws -> [String: String] {
        guard let object = lock.withLock({ objects[key] }) else { throw CNBackupError(.notFound, "\(key) is not in \(displayName)") }
        return object.tags
    }

    /// Puts bytes under any key, as a writer with its own tools could (no key check, no tags):
    /// for tests that play the bucket writer or feed readers what a fuzzer made.
    public func plant(key: String, _ bytes: [UInt8]) {
        lock.withLock { objects[key] = Object(bytes: bytes, tags: [:], modified: Date()) }
    }

    /// A memory store has no multipart uploads.
    public func staleMultipartUploads(olderThan cutoff: Date) throws -> [StaleUpload] { [] }
    public func abort(_ upload: StaleUpload) throws {}

    private func info(_ key: String, _ object: Object) -> ObjectInfo {
        ObjectInfo(key: key, size: Int64(object.bytes.count), lastModified: object.modified)
    }
}

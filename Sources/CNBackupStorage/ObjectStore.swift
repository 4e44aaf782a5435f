// CNBackupStorage: where objects go. The ObjectStore protocol and its guarantees, the file store,
// RetryingStore, store URLs, and S3 (settings, credentials, SigV4, requests, multipart, reading).
// It may know CNBackupCore and CNBackupHTTP; it knows objects and keys, not sets, manifests,
// pipelines or Canton.
import Foundation
import CNBackupCore

/// What a store says about one object.
public struct ObjectInfo: Sendable, Equatable {
    /// The key relative to the store's root (its URL's path or prefix), with `/` separators.
    public var key: String
    public var size: Int64
    public var lastModified: Date
    /// The store's own entity tag or version id, when it has one (S3). Not an MD5 in general.
    public var etag: String?
    /// Object Lock: the object cannot be deleted before this time (S3 `HEAD`, when locked).
    public var retainUntil: Date?

    public init(key: String, size: Int64, lastModified: Date, etag: String? = nil, retainUntil: Date? = nil) {
        self.key = key; self.size = size; self.lastModified = lastModified; self.etag = etag; self.retainUntil = retainUntil
    }
}

/// How to write one object.
public struct PutOptions: Sendable {
    /// Labels for the storage's own lifecycle rules (S3 object tags). Never trusted on reading:
    /// they are unsigned and anyone with write access can change them.
    public var tags: [String: String]
    /// Refuse to replace an existing object (`If-None-Match: *`); every object cnbackup writes is
    /// written once. When the existing object has the same bytes (a retried request whose first
    /// answer was lost), the put succeeds.
    public var ifAbsent: Bool
    /// With `ifAbsent`: settle a conflict by comparing the whole object's SHA-256 (manifests, small
    /// objects). Off for large objects under a new set id, where a conflict can only be another
    /// writer's (or our own retried completion, which the multipart ETag recognises), so no extra
    /// hash pass is paid.
    public var settleByDigest: Bool = true
    /// The expected size, when known, so a store can choose its part size.
    public var sizeHint: Int64?
    /// Retain this object longer than the store's Object Lock days (a deduplicated chunk, which
    /// later sets reuse); nil: the store's own setting. Ignored by stores without a lock.
    public var retentionDays: Int? = nil

    public init(tags: [String: String] = [:], ifAbsent: Bool = false, sizeHint: Int64? = nil, settleByDigest: Bool = true) {
        self.tags = tags; self.ifAbsent = ifAbsent; self.sizeHint = sizeHint; self.settleByDigest = settleByDigest
    }
}

/// Where backups go. Every implementation keeps these guarantees, and the conformance suite in
/// Tests/CNBackupTestKit/ObjectStoreConformance.swift checks each of them:
///
/// - **Atomic put**: an object appears whole or not at all. When the source stream throws, or the
///   store fails part-way, `put` throws and no object (and no partial upload) is left under `key`.
/// - **Read after write**: once `put` returns, `head`, `get` and `list` see the object.
/// - **Put if absent**: with `ifAbsent`, `put` throws `.alreadyExists` when an object with other
///   bytes is already there, and succeeds without change when the same bytes are there.
/// - **Ranged get**: `get` with a range returns exactly those bytes (inclusive bounds).
/// - **List**: every object whose key starts with `prefix`, sorted by key, across all pages.
/// - **Delete**: removing missing keys is not an error.
/// - **Errors**: a missing object is `.notFound`; messages name the key and store, never a secret.
public protocol ObjectStore: Sendable {
    /// A name for messages (`file:///var/backups`, `s3://bucket/prefix`), never with credentials.
    var displayName: String { get }

    @discardableResult
    func put(key: String, from source: ByteStream, options: PutOptions) throws -> ObjectInfo
    func get(key: String, range: ClosedRange<Int64>?) throws -> ByteStream
    /// nil when there is no such object.
    func head(key: String) throws -> ObjectInfo?
    func list(prefix: String) throws -> [ObjectInfo]
    func delete(keys: [String]) throws
    func tags(key: String) throws -> [String: String]
}

extension ObjectStore {
    public func get(key: String) throws -> ByteStream { try get(key: key, range: nil) }

    /// Reads a small object (a manifest, a signature) whole.
    public func getBytes(key: String, limit: Int = 16 << 20) throws -> [UInt8] {
        try get(key: key, range: nil).readAll(limit: limit)
    }

    @discardableResult
    public func putBytes(key: String, _ bytes: [UInt8], options: PutOptions = PutOptions()) throws -> ObjectInfo {
        var options = options
        options.sizeHint = Int64(bytes.count)
        return try put(key: key, from: MemoryStream(bytes), options: options)
    }
}

extension ObjectStore {
    /// With `ifAbsent` and an object already under `key`: success when it holds the same bytes
    /// (a retried write whose first answer was lost), a conflict otherwise.
    package func settleConflict(key: String, existing: ObjectInfo, size: Int64, digest: [UInt8]) throws -> ObjectInfo {
        if existing.size == size {
            let hasher = SHA256Hasher()
            try get(key: key, range: nil).forEachChunk { hasher.update($0) }
            if constantTimeEqual(hasher.finalize(), digest) { return existing }
        }
        throw CNBackupError(.alreadyExists, "\(displayName)\(key) already exists with other bytes; it was left unchanged")
    }

    package func conflictVanished(_ key: String) -> CNBackupError {
        CNBackupError(.storage, "\(displayName)\(key) was reported to exist, then was gone: another writer is at work")
    }
}

/// Multipart uploads a store can list and abort (S3); the file store has none.
public protocol MultipartUploadCleaning: ObjectStore {
    func staleMultipartUploads(olderThan: Date) throws -> [StaleUpload]
    func abort(_ upload: StaleUpload) throws
}

/// A store whose unfinished uploads cannot be listed (GCS resumable sessions): `cleanup` and
/// `recover` say so instead of reporting none.
public protocol UnlistedUploadSessions: ObjectStore {
    var uploadSessionsNote: String { get }
}

public struct StaleUpload: Sendable, Codable, Equatable {
    public var key: String
    public var uploadId: String
    public var initiated: Date?
}

/// Checks an object key before any store uses it: relative, no `.` or `..` segments, no empty
/// segments, printable. Keys come from node names and set ids in files an operator edits.
package func validateObjectKey(_ key: String) throws {
    let segments = key.split(separator: "/", omittingEmptySubsequences: false)
    guard !key.isEmpty, !key.hasPrefix("/"),
          segments.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." }),
          key.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7f }) else {
        throw CNBackupError(.invalidInput, "object key \"\(key)\" is not allowed: use relative keys without empty, . or .. segments")
    }
}

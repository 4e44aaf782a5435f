import Foundation
import CNBackupCore
import CNBackupHTTP

/// An object's bytes (or a range of them), streamed from `alt=media`. A connection lost part-way
/// is picked up from the next byte, pinned to the same object by its generation; a whole read is
/// checked against the CRC-32C GCS keeps (`x-goog-hash`) before its end is reported.
final class GCSObjectStream: ByteStream {
    let store: GCSStore
    let key: String
    var position: Int64
    let end: Int64?
    let whole: Bool
    var generation: String?
    var expectedCRC: String?
    var crc = CRC32C()
    var body: ByteStream?
    var resumes = 0
    var finished = false

    init(store: GCSStore, key: String, start: Int64, end: Int64?) {
        self.store = store; self.key = key; self.position = start; self.end = end
        self.whole = start == 0 && end == nil
    }

    func open() throws {
        var query = [("alt", "media")]
        if let generation { query.append(("generation", generation)) }
        var headers: [(String, String)] = []
        if position > 0 || end != nil { headers.append(("Range", "bytes=\(position)-\(end.map(String.init) ?? "")")) }
        let call = GCSStore.GCSCall(method: "GET", path: store.objectPath(key), query: query, headers: headers, what: "GET", key: key)
        let response: HTTPResponse
        let body: ByteStream?
        do {
            (response, body) = try store.sendStreaming(call)
        } catch let error as CNBackupError where error.code == .notFound && generation != nil {
            throw CNBackupError(.integrity, "\(store.displayName)\(key) was replaced while it was read (generation \(generation ?? "") is gone)")
        }
        if end != nil || position > 0, response.status != 206 {
            body?.close()
            throw CNBackupError(.storage, "\(store.displayName)\(key): the server ignored the range asked for (HTTP \(response.status))")
        }
        if generation == nil {
            generation = response.header("x-goog-generation")
            if whole { expectedCRC = GCSStore.crc32c(fromHashHeader: response.header("x-goog-hash")) }
            // Without a generation header a resumed read could not be pinned: learn it now.
            if generation == nil, let info = try store.head(key: key) { generation = info.etag }
        }
        self.body = body
    }

    func next() throws -> [UInt8]? {
        while !finished {
            do {
                if body == nil { try open() }
                if let chunk = try body?.next() {
                    position += Int64(chunk.count)
                    if whole { chunk.withUnsafeBytes { crc.update($0) } }
                    return chunk
                }
                finished = true
                if let end, position != end + 1 {
                    throw CNBackupError(.storage, "\(store.displayName)\(key) ended at byte \(position), before the range's end \(end)")
                }
                if whole, let expectedCRC, expectedCRC != GCSStore.base64CRC(crc.value) {
                    throw CNBackupError(.integrity, "\(store.displayName)\(key) read with CRC-32C \(GCSStore.base64CRC(crc.value)), but GCS stores it with \(expectedCRC): the bytes were damaged on the way")
                }
            } catch let error as HTTPTransportError where error.isRetryable && resumes + 1 < store.settings.retry.maxAttempts {
                body?.close()
                body = nil
                resumes += 1
                Thread.sleep(forTimeInterval: store.settings.retry.delay(after: resumes))
            } catch let error as HTTPTransportError {
                close()
                throw CNBackupError(.storage, "reading \(store.displayName)\(key) failed", cause: error.description)
            }
        }
        return nil
    }

    func close() {
        finished = true
        body?.close()
        body = nil
    }

    deinit { body?.close() }
}

extension GCSStore {
    /// What `check-store` reads of the bucket: versioning, the retention policy and whether it is
    /// locked, object retention, and lifecycle rules that delete.
    public struct BucketProtection: Sendable, Equatable {
        public var versioning: Bool?
        /// e.g. "30 days, locked"; nil when the bucket has none.
        public var retentionPolicy: String?
        public var retentionPolicyLocked: Bool
        /// Object retention (per-object retain-until, what `store.objectLock` sets) is enabled.
        public var objectRetention: Bool
        /// Lifecycle rules that delete objects, described; nil when not readable.
        public var deletingRules: [String]?
        public var readable: Bool
    }

    public func bucketProtection() throws -> BucketProtection {
        let response = try send(GCSCall(method: "GET", path: bucketPath, what: "GET bucket"), accept: [403])
        guard response.status != 403, let bucket = Self.json(response.body) else {
            return BucketProtection(versioning: nil, retentionPolicy: nil, retentionPolicyLocked: false, objectRetention: false,
                                    deletingRules: nil, readable: false)
        }
        let versioning = (bucket["versioning"] as? [String: Any])?["enabled"] as? Bool ?? false
        var policyText: String?
        var locked = false
        if let policy = bucket["retentionPolicy"] as? [String: Any] {
            let seconds = Int(policy["retentionPeriod"] as? String ?? "") ?? (policy["retentionPeriod"] as? Int) ?? 0
            locked = policy["isLocked"] as? Bool ?? false
            policyText = "\(seconds / 86_400) days" + (locked ? ", locked" : ", not locked")
        }
        let objectRetention = (bucket["objectRetention"] as? [String: Any])?["mode"] as? String == "Enabled"
        let rules = ((bucket["lifecycle"] as? [String: Any])?["rule"] as? [[String: Any]] ?? []).compactMap { rule -> String? in
            guard ((rule["action"] as? [String: Any])?["type"] as? String) == "Delete" else { return nil }
            let condition = rule["condition"] as? [String: Any] ?? [:]
            return condition.keys.sorted().map { "\($0)=\(condition[$0].map { "\($0)" } ?? "")" }.joined(separator: " ")
        }
        return BucketProtection(versioning: versioning, retentionPolicy: policyText, retentionPolicyLocked: locked,
                                objectRetention: objectRetention, deletingRules: rules, readable: true)
    }

    /// Which of `permissions` the credentials hold on the bucket (`testIamPermissions`); nil when
    /// the server cannot say (an emulator).
    public func grantedPermissions(_ permissions: [String]) throws -> [String]? {
        let response = try send(GCSCall(method: "GET", path: bucketPath + "/iam/testPermissions",
                                        query: permissions.map { ("permissions", $0) }, what: "TEST permissions on"),
                                accept: [400, 403, 404, 405, 501])
        guard response.status == 200, let answer = Self.json(response.body) else { return nil }
        return answer["permissions"] as? [String] ?? []
    }
}

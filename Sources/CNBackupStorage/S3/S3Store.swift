import Foundation
import CNBackupCore
import CNBackupHTTP

/// One multipart upload in progress, as ListMultipartUploads reports it.
public struct S3MultipartUpload: Sendable, Equatable {
    /// The key relative to the store's prefix.
    public var key: String
    public var uploadId: String
    public var initiated: Date?
}

/// An `ObjectStore` on S3 or a compatible server, over SigV4-signed HTTP(S).
public struct S3Store: ObjectStore {
    public let settings: S3Settings
    let credentials: S3CredentialProvider
    let shared: Shared
    let scheme: String
    let host: String  // host[:port] as sent in the Host header
    let basePath: String

    /// State shared by the copies of one store: the connection pool and the clock correction.
    final class Shared: @unchecked Sendable {
        // @unchecked: `clockOffset` is guarded by `lock`; the client locks itself.
        let client: HTTPClient
        let lock = NSLock()
        var offset: TimeInterval = 0
        init(client: HTTPClient) { self.client = client }
        var clockOffset: TimeInterval {
            get { lock.lock(); defer { lock.unlock() }; return offset }
            set { lock.lock(); offset = newValue; lock.unlock() }
        }
    }

    public init(settings: S3Settings, credentials: S3Credentials) throws {
        try self.init(settings: settings, credentialProvider: S3CredentialProvider(fixed: credentials))
    }

    public init(settings: S3Settings, credentialProvider credentials: S3CredentialProvider) throws {
        guard !settings.bucket.isEmpty, !settings.bucket.contains("/") else {
            throw CNBackupError(.invalidInput, "\"\(settings.bucket)\" is not a bucket name")
        }
        if let size = settings.partSize, size < 1 || size > S3Settings.maxPartSize {
            throw CNBackupError(.invalidInput, "part size \(size) is outside 1 byte…5 GiB")
        }
        let endpoint: String
        switch (settings.endpoint, settings.provider) {
        case (let e?, _): endpoint = e
        case (nil, .aws): endpoint = "https://s3.\(settings.region).amazonaws.com"
        case (nil, .gcs): endpoint = "https://storage.googleapis.com"
        case (nil, let p):
            throw CNBackupError(.invalidInput, "an S3 endpoint is needed for provider \(p.rawValue): give the server's https:// URL")
        }
        guard let components = URLComponents(string: endpoint), let scheme = components.scheme?.lowercased(),
              scheme == "https" || scheme == "http", let hostName = components.host, !hostName.isEmpty else {
            throw CNBackupError(.invalidInput, "S3 endpoint \"\(endpoint)\" is not an http(s)://host[:port] URL")
        }
        self.settings = settings
        self.credentials = credentials
        self.scheme = scheme
        let port = components.port.map { ":\($0)" } ?? ""
        self.host = settings.pathStyle ? hostName + port : "\(settings.bucket).\(hostName)\(port)"
        var base = components.percentEncodedPath
        while base.hasSuffix("/") { base.removeLast() }
        self.basePath = settings.pathStyle ? base + "/" + SigV4Signer.uriEncode(settings.bucket, keepSlash: false) : base
        let parallel = Int64(max(1, settings.parallelParts))
        var options = HTTPClientOptions(caFile: settings.caFile)
        options.maxSendBytesPerSecond = settings.maxSendBytesPerSecond.map { max(1, $0 / parallel) }
        options.maxReceiveBytesPerSecond = settings.maxReceiveBytesPerSecond
        self.shared = Shared(client: HTTPClient(options: options))
    }

    public var displayName: String { "s3://\(settings.bucket)/\(settings.prefix)" }

    // MARK: - ObjectStore

    @discardableResult
    public func put(key: String, from source: ByteStream, options: PutOptions) throws -> ObjectInfo {
        try validateObjectKey(key)
        // Read ahead: an object that ends within `singlePutLimit` goes up in one PUT.
        var head: [UInt8] = []
        var ended = false
        do {
            while head.count < settings.singlePutLimit {
                guard let chunk = try source.next() else { ended = true; break }
                head.append(contentsOf: chunk)
            }
        } catch {
            source.close()
            throw error
        }
        let existingObject: ObjectInfo?
        do { existingObject = options.ifAbsent ? try self.head(key: key) : nil } catch { source.close(); throw error }
        if let existing = existingObject {
            guard options.settleByDigest else {
                source.close()
                throw CNBackupError(.alreadyExists, "\(displayName)\(key) already exists (\(existing.size) bytes); it is never replaced")
            }
            // Already there: upload nothing, just compare. The bytes must be read to be compared.
            let hasher = SHA256Hasher()
            hasher.update(head)
            var size = Int64(head.count)
            if !ended { try source.forEachChunk { hasher.update($0); size += Int64($0.count) } }
            return try settleConflict(key: key, existing: existing, size: size, digest: hasher.finalize())
        }
        if ended { return try putSingle(key: key, bytes: head, options: options) }
        return try putMultipart(key: key, head: consume head, rest: source, options: options)
    }

    public func get(key: String, range: ClosedRange<Int64>?) throws -> ByteStream {
        try validateObjectKey(key)
        let stream = S3ObjectStream(store: self, key: key, start: range?.lowerBound ?? 0, end: range?.upperBound)
        try stream.open()
        return stream
    }

    public func head(key: String) throws -> ObjectInfo? {
        try validateObjectKey(key)
        let response = try send(S3Call(method: "HEAD", key: key, what: "HEAD"), accept: [404])
        if response.status == 404 { return nil }
        return ObjectInfo(key: key, size: Int64(response.header("content-length") ?? "") ?? 0,
                          lastModified: response.header("last-modified").flatMap(Self.parseHTTPDate) ?? Date(),
                          etag: response.header("etag"),
                          retainUntil: response.header("x-amz-object-lock-retain-until-date").flatMap(Self.parseISODate))
    }

    public func list(prefix: String) throws -> [ObjectInfo] {
        var result: [ObjectInfo] = []
        var token: String?
        repeat {
            var query = [("list-type", "2"), ("prefix", settings.prefix + prefix)]
            if let token { query.append(("continuation-token", token)) }
            let root = try sendXML(S3Call(method: "GET", key: nil, query: query, what: "LIST \(prefix)"))
            for item in root.all("Contents") {
                guard let fullKey = item.value("Key"), fullKey.hasPrefix(settings.prefix) else { continue }
                result.append(ObjectInfo(key: String(fullKey.dropFirst(settings.prefix.count)),
                                         size: Int64(item.value("Size") ?? "") ?? 0,
                                         lastModified: item.value("LastModified").flatMap(Self.parseISODate) ?? Date(),
                                         etag: item.value("ETag")))
            }
            let next = root.value("IsTruncated") == "true" ? root.value("NextContinuationToken") : nil
            // A server (or something in front of it) that hands back the token it was given would
            // keep a listing going for ever: that is an error, not a loop.
            if let next, next == token || next.isEmpty {
                throw CNBackupError(.storage, "LIST \(displayName)\(prefix): the server's continuation token does not advance; the listing cannot be completed")
            }
            token = next
        } while token != nil
        // S3 sorts by UTF-8 bytes already; sort anyway, the contract does not depend on the server.
        return result.sorted { Array($0.key.utf8).lexicographicallyPrecedes(Array($1.key.utf8)) }
    }

    public func delete(keys: [String]) throws {
        for key in keys { try validateObjectKey(key) }
        guard settings.provider.supportsBatchDelete else {
            for key in keys { _ = try send(S3Call(method: "DELETE", key: key, what: "DELETE"), accept: [404]) }
            return
        }
        var start = 0
        while start < keys.count {
            let batch = keys[start..<min(keys.count, start + 1000)]
            start += batch.count
            let xml = "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Quiet>true</Quiet>"
                + batch.map { "<Object><Key>\(S3XMLElement.escape(settings.prefix + $0))</Key></Object>" }.joined()
                + "</Delete>"
            let body = Array(xml.utf8)
            let root = try sendXML(S3Call(method: "POST", key: nil, query: [("delete", "")],
                                          headers: [("Content-Type", "application/xml")], body: body,
                                          what: "DELETE \(batch.count) objects"))
            // Missing keys are not errors (S3 reports them as deleted); anything else is.
            let failures = root.all("Error").filter { $0.value("Code") != "NoSuchKey" }
            if let first = failures.first {
                let key = (first.value("Key") ?? "").dropFirst(settings.prefix.count)
                throw CNBackupError(.storage, "deleting \(failures.count) object(s) from \(displayName) failed, first \(key)",
                                    cause: "\(first.value("Code") ?? "?"): \(first.value("Message") ?? "")")
            }
        }
    }

    public func tags(key: String) throws -> [String: String] {
        try validateObjectKey(key)
        guard settings.provider.supportsTagging else {
            // Confirm the object exists so a missing key is still .notFound.
            if try head(key: key) == nil { throw notFound(key) }
            return [:]
        }
        let root = try sendXML(S3Call(method: "GET", key: key, query: [("tagging", "")], what: "GET tags of"))
        var tags: [String: String] = [:]
        for tag in root.child("TagSet")?.all("Tag") ?? [] {
            if let k = tag.value("Key") { tags[k] = tag.value("Value") ?? "" }
        }
        return tags
    }

    // MARK: - Multipart housekeeping

    /// Unfinished multipart uploads under the store's prefix (for a cleanup command).
    public func listMultipartUploads() throws -> [S3MultipartUpload] {
        var result: [S3MultipartUpload] = []
        var keyMarker: String?, idMarker: String?
        repeat {
            var query = [("uploads", ""), ("prefix", settings.prefix)]
            if let keyMarker { query.append(("key-marker", keyMarker)) }
            if let idMarker { query.append(("upload-id-marker", idMarker)) }
            let root = try sendXML(S3Call(method: "GET", key: nil, query: query, what: "LIST uploads"))
            for upload in root.all("Upload") {
                guard let key = upload.value("Key"), key.hasPrefix(settings.prefix), let id = upload.value("UploadId") else { continue }
                result.append(S3MultipartUpload(key: String(key.dropFirst(settings.prefix.count)), uploadId: id,
                                                initiated: upload.value("Initiated").flatMap(Self.parseISODate)))
            }
            let truncated = root.value("IsTruncated") == "true"
            let (nextKey, nextId) = truncated ? (root.value("NextKeyMarker"), root.value("NextUploadIdMarker")) : (nil, nil)
            if truncated, nextKey == nil || (nextKey == keyMarker && nextId == idMarker) {
                throw CNBackupError(.storage, "LIST uploads \(displayName): the server's markers do not advance; the listing cannot be completed")
            }
            keyMarker = nextKey
            idMarker = nextId
        } while keyMarker != nil
        return result
    }

    /// Abandons an unfinished multipart upload; one already gone is not an error.
    public func abortMultipartUpload(key: String, uploadId: String) throws {
        _ = try send(S3Call(method: "DELETE", key: key, query: [("uploadId", uploadId)], what: "ABORT upload of"),
                     accept: [404])
    }

    /// Creates the store's bucket (for tests and first-time set-up); one we already own is fine.
    public func createBucket() throws {
        var body: [UInt8]?
        if settings.provider == .aws && settings.region != "us-east-1" {
            body = Array(("<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                          + "<LocationConstraint>\(settings.region)</LocationConstraint></CreateBucketConfiguration>").utf8)
        }
        let response = try send(S3Call(method: "PUT", key: nil, body: body ?? [], what: "CREATE bucket"), accept: [409])
        if response.status == 409, Self.parseError(response.body)?.code != "BucketAlreadyOwnedByYou" {
            throw CNBackupError(.alreadyExists, "bucket \(settings.bucket) exists and belongs to someone else")
        }
    }
}

extension S3Store: MultipartUploadCleaning {
    public func staleMultipartUploads(olderThan cutoff: Date) throws -> [StaleUpload] {
        try listMultipartUploads()
            .filter { ($0.initiated ?? .distantPast) < cutoff }
            .map { StaleUpload(key: $0.key, uploadId: $0.uploadId, initiated: $0.initiated) }
    }

    public func abort(_ upload: StaleUpload) throws {
        try abortMultipartUpload(key: upload.key, uploadId: upload.uploadId)
    }
}

extension S3Store {
    /// The bucket's versioning status (`Enabled`, `Suspended`, or nil when never set) and its
    /// Object Lock configuration (nil when off), for `cnbackup check-store`.
    public func bucketProtection() throws -> (versioning: String?, objectLock: String?) {
        let versioning = try send(S3Call(method: "GET", key: nil, query: [("versioning", "")], what: "GET versioning of"), accept: [403])
        let versioningStatus = versioning.status == 403 ? "unknown (access denied)"
            : S3XMLElement.parse(versioning.body)?.value("Status")
        let lock = try send(S3Call(method: "GET", key: nil, query: [("object-lock", "")], what: "GET object lock of"), accept: [403, 404])
        var lockText: String?
        switch lock.status {
        case 404: lockText = nil
        case 403: lockText = "unknown (access denied)"
        default:
            if let root = S3XMLElement.parse(lock.body), root.value("ObjectLockEnabled") == "Enabled" {
                let retention = root.child("Rule")?.child("DefaultRetention")
                lockText = "Enabled" + (retention.map { " (default \($0.value("Mode") ?? "?") for \($0.value("Days") ?? $0.value("Years").map { $0 + " years" } ?? "?") days)" } ?? "")
            }
        }
        return (versioningStatus, lockText)
    }

    /// One lifecycle rule of the bucket, as far as `check-store` judges it.
    public struct LifecycleRule: Sendable, Equatable {
        public var id: String
        public var enabled: Bool
        /// The prefix it applies to ("" for the whole bucket).
        public var prefix: String
        /// Tags it selects objects by (`key=value`).
        public var tags: [String]
        /// It expires or deletes objects (rather than only moving them to another class).
        public var expires: Bool

        public init(id: String, enabled: Bool, prefix: String, tags: [String], expires: Bool) {
            self.id = id; self.enabled = enabled; self.prefix = prefix; self.tags = tags; self.expires = expires
        }
    }

    /// The bucket's lifecycle rules (empty when it has none); nil when the credentials may not read them.
    public func lifecycleRules() throws -> [LifecycleRule]? {
        // 404: no rules. 403: not readable with these credentials. 400, 405, 501: a store without
        // the API (some S3-compatible servers), which can then not be judged either.
        let answer = try send(S3Call(method: "GET", key: nil, query: [("lifecycle", "")], what: "GET lifecycle of"), accept: [400, 403, 404, 405, 501])
        switch answer.status {
        case 404: return []
        case 400, 403, 405, 501: return nil
        default:
            guard let root = S3XMLElement.parse(answer.body) else { return [] }
            return root.all("Rule").map { rule in
                let filter = rule.child("Filter")
                let and = filter?.child("And")
                let tagElements = (filter?.all("Tag") ?? []) + (and?.all("Tag") ?? [])
                return LifecycleRule(id: rule.value("ID") ?? "", enabled: rule.value("Status") == "Enabled",
                                     prefix: rule.value("Prefix") ?? filter?.value("Prefix") ?? and?.value("Prefix") ?? "",
                                     tags: tagElements.map { "\($0.value("Key") ?? "")=\($0.value("Value") ?? "")" },
                                     expires: rule.child("Expiration") != nil || rule.child("NoncurrentVersionExpiration") != nil)
            }
        }
    }
}

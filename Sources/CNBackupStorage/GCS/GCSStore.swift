import Foundation
import CNBackupCore
import CNBackupHTTP

/// An `ObjectStore` on Google Cloud Storage through its JSON API, over the libcurl client, with
/// Google's application-default credentials (`GoogleCredentialProvider`): a keyless identity on
/// GKE (Workload Identity) or through workload identity federation elsewhere.
///
/// - Objects that end within one chunk go up in one `uploadType=multipart` request; larger ones
///   in a resumable upload (GCSResumableUpload.swift), sequential by design, one chunk retained.
/// - "Only if absent" is `ifGenerationMatch=0`. The CRC-32C GCS keeps of each object is sent with
///   the upload (GCS refuses a body that does not match) and checked on every whole read; a read
///   that resumes pins the object's `generation`, so it cannot mix two objects.
/// - Tags are object metadata (`metadata`), which lifecycle rules cannot select on, unlike S3's.
/// - Resumable sessions cannot be listed and expire on their own (a week), holding no object:
///   `cleanup` and `recover` say so instead of listing them.
public struct GCSStore: ObjectStore {
    public let settings: GCSSettings
    let credentials: GoogleCredentialProvider
    let client: HTTPClient
    /// `scheme://host[:port]` of the endpoint, which session URIs must share: the bearer token
    /// goes with every request, so never to a host the server's answer names.
    let origin: String
    let basePath: String

    public init(settings: GCSSettings, credentials: GoogleCredentialProvider) throws {
        let bucket = settings.bucket
        guard (3...222).contains(bucket.count),
              bucket.unicodeScalars.allSatisfy({ ("a"..."z").contains($0) || ("0"..."9").contains($0) || "-_.".unicodeScalars.contains($0) }) else {
            throw CNBackupError(.invalidInput, "\"\(bucket)\" is not a GCS bucket name (3-222 lower-case letters, digits, -, _ and .)")
        }
        guard settings.chunkSize >= GCSSettings.chunkQuantum, settings.chunkSize % GCSSettings.chunkQuantum == 0 else {
            throw CNBackupError(.invalidInput, "the GCS chunk size \(settings.chunkSize) is not a multiple of 256 KiB")
        }
        try SecureURL.require(settings.endpoint, what: "the GCS endpoint")
        guard let components = URLComponents(string: settings.endpoint), let scheme = components.scheme?.lowercased(),
              let host = components.host else {
            throw CNBackupError(.invalidInput, "GCS endpoint \"\(settings.endpoint)\" is not an http(s)://host[:port] URL")
        }
        self.settings = settings
        self.credentials = credentials
        self.origin = "\(scheme)://\(host)\(components.port.map { ":\($0)" } ?? "")"
        var path = components.percentEncodedPath
        while path.hasSuffix("/") { path.removeLast() }
        self.basePath = path
        var options = HTTPClientOptions(caFile: settings.caFile)
        options.maxSendBytesPerSecond = settings.maxSendBytesPerSecond
        options.maxReceiveBytesPerSecond = settings.maxReceiveBytesPerSecond
        self.client = HTTPClient(options: options)
    }

    public var displayName: String { "gs://\(settings.bucket)/\(settings.prefix)" }

    /// Which credentials the store uses, for `check-store` (never a secret).
    public var credentialsDescription: String { credentials.description }

    // MARK: - ObjectStore

    @discardableResult
    public func put(key: String, from source: ByteStream, options: PutOptions) throws -> ObjectInfo {
        try validateObjectKey(key)
        // Read ahead: an object that ends within one chunk goes up in one request.
        var head: [UInt8] = []
        var ended = false
        do {
            while head.count < settings.chunkSize {
                guard let chunk = try source.next() else { ended = true; break }
                head.append(contentsOf: chunk)
            }
        } catch {
            source.close()
            throw error
        }
        if ended { return try putSingle(key: key, bytes: head, options: options) }
        return try putResumable(key: key, head: head, rest: source, options: options)
    }

    public func get(key: String, range: ClosedRange<Int64>?) throws -> ByteStream {
        try validateObjectKey(key)
        let stream = GCSObjectStream(store: self, key: key, start: range?.lowerBound ?? 0, end: range?.upperBound)
        try stream.open()
        return stream
    }

    public func head(key: String) throws -> ObjectInfo? {
        try validateObjectKey(key)
        let response = try send(GCSCall(method: "GET", path: objectPath(key), what: "GET metadata of", key: key), accept: [404])
        if response.status == 404 { return nil }
        guard let object = Self.json(response.body) else {
            throw CNBackupError(.storage, "GCS gave metadata for \(displayName)\(key) that is not JSON")
        }
        return objectInfo(object, key: key)
    }

    public func list(prefix: String) throws -> [ObjectInfo] {
        var result: [ObjectInfo] = []
        var token: String?
        repeat {
            var query = [("prefix", settings.prefix + prefix), ("maxResults", "1000")]
            if let token { query.append(("pageToken", token)) }
            let response = try send(GCSCall(method: "GET", path: bucketPath + "/o", query: query, what: "LIST \(prefix)"))
            guard let page = Self.json(response.body) else {
                throw CNBackupError(.storage, "GCS LIST \(displayName)\(prefix) gave an answer that is not JSON")
            }
            for item in page["items"] as? [[String: Any]] ?? [] {
                guard let name = item["name"] as? String, name.hasPrefix(settings.prefix) else { continue }
                if let info = objectInfo(item, key: String(name.dropFirst(settings.prefix.count))) { result.append(info) }
            }
            let next = page["nextPageToken"] as? String
            // A token handed back unchanged would keep a listing going for ever: an error, not a loop.
            if let next, next == token || next.isEmpty {
                throw CNBackupError(.storage, "LIST \(displayName)\(prefix): the server's page token does not advance; the listing cannot be completed")
            }
            token = next
        } while token != nil
        return result.sorted { Array($0.key.utf8).lexicographicallyPrecedes(Array($1.key.utf8)) }
    }

    public func delete(keys: [String]) throws {
        for key in keys { try validateObjectKey(key) }
        for key in keys {
            _ = try send(GCSCall(method: "DELETE", path: objectPath(key), what: "DELETE", key: key), accept: [404])
        }
    }

    public func tags(key: String) throws -> [String: String] {
        try validateObjectKey(key)
        let response = try send(GCSCall(method: "GET", path: objectPath(key), what: "GET metadata of", key: key))
        let metadata = Self.json(response.body)?["metadata"] as? [String: Any] ?? [:]
        return metadata.compactMapValues { $0 as? String }
    }

    // MARK: - Objects

    var bucketPath: String { basePath + "/storage/v1/b/" + Self.encode(settings.bucket) }
    var uploadPath: String { basePath + "/upload/storage/v1/b/" + Self.encode(settings.bucket) + "/o" }
    func objectPath(_ key: String) -> String { bucketPath + "/o/" + Self.encode(settings.prefix + key) }

    /// An object resource's size, time, generation and how long it is retained: the later of its
    /// own retention and the bucket's retention policy.
    func objectInfo(_ object: [String: Any], key: String) -> ObjectInfo? {
        let size = Int64(object["size"] as? String ?? "") ?? (object["size"] as? Int64) ?? 0
        let updated = (object["updated"] as? String).flatMap(Timestamp.parse) ?? Date()
        let retention = ((object["retention"] as? [String: Any])?["retainUntilTime"] as? String).flatMap(Timestamp.parse)
        let policy = (object["retentionExpirationTime"] as? String).flatMap(Timestamp.parse)
        let retainUntil = [retention, policy].compactMap { $0 }.max()
        return ObjectInfo(key: key, size: size, lastModified: updated, etag: Self.generation(object), retainUntil: retainUntil)
    }

    static func generation(_ object: [String: Any]) -> String? {
        (object["generation"] as? String) ?? (object["generation"] as? Int64).map(String.init) ?? (object["generation"] as? Int).map(String.init)
    }

    /// The object resource sent when an object is created: its name, labels, the CRC-32C GCS must
    /// find, and retention and storage class when configured.
    func objectResource(key: String, tags: [String: String], crc32c: UInt32?, retentionDays: Int? = nil, now: Date = Date()) throws -> [UInt8] {
        var resource: [String: Any] = ["name": settings.prefix + key]
        if !tags.isEmpty { resource["metadata"] = tags }
        if let crc32c { resource["crc32c"] = Self.base64CRC(crc32c) }
        if var lock = settings.objectLock {
            if let days = retentionDays { lock.days = max(lock.days, days) }
            resource["retention"] = ["mode": lock.mode == .compliance ? "Locked" : "Unlocked",
                                     "retainUntilTime": Timestamp.format(now.addingTimeInterval(TimeInterval(lock.days) * 86_400))]
        }
        if let storageClass = settings.storageClass { resource["storageClass"] = storageClass }
        return Array(try JSONSerialization.data(withJSONObject: resource, options: [.sortedKeys]))
    }

    /// GCS writes CRC-32C as the base64 of its four big-endian bytes.
    package static func base64CRC(_ value: UInt32) -> String {
        Data([UInt8(value >> 24), UInt8((value >> 16) & 0xFF), UInt8((value >> 8) & 0xFF), UInt8(value & 0xFF)]).base64EncodedString()
    }

    /// The `crc32c=` value of an `x-goog-hash` header (which may also carry `md5=`).
    package static func crc32c(fromHashHeader header: String?) -> String? {
        guard let header else { return nil }
        for part in header.split(separator: ",") {
            let item = part.trimmingCharacters(in: .whitespaces)
            if item.hasPrefix("crc32c=") { return String(item.dropFirst(7)) }
        }
        return nil
    }

    /// Percent-encodes a path segment or query value: everything but RFC 3986's unreserved
    /// characters, so `/` in an object name is `%2F`, as the JSON API wants it.
    static func encode(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(UnicodeScalar(byte))
            default:
                out += String(format: "%%%02X", byte)
            }
        }
        return out
    }

    static func json(_ body: [UInt8]) -> [String: Any]? {
        (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any]
    }
}

extension GCSStore: UnlistedUploadSessions {
    public var uploadSessionsNote: String {
        "GCS resumable upload sessions cannot be listed: an interrupted one holds no object and expires by itself within a week"
    }
}

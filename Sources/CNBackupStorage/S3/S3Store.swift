import Foundation
import CNBackupCore
import CNBackupHTTP

/// Which S3 implementation is on the other end; each differs a little from AWS.
public enum S3Provider: String, Sendable, CaseIterable {
    case aws, gcs, r2, minio, seaweedfs, ceph

    /// GCS's XML API and R2 have no object tagging.
    package var supportsTagging: Bool { self != .gcs && self != .r2 }
    /// GCS's XML API has no DeleteObjects.
    package var supportsBatchDelete: Bool { self != .gcs }
    /// Self-hosted servers are addressed by path (`host/bucket/key`), clouds by virtual host.
    package var defaultPathStyle: Bool { [.minio, .seaweedfs, .ceph].contains(self) }
    /// Servers that check `x-amz-checksum-sha256` on PUT and UploadPart (SeaweedFS was tried: a
    /// wrong one is refused with BadDigest). That checksum is the SHA-256 SigV4 computes of the
    /// body anyway, so it costs nothing, where Content-MD5 costs an MD5 pass over every byte
    /// (a quarter of an S3 run's CPU). The others get Content-MD5, which every S3 API checks.
    /// (A signed payload hash alone is no check: SeaweedFS accepts a body that does not match it.)
    package var checksSHA256: Bool { [.aws, .minio, .seaweedfs].contains(self) }
}

public struct S3Settings: Sendable {
    public var bucket: String
    /// Prepended to every key; empty or ending in `/`.
    public var prefix: String
    /// `https://host[:port]`; nil means the provider's public endpoint (AWS, GCS).
    public var endpoint: String?
    public var region: String
    public var pathStyle: Bool
    /// A PEM bundle of certificate authorities to trust instead of the system's.
    public var caFile: String?
    public var provider: S3Provider
    /// A fixed multipart part size in bytes; nil chooses from the size hint (see `partSize(for:)`).
    public var partSize: Int?
    /// The smallest part size chosen automatically (S3's own minimum is 5 MiB).
    public var minimumPartSize: Int = 6 << 20
    /// Objects whose bytes end within this many are sent with one PUT; larger ones go multipart.
    public var singlePutLimit: Int = 16 << 20
    /// Parts uploaded at once; memory use is about (parallelParts + 1) × part size. Three keep a
    /// 2 GiB upload with two zstd workers under 128 MiB of RSS (BENCHMARKS.md); raise it (and
    /// memory) for a distant store where each part waits on latency.
    public var parallelParts: Int = 3
    public var maxAttempts: Int = 5
    /// The first retry waits up to this long (full jitter), doubling each attempt up to 20 s.
    public var retryBaseDelay: Double = 0.2
    /// Upload and download limits in bytes per second for the whole store.
    public var maxSendBytesPerSecond: Int64?
    public var maxReceiveBytesPerSecond: Int64?
    /// Server-side encryption: `AES256` or `aws:kms` (with `kmsKeyId`); nil leaves the bucket's default.
    public var serverSideEncryption: String?
    public var kmsKeyId: String?
    /// e.g. `STANDARD_IA`, `GLACIER_IR`; nil leaves the bucket's default.
    public var storageClass: String?

    public init(bucket: String, prefix: String = "", endpoint: String? = nil, region: String = "us-east-1",
                pathStyle: Bool? = nil, caFile: String? = nil, provider: S3Provider = .aws) {
        self.bucket = bucket
        let trimmed = prefix.split(separator: "/").joined(separator: "/")
        self.prefix = trimmed.isEmpty ? "" : trimmed + "/"
        self.endpoint = endpoint
        self.region = region
        self.pathStyle = pathStyle ?? provider.defaultPathStyle
        self.caFile = caFile
        self.provider = provider
    }

    package static let maxParts = 10_000
    package static let maxPartSize = 5 << 30

    /// The size of part `number` (from 1). With a size hint the base size fits the hint in 10,000
    /// parts; without one it is `minimumPartSize`. Either way it doubles every 1,000 parts, so even
    /// a stream far larger than its hint fits (6 MiB base: about 6 TB in 10,000 parts).
    package func partSize(for number: Int, sizeHint: Int64?) -> Int {
        if let partSize { return partSize }
        var base = Int64(minimumPartSize)
        if let hint = sizeHint, hint > 0 {
            let needed = (hint + Int64(Self.maxParts) - 1) / Int64(Self.maxParts)
            let mib = Int64(1 << 20)
            base = max(base, (needed + mib - 1) / mib * mib)
        }
        let doubled = base << Int64(min(20, (number - 1) / 1000))
        return Int(min(doubled, Int64(Self.maxPartSize)))
    }
}

extension S3Credentials {
    /// AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, else the shared credentials
    /// file (AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials), profile AWS_PROFILE or `default`.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> S3Credentials {
        if let id = environment["AWS_ACCESS_KEY_ID"], !id.isEmpty,
           let secret = environment["AWS_SECRET_ACCESS_KEY"], !secret.isEmpty {
            let token = environment["AWS_SESSION_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
            return S3Credentials(accessKeyId: id, secretAccessKey: secret, sessionToken: token)
        }
        let home = environment["HOME"] ?? NSHomeDirectory()
        let path = environment["AWS_SHARED_CREDENTIALS_FILE"] ?? home + "/.aws/credentials"
        let profile = environment["AWS_PROFILE"] ?? "default"
        if let text = try? String(contentsOfFile: path, encoding: .utf8) {
            var section = ""
            var values: [String: String] = [:]
            for raw in text.split(whereSeparator: \.isNewline) {
                let line = raw.trimmingCharacters(in: .whitespaces)
                if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
                if line.hasPrefix("[") && line.hasSuffix("]") {
                    section = line.dropFirst().dropLast().trimmingCharacters(in: .whitespaces)
                    continue
                }
                guard section == profile, let eq = line.firstIndex(of: "=") else { continue }
                values[line[..<eq].trimmingCharacters(in: .whitespaces).lowercased()] =
                    line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces)
            }
            if let id = values["aws_access_key_id"], let secret = values["aws_secret_access_key"] {
                return S3Credentials(accessKeyId: id, secretAccessKey: secret, sessionToken: values["aws_session_token"])
            }
        }
        throw CNBackupError(.invalidInput, "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                            + "or add profile \"\(profile)\" to \(path)")
    }
}

/// Opens an S3 store from `s3://BUCKET/PREFIX`. Credentials default to `S3Credentials.fromEnvironment()`,
/// the region to AWS_REGION / AWS_DEFAULT_REGION (else us-east-1, or `auto` for GCS and R2).
public func openS3Store(url: String, endpoint: String? = nil, region: String? = nil, pathStyle: Bool? = nil,
                        caFile: String? = nil, provider: S3Provider = .aws,
                        credentials: S3Credentials? = nil, serverSideEncryption: String? = nil,
                        kmsKeyId: String? = nil, storageClass: String? = nil,
                        configure: (inout S3Settings) -> Void = { _ in }) throws -> S3Store {
    guard url.hasPrefix("s3://") else {
        throw CNBackupError(.invalidInput, "\"\(url)\" is not an S3 URL: write s3://BUCKET/PREFIX")
    }
    let rest = url.dropFirst(5)
    let bucket = String(rest.prefix(while: { $0 != "/" }))
    let prefix = String(rest.dropFirst(bucket.count))
    guard !bucket.isEmpty else { throw CNBackupError(.invalidInput, "\"\(url)\" names no bucket: write s3://BUCKET/PREFIX") }
    let env = ProcessInfo.processInfo.environment
    let region = region ?? env["AWS_REGION"] ?? env["AWS_DEFAULT_REGION"] ?? ([.gcs, .r2].contains(provider) ? "auto" : "us-east-1")
    var settings = S3Settings(bucket: bucket, prefix: prefix, endpoint: endpoint, region: region,
                              pathStyle: pathStyle, caFile: caFile, provider: provider)
    if let sse = serverSideEncryption, !["AES256", "aws:kms"].contains(sse) {
        throw CNBackupError(.invalidInput, "sse \"\(sse)\" is unknown: use AES256 or aws:kms")
    }
    settings.serverSideEncryption = serverSideEncryption
    settings.kmsKeyId = kmsKeyId
    settings.storageClass = storageClass
    let provider = try credentials.map { S3CredentialProvider(fixed: $0) }
        ?? S3CredentialProvider.fromEnvironment(region: region, caFile: caFile)
    return try S3Store(settings: settings, credentialProvider: provider)
}

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
    private let credentials: S3CredentialProvider
    private let shared: Shared
    private let scheme: String
    private let host: String  // host[:port] as sent in the Host header
    private let basePath: String

    /// State shared by the copies of one store: the connection pool and the clock correction.
    private final class Shared: @unchecked Sendable {
        // @unchecked: `clockOffset` is guarded by `lock`; the client locks itself.
        let client: HTTPClient
        private let lock = NSLock()
        private var offset: TimeInterval = 0
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
                          etag: response.header("etag"))
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
            token = root.value("IsTruncated") == "true" ? root.value("NextContinuationToken") : nil
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
                + batch.map { "<Object><Key>\(XMLElement.escape(settings.prefix + $0))</Key></Object>" }.joined()
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
            keyMarker = truncated ? root.value("NextKeyMarker") : nil
            idMarker = truncated ? root.value("NextUploadIdMarker") : nil
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

    // MARK: - Put

    private func putSingle(key: String, bytes: [UInt8], options: PutOptions) throws -> ObjectInfo {
        let integrity = try integrityHeader(for: bytes)
        var headers = [integrity.header]
        headers += labelHeaders(options.tags) + objectSettingHeaders
        if options.ifAbsent { headers.append(("If-None-Match", "*")) }
        let response = try send(S3Call(method: "PUT", key: key, headers: headers, body: bytes, what: "PUT",
                                       bodySHA256: integrity.sha256), accept: [412])
        if response.status == 412 {
            guard let existing = try head(key: key) else { throw conflictVanished(key) }
            return try settleConflict(key: key, existing: existing, size: Int64(bytes.count), digest: SHA256Hasher.hash(bytes))
        }
        return ObjectInfo(key: key, size: Int64(bytes.count), lastModified: Date(), etag: response.header("etag"))
    }

    /// Room beyond a part for the chunk that crosses its end.
    private static let chunkAllowance = (1 << 20) + 4096

    private func putMultipart(key: String, head: consuming [UInt8], rest source: ByteStream, options: PutOptions) throws -> ObjectInfo {
        var createHeaders: [(String, String)] = []
        // Parts then carry x-amz-checksum-sha256 and the completion lists each part's.
        if settings.provider.checksSHA256 { createHeaders.append(("x-amz-checksum-algorithm", "SHA256")) }
        createHeaders += labelHeaders(options.tags) + objectSettingHeaders
        let created = try sendXML(S3Call(method: "POST", key: key, query: [("uploads", "")], headers: createHeaders,
                                         what: "CREATE upload of"))
        guard let uploadId = created.value("UploadId"), !uploadId.isEmpty else {
            source.close()
            throw CNBackupError(.storage, "S3 gave no upload id for \(displayName)\(key)")
        }
        let state = UploadState()
        let slots = DispatchSemaphore(value: max(1, settings.parallelParts))
        let group = DispatchGroup()
        let wholeHash = options.ifAbsent ? SHA256Hasher() : nil
        var total: Int64 = 0
        var partNumber = 0

        // Hands one part to a worker; blocks while `parallelParts` are in flight, so memory stays
        // at about (parallelParts + 1) parts however long the stream.
        func submit(_ part: [UInt8]) throws {
            partNumber += 1
            guard partNumber <= S3Settings.maxParts else {
                throw CNBackupError(.storage, "\(displayName)\(key) needs more than 10,000 parts: give a size hint or a larger part size")
            }
            slots.wait()
            if let error = state.error { slots.signal(); throw error }
            group.enter()
            let number = partNumber
            DispatchQueue.global().async {
                defer { slots.signal(); group.leave() }
                do {
                    state.record(try self.uploadPart(key: key, uploadId: uploadId, number: number, bytes: part))
                } catch {
                    state.fail(error)
                }
            }
        }

        do {
            // Take the read-ahead over rather than copy it: held twice, it would cost 16 MiB more.
            var buffer = consume head
            wholeHash?.update(buffer)
            total = Int64(buffer.count)
            var ended = false
            while true {
                let size = settings.partSize(for: partNumber + 1, sizeHint: options.sizeHint)
                if buffer.count >= size {
                    // Hand the buffer itself over and keep only the overshoot (under one chunk):
                    // copying out a whole part would hold it twice. The next part's buffer is
                    // reserved whole, so appending never grows it by doubling (which copies it
                    // and, for a moment, holds it one and a half times).
                    var rest: [UInt8] = []
                    rest.reserveCapacity(settings.partSize(for: partNumber + 2, sizeHint: options.sizeHint) + Self.chunkAllowance)
                    rest.append(contentsOf: buffer[size...])
                    buffer.removeSubrange(size...)
                    try submit(buffer)
                    buffer = rest
                    continue
                }
                if ended { break }
                if let error = state.error { throw error }
                if let chunk = try source.next() {
                    wholeHash?.update(chunk)
                    total += Int64(chunk.count)
                    buffer.append(contentsOf: chunk)
                } else {
                    ended = true
                }
            }
            if !buffer.isEmpty || partNumber == 0 { try submit(buffer) }
            group.wait()
            if let error = state.error { throw error }
            let info = try completeMultipart(key: key, uploadId: uploadId, parts: state.parts, total: total,
                                             digest: wholeHash?.finalize(), options: options)
            abortStrayUploads(key: key)
            return info
        } catch {
            // Let parts in flight finish first, so none lands after the abort.
            group.wait()
            source.close()
            try? abortMultipartUpload(key: key, uploadId: uploadId)
            abortStrayUploads(key: key)
            throw error
        }
    }

    /// A CreateMultipartUpload whose answer was lost and then retried leaves an upload whose id we
    /// never learnt. Keys are unique to one set and one writer, so any upload still open under
    /// this key once ours is settled is such a stray: abort it rather than leave its parts billed.
    private func abortStrayUploads(key: String) {
        guard let open = try? listMultipartUploads() else { return }
        for upload in open where upload.key == key {
            try? abortMultipartUpload(key: key, uploadId: upload.uploadId)
        }
    }

    private func uploadPart(key: String, uploadId: String, number: Int, bytes: [UInt8]) throws -> UploadedPart {
        let integrity = try integrityHeader(for: bytes)
        let response = try send(S3Call(method: "PUT", key: key, query: [("partNumber", String(number)), ("uploadId", uploadId)],
                                       headers: [integrity.header], body: bytes, what: "PUT part \(number) of",
                                       bodySHA256: integrity.sha256))
        guard let etag = response.header("etag") else {
            throw CNBackupError(.storage, "S3 gave no ETag for part \(number) of \(displayName)\(key)")
        }
        return UploadedPart(number: number, etag: etag, checksumSHA256: integrity.sha256.map { Data($0).base64EncodedString() })
    }

    /// Completes the upload. Its answer can be lost, or be a 200 carrying an error: then a HEAD
    /// settles whether the object is there with the size sent.
    private func completeMultipart(key: String, uploadId: String, parts: [UploadedPart], total: Int64,
                                   digest: [UInt8]?, options: PutOptions) throws -> ObjectInfo {
        let xml = "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
            + parts.map { part in
                "<Part><PartNumber>\(part.number)</PartNumber><ETag>\(XMLElement.escape(part.etag))</ETag>"
                    + (part.checksumSHA256.map { "<ChecksumSHA256>\($0)</ChecksumSHA256>" } ?? "") + "</Part>"
            }.joined()
            + "</CompleteMultipartUpload>"
        var headers = [("Content-Type", "application/xml")]
        // AWS and MinIO check If-None-Match here; others rely on the HEAD made before uploading.
        if options.ifAbsent && [.aws, .minio].contains(settings.provider) { headers.append(("If-None-Match", "*")) }
        let call = S3Call(method: "POST", key: key, query: [("uploadId", uploadId)], headers: headers,
                          body: Array(xml.utf8), what: "COMPLETE upload of")
        var failure: Error
        do {
            let response = try send(call, accept: [404, 412])
            if response.status == 412, let digest {
                try? abortMultipartUpload(key: key, uploadId: uploadId)
                guard let existing = try head(key: key) else { throw conflictVanished(key) }
                return try settleConflict(key: key, existing: existing, size: total, digest: digest)
            }
            let root = XMLElement.parse(response.body)
            if response.status == 200, root?.name == "CompleteMultipartUploadResult" {
                return ObjectInfo(key: key, size: total, lastModified: Date(), etag: root?.value("ETag"))
            }
            // 404 NoSuchUpload after a retry: the first attempt may have completed it.
            failure = error(for: response, call: call)
        } catch {
            failure = error
        }
        if let info = try? head(key: key), info.size == total, etagMatches(info.etag, parts: parts) {
            return info
        }
        throw failure
    }

    /// Whether a multipart object's ETag is the one these parts make: MD5 of the parts' binary MD5s,
    /// then `-N`. Where ETags are not MD5s (SSE-KMS, some providers) the size check stands alone.
    private func etagMatches(_ etag: String?, parts: [UploadedPart]) -> Bool {
        let trimmed = { (s: String) in s.trimmingCharacters(in: CharacterSet(charactersIn: "\"")) }
        guard settings.serverSideEncryption != "aws:kms", let etag = etag.map(trimmed) else { return true }
        let partDigests = parts.compactMap { [UInt8](hex: trimmed($0.etag)) }
        guard partDigests.count == parts.count, partDigests.allSatisfy({ $0.count == 16 }),
              let expected = try? md5(partDigests.flatMap { $0 }).hex else { return true }
        return etag == "\(expected)-\(parts.count)"
    }

    /// With `ifAbsent` and an object already under `key`: success when it holds the same bytes.
    private func settleConflict(key: String, existing: ObjectInfo, size: Int64, digest: [UInt8]) throws -> ObjectInfo {
        if existing.size == size {
            let hasher = SHA256Hasher()
            try get(key: key, range: nil).forEachChunk { hasher.update($0) }
            if constantTimeEqual(hasher.finalize(), digest) { return existing }
        }
        throw CNBackupError(.alreadyExists, "\(displayName)\(key) already exists with other bytes; it was left unchanged")
    }

    private func conflictVanished(_ key: String) -> CNBackupError {
        CNBackupError(.storage, "\(displayName)\(key) was reported to exist, then was gone: another writer is at work")
    }

    /// Server-side encryption and storage class, sent when an object is created.
    private var objectSettingHeaders: [(String, String)] {
        var headers: [(String, String)] = []
        if let sse = settings.serverSideEncryption { headers.append(("x-amz-server-side-encryption", sse)) }
        if let key = settings.kmsKeyId { headers.append(("x-amz-server-side-encryption-aws-kms-key-id", key)) }
        if let storageClass = settings.storageClass { headers.append(("x-amz-storage-class", storageClass)) }
        return headers
    }

    /// Tags as `x-amz-tagging`, or as `x-amz-meta-*` metadata where the provider has no tagging
    /// (GCS's XML API, R2), so lifecycle rules and humans still see node, epoch and set.
    private func labelHeaders(_ tags: [String: String]) -> [(String, String)] {
        guard !tags.isEmpty else { return [] }
        if settings.provider.supportsTagging {
            return [("x-amz-tagging", SigV4Signer.canonicalQuery(tags.map { ($0.key, $0.value) }))]
        }
        return tags.sorted { $0.key < $1.key }.map { ("x-amz-meta-\($0.key)", $0.value) }
    }

    private func notFound(_ key: String) -> CNBackupError {
        CNBackupError(.notFound, "\(displayName)\(key) does not exist")
    }

    // MARK: - Requests

    package struct S3Call {
        package var method: String
        /// The key relative to the store's prefix, or nil for a request on the bucket.
        package var key: String?
        package var query: [(String, String)] = []
        package var headers: [(String, String)] = []
        package var body: [UInt8]? = nil
        /// For messages: "PUT", "GET tags of"…
        package var what: String
        /// The body's SHA-256 when the caller has it already (it hashed the body for a checksum
        /// header), so signing does not hash it again.
        package var bodySHA256: [UInt8]? = nil
    }

    /// The integrity header for a body the server must check, and the body's SHA-256 when it was
    /// computed for it.
    private func integrityHeader(for bytes: [UInt8]) throws -> (header: (String, String), sha256: [UInt8]?) {
        if settings.provider.checksSHA256 {
            let digest = SHA256Hasher.hash(bytes)
            return (("x-amz-checksum-sha256", Data(digest).base64EncodedString()), digest)
        }
        return (("Content-MD5", Data(try md5(bytes)).base64EncodedString()), nil)
    }

    private func url(for call: S3Call) -> (path: String, url: String) {
        var path = basePath + "/"
        if let key = call.key { path += SigV4Signer.uriEncode(settings.prefix + key, keepSlash: true) }
        let query = SigV4Signer.canonicalQuery(call.query)
        return (path, "\(scheme)://\(host)\(path)\(query.isEmpty ? "" : "?" + query)")
    }

    /// Signs `call` for this attempt, with the date corrected by what the server said of our clock.
    private func signedRequest(_ call: S3Call, payloadHash: String) throws -> HTTPRequest {
        let (path, url) = url(for: call)
        let signer = SigV4Signer(region: settings.region, service: "s3", normalizePath: false,
                                 doubleEncodePath: false, addContentSHA256Header: true)
        var headers = call.headers
        headers.append(("Host", host))
        let date = Date().addingTimeInterval(shared.clockOffset)
        let signed = try signer.sign(method: call.method, path: path, query: call.query, headers: headers,
                                     payloadHash: payloadHash, date: date, credentials: try credentials.current())
        // Host goes out as signed (curl would drop an explicit default port from its own).
        var request = HTTPRequest(method: call.method, url: url, headers: signed.headers)
        if let body = call.body {
            request.body = MemoryStream(body)
            request.bodyLength = Int64(body.count)
        }
        return request
    }

    /// Sends `call` with retries. Returns a 2xx answer or one whose status is in `accept`;
    /// throws a `CNBackupError` for anything else.
    package func send(_ call: S3Call, accept: Set<Int> = []) throws -> HTTPResponse {
        try withRetries(call) { request in
            let response = try shared.client.perform(request)
            return (response, response)
        } accept: { response in
            (200..<300).contains(response.status) || accept.contains(response.status)
        }
    }

    /// Like `send` but a 2xx answer's body is streamed.
    package func sendStreaming(_ call: S3Call) throws -> (HTTPResponse, ByteStream?) {
        try withRetries(call) { request in
            let (response, body) = try shared.client.stream(request)
            return (response, (response, body))
        } accept: { (200..<300).contains($0.status) }
    }

    private func sendXML(_ call: S3Call) throws -> XMLElement {
        let response = try send(call)
        guard let root = XMLElement.parse(response.body) else {
            throw CNBackupError(.storage, "S3 \(call.what) \(displayName)\(call.key ?? "") gave an answer that is not XML")
        }
        if root.name == "Error" { throw error(for: response, call: call) }  // a 200 carrying an error
        return root
    }

    private func withRetries<T>(_ call: S3Call, _ attempt: (HTTPRequest) throws -> (HTTPResponse, T),
                                accept: (HTTPResponse) -> Bool) throws -> T {
        let payloadHash = (call.bodySHA256 ?? SHA256Hasher.hash(call.body ?? [])).hex
        var number = 1
        while true {
            let last = number >= settings.maxAttempts
            let response: HTTPResponse
            let value: T
            do {
                (response, value) = try attempt(try signedRequest(call, payloadHash: payloadHash))
            } catch let transport as HTTPTransportError {
                if transport.isRetryable && !last { backoff(number); number += 1; continue }
                throw CNBackupError(.storage, "S3 \(call.what) \(displayName)\(call.key ?? "") failed after \(number) attempt(s)",
                                    cause: transport.description)
            }
            if accept(response) { return value }
            let s3Error = Self.parseError(response.body)
            if !last, Self.isRetryable(status: response.status, code: s3Error?.code) {
                if s3Error?.code == "RequestTimeTooSkewed", let serverDate = response.header("date").flatMap(Self.parseHTTPDate) {
                    shared.clockOffset = serverDate.timeIntervalSinceNow
                } else {
                    backoff(number)
                }
                number += 1
                continue
            }
            throw error(for: response, call: call)
        }
    }

    package static func isRetryable(status: Int, code: String?) -> Bool {
        if [429, 500, 502, 503, 504].contains(status) { return true }
        // BadDigest and XAmzContentSHA256Mismatch: the body was damaged on its way; send it again.
        return ["SlowDown", "RequestTimeout", "RequestTimeTooSkewed", "InternalError", "ServiceUnavailable",
                "BadDigest", "XAmzContentSHA256Mismatch"].contains(code ?? "")
    }

    /// Full jitter: a random wait between 0 and base × 2^(attempt-1), at most 20 s.
    private func backoff(_ attempt: Int) {
        let cap = min(20, settings.retryBaseDelay * pow(2, Double(attempt - 1)))
        Thread.sleep(forTimeInterval: Double.random(in: 0...cap))
    }

    /// The error for an answer that is not a success: S3's code, message and request id as the
    /// cause — nothing from the request, so no signature or token.
    private func error(for response: HTTPResponse, call: S3Call) -> CNBackupError {
        let parsed = Self.parseError(response.body)
        let code = parsed?.code ?? "HTTP \(response.status)"
        var cause = code
        if let message = parsed?.message, !message.isEmpty { cause += ": " + message }
        if let id = parsed?.requestId ?? response.header("x-amz-request-id") { cause += " (request id \(id))" }
        // Belt and braces: a server echoing a credential back would not get it into a message.
        let known = credentials.lastKnown
        for secret in [known?.secretAccessKey ?? "", known?.sessionToken ?? ""] where secret.count >= 8 {
            cause = cause.replacingOccurrences(of: secret, with: "<redacted>")
        }
        let target = "\(displayName)\(call.key ?? "")"
        switch (response.status, code) {
        case (404, _), (_, "NoSuchKey"), (_, "NoSuchBucket"):
            if call.key == nil || code == "NoSuchBucket" {
                return CNBackupError(.notFound, "bucket \(settings.bucket) does not exist", cause: cause)
            }
            return CNBackupError(.notFound, "\(target) does not exist", cause: cause)
        case (401, _), (403, _):
            return CNBackupError(.authentication, "S3 refused \(call.what) \(target): check the access key, secret and permissions",
                                 cause: cause)
        case (416, _):
            return CNBackupError(.invalidInput, "the range asked of \(target) is outside the object", cause: cause)
        default:
            return CNBackupError(.storage, "S3 \(call.what) \(target) failed with HTTP \(response.status)", cause: cause)
        }
    }

    package static func parseError(_ body: [UInt8]) -> (code: String?, message: String?, requestId: String?)? {
        guard !body.isEmpty, let root = XMLElement.parse(body), root.name == "Error" else { return nil }
        return (root.value("Code"), root.value("Message"), root.value("RequestId"))
    }

    package static func parseHTTPDate(_ text: String) -> Date? {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        return formatter.date(from: text)
    }

    package static func parseISODate(_ text: String) -> Date? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = formatter.date(from: text) { return date }
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.date(from: text)
    }

    // MARK: - Reading

    /// Opens the body of `key` from byte `start`; on resume `etag` pins the object read so far.
    fileprivate func openBody(key: String, start: Int64, end: Int64?, etag: String?) throws -> (HTTPResponse, ByteStream?) {
        var headers: [(String, String)] = []
        if start > 0 || end != nil { headers.append(("Range", "bytes=\(start)-\(end.map(String.init) ?? "")")) }
        if let etag { headers.append(("If-Match", etag)) }
        return try sendStreaming(S3Call(method: "GET", key: key, headers: headers, what: "GET"))
    }

    fileprivate var maxAttempts: Int { settings.maxAttempts }
    fileprivate func pause(_ attempt: Int) { backoff(attempt) }
}

/// What the completion needs of an uploaded part.
private struct UploadedPart: Sendable {
    var number: Int
    var etag: String
    /// Base64, when the upload carries SHA-256 checksums.
    var checksumSHA256: String?
}

/// Parts uploaded so far and the first failure, shared with the upload workers.
private final class UploadState: @unchecked Sendable {
    // @unchecked: every field is guarded by `lock`.
    private let lock = NSLock()
    private var uploaded: [Int: UploadedPart] = [:]
    private var failure: Error?

    func record(_ part: UploadedPart) { lock.lock(); uploaded[part.number] = part; lock.unlock() }
    func fail(_ error: Error) { lock.lock(); if failure == nil { failure = error }; lock.unlock() }
    var error: Error? { lock.lock(); defer { lock.unlock() }; return failure }
    var parts: [UploadedPart] { lock.lock(); defer { lock.unlock() }; return uploaded.values.sorted { $0.number < $1.number } }
}

/// An object's bytes (or a range of them), streamed. A connection lost part-way is picked up
/// again from the next byte, pinned to the same object by its ETag.
private final class S3ObjectStream: ByteStream {
    private let store: S3Store
    private let key: String
    private var position: Int64
    private let end: Int64?
    private var etag: String?
    private var body: ByteStream?
    private var resumes = 0
    private var finished = false

    init(store: S3Store, key: String, start: Int64, end: Int64?) {
        self.store = store; self.key = key; self.position = start; self.end = end
    }

    func open() throws {
        let (response, body) = try store.openBody(key: key, start: position, end: end, etag: etag)
        if end != nil || position > 0, response.status != 206 {
            body?.close()
            throw CNBackupError(.storage, "\(store.displayName)\(key): the server ignored the range asked for (HTTP \(response.status))")
        }
        etag = etag ?? response.header("etag")
        self.body = body
    }

    func next() throws -> [UInt8]? {
        while !finished {
            do {
                if body == nil { try open() }
                if let chunk = try body?.next() {
                    position += Int64(chunk.count)
                    return chunk
                }
                finished = true
                if let end, position != end + 1 {
                    throw CNBackupError(.storage, "\(store.displayName)\(key) ended at byte \(position), before the range's end \(end)")
                }
            } catch let error as HTTPTransportError where error.isRetryable && resumes + 1 < store.maxAttempts {
                body?.close()
                body = nil
                resumes += 1
                store.pause(resumes)
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

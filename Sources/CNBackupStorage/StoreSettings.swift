import Foundation
import CNBackupCore
import CNBackupHTTP

/// A store as a pipeline file or the command line names it.
public struct StoreSettings: Sendable, Equatable {
    public var url: String
    public var endpoint: String?
    public var region: String?
    public var pathStyle: Bool?
    public var caFile: String?
    public var provider: String?
    /// S3 server-side encryption (AES256 | aws:kms), its KMS key id, and the storage class.
    public var sse: String?
    public var kmsKeyId: String?
    public var storageClass: String?
    /// Fixed multipart part size in MiB (stores that need equal parts, such as R2); nil grows them.
    public var partSizeMiB: Int?
    public var parallelParts: Int?
    /// Upload and download limit in bytes per second, per connection.
    public var maxBytesPerSecond: Int64?
    /// Attempts per S3 request before giving up (retries back off with full jitter).
    public var maxAttempts: Int?
    /// Object Lock retention for every object written (S3 only; the bucket needs Object Lock on).
    public var objectLock: ObjectLockRetention?
    /// `store.create`: `run` may create a file store's folder when it does not exist.
    public var create = false

    public init(url: String, endpoint: String? = nil, region: String? = nil, pathStyle: Bool? = nil,
                caFile: String? = nil, provider: String? = nil, sse: String? = nil, kmsKeyId: String? = nil,
                storageClass: String? = nil) {
        self.url = url; self.endpoint = endpoint; self.region = region; self.pathStyle = pathStyle
        self.caFile = caFile; self.provider = provider
        self.sse = sse; self.kmsKeyId = kmsKeyId; self.storageClass = storageClass
    }
}

extension StoreSettings {
    /// Parses `file:///PATH`, `s3://BUCKET/PREFIX?endpoint=...&region=...&pathStyle=true` or
    /// `gs://BUCKET/PREFIX`. Query
    /// parameters fill settings not given otherwise, which is how `copy` names two stores.
    public init(parsing url: String, endpoint: String? = nil, region: String? = nil, pathStyle: Bool? = nil,
                caFile: String? = nil, provider: String? = nil) throws {
        guard let components = URLComponents(string: url), let scheme = components.scheme,
              ["file", "s3", "gs"].contains(scheme) else {
            throw CNBackupError(.invalidInput, "\"\(url)\" is not a store URL: use file:///PATH, s3://BUCKET/PREFIX or gs://BUCKET/PREFIX")
        }
        var query: [String: String] = [:]
        for item in components.queryItems ?? [] { query[item.name] = item.value ?? "" }
        let known: Set = ["endpoint", "region", "pathStyle", "caFile", "provider", "sse", "kmsKeyId", "storageClass",
                          "partSizeMiB", "parallelParts", "maxBytesPerSecond", "maxAttempts"]
        if let unknown = query.keys.first(where: { !known.contains($0) }) {
            throw CNBackupError(.invalidInput, "store URL parameter \"\(unknown)\" is unknown (allowed: \(known.sorted().joined(separator: ", ")))")
        }
        var base = components
        base.query = nil
        self.init(url: base.string ?? url,
                  endpoint: endpoint ?? query["endpoint"], region: region ?? query["region"],
                  pathStyle: pathStyle ?? query["pathStyle"].map { $0 == "true" || $0 == "1" },
                  caFile: caFile ?? query["caFile"], provider: provider ?? query["provider"],
                  sse: query["sse"], kmsKeyId: query["kmsKeyId"], storageClass: query["storageClass"])
        partSizeMiB = query["partSizeMiB"].flatMap { Int($0) }
        parallelParts = query["parallelParts"].flatMap { Int($0) }
        maxBytesPerSecond = query["maxBytesPerSecond"].flatMap { Int64($0) }
        maxAttempts = query["maxAttempts"].flatMap { Int($0) }
    }

    /// Settings given both as a flag and in the URL's query that disagree (`--endpoint` against
    /// `?endpoint=`): a usage error, never a silent choice. Returns the message, or nil.
    public static func conflict(url: String, endpoint: String?, region: String?, pathStyle: Bool?,
                                caFile: String?, provider: String?) -> String? {
        guard let components = URLComponents(string: url) else { return nil }
        var query: [String: String] = [:]
        for item in components.queryItems ?? [] { query[item.name] = item.value ?? "" }
        func normalized(_ text: String) -> String { text.hasSuffix("/") ? String(text.dropLast()) : text }
        let pairs: [(flag: String, name: String, value: String?)] = [
            ("--endpoint", "endpoint", endpoint.map(normalized)), ("--region", "region", region),
            ("--ca-file", "caFile", caFile), ("--provider", "provider", provider),
            ("--path-style", "pathStyle", pathStyle.map { $0 ? "true" : "false" }),
        ]
        for (flag, name, value) in pairs {
            guard let value, var inURL = query[name] else { continue }
            if name == "endpoint" { inURL = normalized(inURL) }
            if name == "pathStyle" { inURL = (inURL == "true" || inURL == "1") ? "true" : "false" }
            if inURL != value {
                return "\(flag) \(value) contradicts ?\(name)=\(query[name] ?? "") in the store URL: give it once"
            }
        }
        return nil
    }

    /// Opens the store for a command that only reads it (list, prune, cleanup, check-freshness):
    /// a file store that does not exist or that this user cannot read is an error, not an empty store.
    public func openForReading() throws -> any ObjectStore {
        let store = try open()
        if let components = URLComponents(string: url), components.scheme == "file" {
            try FileSystemStore(root: components.path).requireReadable()
        }
        return store
    }

    /// The URL's shape, as `open` will read it, checked without opening anything (`validate` and
    /// `run` parse a pipeline file alike). Returns the URL's parts.
    @discardableResult
    public func checkURL() throws -> URLComponents {
        guard let components = URLComponents(string: url), let scheme = components.scheme else {
            throw CNBackupError(.invalidInput, "\"\(url)\" is not a store URL: use file:///PATH, s3://BUCKET/PREFIX or gs://BUCKET/PREFIX")
        }
        switch scheme {
        case "file":
            guard components.host == nil || components.host == "" || components.host == "localhost" else {
                throw CNBackupError(.invalidInput, "file store URL \"\(url)\" names a host: use file:///ABSOLUTE/PATH (three slashes)")
            }
            guard components.path.hasPrefix("/"), components.path.count > 1 else {
                throw CNBackupError(.invalidInput, "file store URL \"\(url)\" needs an absolute path: file:///var/backups/cnbackup")
            }
        case "s3":
            guard let bucket = components.host, !bucket.isEmpty else {
                throw CNBackupError(.invalidInput, "S3 store URL \"\(url)\" names no bucket: use s3://BUCKET/PREFIX")
            }
        case "gs":
            guard let bucket = components.host, !bucket.isEmpty else {
                throw CNBackupError(.invalidInput, "GCS store URL \"\(url)\" names no bucket: use gs://BUCKET/PREFIX")
            }
            // S3's settings mean nothing to the JSON API: refused rather than silently ignored.
            let s3Only: [(String, Bool)] = [("region", region != nil), ("pathStyle", pathStyle != nil), ("provider", provider != nil),
                                            ("sse", sse != nil), ("kmsKeyId", kmsKeyId != nil), ("parallelParts", parallelParts != nil)]
            if let (name, _) = s3Only.first(where: { $0.1 }) {
                throw CNBackupError(.invalidInput, "store setting \(name) is for s3:// stores; a gs:// store does not use it (GCS uploads are sequential; encryption and location are the bucket's)")
            }
        default:
            throw CNBackupError(.invalidInput, "store scheme \"\(scheme)\" is not supported: use file://, s3:// or gs://")
        }
        return components
    }

    /// What `run` and `validate` check of a file store's folder before anything is written. A
    /// folder that does not exist is a problem unless creating it was asked for: a volume that did
    /// not mount leaves its mount point missing or empty, and a run that made the folder would fill
    /// the disk under it. A folder on the root file system is a warning. Nil for other stores.
    public func fileStoreFolderCheck(createAllowed: Bool) -> (problem: String?, warning: String?)? {
        guard let components = try? checkURL(), components.scheme == "file" else { return nil }
        let path = components.path
        var status = stat()
        if stat(path, &status) != 0 && !(createAllowed || create) {
            return ("the store folder \(path) does not exist: if it is a volume, it did not mount, and creating the folder would fill the disk under it; mount it, or create the folder (mkdir -m 700 \(path)), or let run create it (--create-store, or store: { create: true })", nil)
        }
        // The nearest folder that exists: on the root file system, or on a volume of its own.
        var probe = path
        while stat(probe, &status) != 0 && probe != "/" { probe = (probe as NSString).deletingLastPathComponent }
        var root = stat()
        if stat("/", &root) == 0 && status.st_dev == root.st_dev {
            return (nil, "the store folder \(path) is on the root file system, not on a volume of its own: backups fill this machine's disk and are lost with it")
        }
        return (nil, nil)
    }

    /// Opens the store these settings name.
    public func open() throws -> any ObjectStore {
        let components = try checkURL()
        switch components.scheme {
        case "file":
            let path = components.path
            // A network file system's ESTALE or EIO may pass: reads and lists are retried.
            return RetryingStore(FileSystemStore(root: path), policy: RetryPolicy(maxAttempts: 3, baseDelay: 0.1, maxDelay: 1))
        case "s3":
            var s3Provider = S3Provider.aws
            if let provider {
                guard let parsed = S3Provider(rawValue: provider) else {
                    throw CNBackupError(.invalidInput, "provider \"\(provider)\" is unknown: use \(S3Provider.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                s3Provider = parsed
            }
            return try openS3Store(url: url, endpoint: endpoint, region: region, pathStyle: pathStyle, caFile: caFile,
                                   provider: s3Provider, serverSideEncryption: sse, kmsKeyId: kmsKeyId, storageClass: storageClass) { s3 in
                if let mib = partSizeMiB { s3.partSize = mib << 20 }
                if let parts = parallelParts { s3.parallelParts = max(1, parts) }
                if let limit = maxBytesPerSecond { s3.maxSendBytesPerSecond = limit; s3.maxReceiveBytesPerSecond = limit }
                if let attempts = maxAttempts { s3.retry.maxAttempts = max(1, attempts) }
                s3.objectLock = objectLock
            }
        case "gs":
            return try openGCSStore(url: url, endpoint: endpoint, caFile: caFile) { gcs in
                // partSizeMiB is the resumable upload's chunk here, rounded down to whole 256 KiB units.
                if let mib = partSizeMiB { gcs.chunkSize = max(GCSSettings.chunkQuantum, (mib << 20) / GCSSettings.chunkQuantum * GCSSettings.chunkQuantum) }
                if let limit = maxBytesPerSecond { gcs.maxSendBytesPerSecond = limit; gcs.maxReceiveBytesPerSecond = limit }
                if let attempts = maxAttempts { gcs.retry.maxAttempts = max(1, attempts) }
                gcs.objectLock = objectLock
                gcs.storageClass = storageClass
            }
        default:
            throw CNBackupError(.invalidInput, "store scheme \"\(components.scheme ?? "")\" is not supported: use file://, s3:// or gs://")
        }
    }
}

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
    /// Attempts per request and the waits between them (`RetryPolicy.storage`: 5 attempts, full
    /// jitter from 0.2 s doubling to 20 s); also how often a dropped read resumes.
    public var retry: RetryPolicy = .storage
    /// Upload and download limits in bytes per second for the whole store.
    public var maxSendBytesPerSecond: Int64?
    public var maxReceiveBytesPerSecond: Int64?
    /// Server-side encryption: `AES256` or `aws:kms` (with `kmsKeyId`); nil leaves the bucket's default.
    public var serverSideEncryption: String?
    public var kmsKeyId: String?
    /// Object Lock retention set on every object cnbackup writes; the bucket must have Object Lock on.
    public var objectLock: ObjectLockRetention?
    /// e.g. `STANDARD_IA`, `GLACIER_IR`; nil leaves the bucket's default.
    public var storageClass: String?

    public init(bucket: String, prefix: String = "", endpoint: String? = nil, region: String = "us-east-1",
                pathStyle: Bool? = nil, caFile: String? = nil, provider: S3Provider = .aws) {
        self.bucket = bucket
        let trimmed = prefix.split(separator: "/").joined(separator: "/")
        self.prefix = trimmed.isEmpty ? "" : trimmed + "/"
        self.endpoint = endpoint
        self.region = region
        self.pathStyle = pathStyle ?? (Self.endpointNeedsPathStyle(endpoint) || provider.defaultPathStyle)
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

extension S3Settings {
    /// An endpoint given as an IP address or `localhost` has no name under which BUCKET.HOST
    /// could resolve: virtual-hosted addressing cannot work there, so path-style is the default.
    public static func endpointNeedsPathStyle(_ endpoint: String?) -> Bool {
        guard let endpoint, let host = URLComponents(string: endpoint)?.host?.lowercased(), !host.isEmpty else { return false }
        if host == "localhost" || host.hasSuffix(".localhost") { return true }
        let bare = host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host
        var v4 = in_addr(), v6 = in6_addr()
        return inet_pton(AF_INET, bare, &v4) == 1 || inet_pton(AF_INET6, bare, &v6) == 1
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
    configure(&settings)
    let provider = try credentials.map { S3CredentialProvider(fixed: $0) }
        ?? S3CredentialProvider.fromEnvironment(region: region, caFile: caFile)
    return try S3Store(settings: settings, credentialProvider: provider)
}

/// S3 Object Lock retention for each object written: in `governance` mode only a principal with
/// s3:BypassGovernanceRetention may delete early; in `compliance` mode nobody can, root included.
public struct ObjectLockRetention: Sendable, Equatable {
    public enum Mode: String, Sendable, CaseIterable { case governance, compliance }
    public var mode: Mode
    public var days: Int

    public init(mode: Mode, days: Int) { self.mode = mode; self.days = days }

    /// The headers of a PUT or CreateMultipartUpload, retained until `now` + `days`.
    func headers(now: Date = Date()) -> [(String, String)] {
        let until = now.addingTimeInterval(TimeInterval(days) * 86_400)
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return [("x-amz-object-lock-mode", mode.rawValue.uppercased()),
                ("x-amz-object-lock-retain-until-date", formatter.string(from: until))]
    }
}

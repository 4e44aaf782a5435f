import Foundation
import CNBackupCore
import CNBackupHTTP

/// A Google Cloud Storage bucket and prefix, reached through the JSON API.
public struct GCSSettings: Sendable {
    public var bucket: String
    /// Prepended to every object name; empty or ending in `/`.
    public var prefix: String
    /// `https://storage.googleapis.com`, or an emulator's URL (`STORAGE_EMULATOR_HOST`, a store `endpoint`).
    public var endpoint: String
    /// The endpoint is not Google's: token endpoints of an emulator's stand-ins are allowed.
    public var isEmulator: Bool
    /// A PEM bundle of certificate authorities to trust instead of the system's (the endpoint's,
    /// and an emulator's token endpoints).
    public var caFile: String?
    /// The bytes a resumable upload sends per request, and the one chunk it keeps to resend after
    /// an interruption: a multiple of 256 KiB, as GCS requires. Objects that end within one chunk
    /// go up in a single request.
    public var chunkSize: Int = 8 << 20
    /// Attempts per request and the waits between them; also how often an upload or a read resumes.
    public var retry: RetryPolicy = .storage
    public var maxSendBytesPerSecond: Int64?
    public var maxReceiveBytesPerSecond: Int64?
    /// Object retention for every object written (`store.objectLock`): governance maps to GCS's
    /// `Unlocked` mode, compliance to `Locked`. The bucket needs object retention enabled.
    public var objectLock: ObjectLockRetention?
    /// e.g. `NEARLINE`, `COLDLINE`; nil leaves the bucket's default.
    public var storageClass: String?

    public static let googleEndpoint = "https://storage.googleapis.com"
    /// GCS's unit for resumable upload chunks.
    public static let chunkQuantum = 256 << 10

    public init(bucket: String, prefix: String = "", endpoint: String? = nil, caFile: String? = nil) {
        self.bucket = bucket
        let trimmed = prefix.split(separator: "/").joined(separator: "/")
        self.prefix = trimmed.isEmpty ? "" : trimmed + "/"
        let chosen = endpoint ?? Self.googleEndpoint
        self.endpoint = chosen
        let host = URLComponents(string: chosen)?.host?.lowercased() ?? ""
        self.isEmulator = !(host == "storage.googleapis.com" || host.hasSuffix(".googleapis.com"))
        self.caFile = caFile
    }
}

/// Opens `gs://BUCKET/PREFIX`. The endpoint is the one given, else `STORAGE_EMULATOR_HOST` (as
/// Google's libraries read it: `host:port` means http), else Google's; credentials are the
/// application-default ones (`GoogleCredentialProvider`).
public func openGCSStore(url: String, endpoint: String? = nil, caFile: String? = nil,
                         environment: [String: String] = ProcessInfo.processInfo.environment,
                         configure: (inout GCSSettings) -> Void = { _ in }) throws -> GCSStore {
    guard url.hasPrefix("gs://") else {
        throw CNBackupError(.invalidInput, "\"\(url)\" is not a GCS URL: write gs://BUCKET/PREFIX")
    }
    let rest = url.dropFirst(5)
    let bucket = String(rest.prefix(while: { $0 != "/" && $0 != "?" }))
    let prefix = String(rest.dropFirst(bucket.count).prefix(while: { $0 != "?" }))
    guard !bucket.isEmpty else { throw CNBackupError(.invalidInput, "\"\(url)\" names no bucket: write gs://BUCKET/PREFIX") }
    var chosen = endpoint
    if chosen == nil, let emulator = environment["STORAGE_EMULATOR_HOST"], !emulator.isEmpty {
        chosen = emulator.contains("://") ? emulator : "http://" + emulator
    }
    var settings = GCSSettings(bucket: bucket, prefix: prefix, endpoint: chosen, caFile: caFile)
    configure(&settings)
    let credentials = try GoogleCredentialProvider.applicationDefault(emulator: settings.isEmulator, caFile: settings.caFile, environment)
    return try GCSStore(settings: settings, credentials: credentials)
}

// CNBackupCore: the bottom layer. Errors, durations and timestamps; pull-based byte streams and
// bounded channels; zstd (CZstd); the OpenSSL wrapper, keys and the sealed format (COpenSSL);
// Cancellation and LastResort. It may know only the C libraries it wraps: no network, no object
// store, no pipeline, no Canton.
import Foundation

/// The one error type the library throws to its callers: a stable code a script can match on, a
/// message that says what went wrong and what to do, and the underlying cause (an OpenSSL error
/// queue, a zstd error name, an S3 error code and request id) where there is one.
/// Messages never contain secrets: callers describe keys by their ids, never by their bytes.
public struct CNBackupError: Error, CustomStringConvertible, Sendable {
    public enum Code: String, Sendable {
        case invalidInput = "invalid-input"        // a flag, file or value the user gave is wrong
        case invalidDefinition = "invalid-pipeline" // the pipeline file does not validate
        case io = "io"                              // reading or writing a local file failed
        case crypto = "crypto"                      // a cryptographic operation failed
        case authentication = "authentication"     // bytes or signatures did not authenticate
        case wrongKey = "wrong-key"                // none of the offered keys opens the object
        case compression = "compression"
        case capture = "capture"                    // a source (command, pg_dump, HTTP) failed
        case restore = "restore"                    // a restore's own tools (createdb, pg_restore, psql) failed
        case storage = "storage"                    // the object store refused or failed
        case notFound = "not-found"
        case alreadyExists = "already-exists"
        case integrity = "integrity"                // what is stored disagrees with the manifest
        case cancelled = "cancelled"                // stopped by SIGTERM or SIGINT
    }

    public let code: Code
    public let message: String
    public let cause: String?
    /// A later attempt may succeed (a network file system's ESTALE, an injected fault): what
    /// `RetryingStore` retries.
    public let isTransient: Bool

    public init(_ code: Code, _ message: String, cause: String? = nil, transient: Bool = false) {
        self.code = code
        self.message = message
        self.cause = cause
        self.isTransient = transient
    }

    public var description: String {
        if let cause, !cause.isEmpty { return "\(message) (\(cause))" }
        return message
    }
}

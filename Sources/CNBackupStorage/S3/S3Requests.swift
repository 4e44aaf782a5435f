import Foundation
import CNBackupCore
import CNBackupHTTP

/// Signing and sending one request, with the store's retry policy, and reading S3's answers and errors.
extension S3Store {
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
    /// Whether bodies carry `x-amz-checksum-sha256` (else Content-MD5).
    var usesSHA256Checksums: Bool { settings.provider.checksSHA256 && settings.objectLock == nil }

    func integrityHeader(for bytes: [UInt8]) throws -> (header: (String, String), sha256: [UInt8]?) {
        // Object Lock needs a checksum the server can name: Content-MD5 is the one every S3 API
        // with Object Lock accepts (moto refuses a bare x-amz-checksum-sha256 there).
        if usesSHA256Checksums {
            let digest = SHA256Hasher.hash(bytes)
            return (("x-amz-checksum-sha256", Data(digest).base64EncodedString()), digest)
        }
        return (("Content-MD5", Data(try md5(bytes)).base64EncodedString()), nil)
    }

    func url(for call: S3Call) -> (path: String, url: String) {
        var path = basePath + "/"
        if let key = call.key { path += SigV4Signer.uriEncode(settings.prefix + key, keepSlash: true) }
        let query = SigV4Signer.canonicalQuery(call.query)
        return (path, "\(scheme)://\(host)\(path)\(query.isEmpty ? "" : "?" + query)")
    }

    /// Signs `call` for this attempt, with the date corrected by what the server said of our clock.
    func signedRequest(_ call: S3Call, payloadHash: String) throws -> HTTPRequest {
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

    func sendXML(_ call: S3Call) throws -> S3XMLElement {
        let response = try send(call)
        guard let root = S3XMLElement.parse(response.body) else {
            throw CNBackupError(.storage, "S3 \(call.what) \(displayName)\(call.key ?? "") gave an answer that is not XML")
        }
        if root.name == "Error" { throw error(for: response, call: call) }  // a 200 carrying an error
        return root
    }

    func withRetries<T>(_ call: S3Call, _ attempt: (HTTPRequest) throws -> (HTTPResponse, T),
                        accept: (HTTPResponse) -> Bool) throws -> T {
        let payloadHash = (call.bodySHA256 ?? SHA256Hasher.hash(call.body ?? [])).hex
        return try settings.retry.run { number, _ in
            let response: HTTPResponse
            let value: T
            do {
                (response, value) = try attempt(try signedRequest(call, payloadHash: payloadHash))
            } catch let transport as HTTPTransportError {
                let failure = CNBackupError(.storage, "S3 \(call.what) \(displayName)\(call.key ?? "") failed after \(number) attempt(s)"
                                                + (transport.hint.map { ": " + $0 } ?? ""),
                                            cause: transport.description)
                if transport.isRetryable { return .retry(failure) }
                throw failure
            }
            if accept(response) { return .success(value) }
            let s3Error = Self.parseError(response.body)
            guard Self.isRetryable(status: response.status, code: s3Error?.code) else { throw error(for: response, call: call) }
            // A clock the server calls skewed is corrected from its Date header before the next attempt.
            if s3Error?.code == "RequestTimeTooSkewed", let serverDate = response.header("date").flatMap(Self.parseHTTPDate) {
                shared.clockOffset = serverDate.timeIntervalSinceNow
            }
            return .retry(error(for: response, call: call))
        }
    }

    package static func isRetryable(status: Int, code: String?) -> Bool {
        if RetryPolicy.isRetryable(status: status) { return true }
        // BadDigest and XAmzContentSHA256Mismatch: the body was damaged on its way; send it again.
        return ["SlowDown", "RequestTimeout", "RequestTimeTooSkewed", "InternalError", "ServiceUnavailable",
                "BadDigest", "XAmzContentSHA256Mismatch"].contains(code ?? "")
    }


    /// The error for an answer that is not a success: S3's code, message and request id as the
    /// cause — nothing from the request, so no signature or token.
    func error(for response: HTTPResponse, call: S3Call) -> CNBackupError {
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
                return CNBackupError(.notFound, "bucket \(settings.bucket) does not exist at \(settings.endpoint ?? "the provider's endpoint"): check the bucket name in --store, --endpoint and --region (create the bucket first)", cause: cause)
            }
            return CNBackupError(.notFound, "\(target) does not exist", cause: cause)
        case (_, "InvalidAccessKeyId"):
            return CNBackupError(.authentication, "S3 does not know the access key id used for \(call.what) \(target): check AWS_ACCESS_KEY_ID (or the credentials file) and that the endpoint and region are the service the key belongs to",
                                 cause: cause)
        case (_, "SignatureDoesNotMatch"):
            return CNBackupError(.authentication, "S3 rejected the request signature for \(call.what) \(target): check the secret access key (AWS_SECRET_ACCESS_KEY), the region (--region) and this host's clock (date -u)",
                                 cause: cause)
        case (401, _), (403, _):
            return CNBackupError(.authentication, "S3 refused \(call.what) \(target) (not retried): check the access key, secret and the bucket policy's permissions for this action, and this host's clock (date -u)",
                                 cause: cause)
        case (416, _):
            return CNBackupError(.invalidInput, "the range asked of \(target) is outside the object", cause: cause)
        default:
            return CNBackupError(.storage, "S3 \(call.what) \(target) failed with HTTP \(response.status)", cause: cause)
        }
    }

    package static func parseError(_ body: [UInt8]) -> (code: String?, message: String?, requestId: String?)? {
        guard !body.isEmpty, let root = S3XMLElement.parse(body), root.name == "Error" else { return nil }
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
}

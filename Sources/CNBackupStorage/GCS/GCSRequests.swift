import Foundation
import CNBackupCore
import CNBackupHTTP

/// Sending one JSON API request with a bearer token and the store's retry policy, and reading
/// GCS's errors.
extension GCSStore {
    struct GCSCall {
        var method: String
        /// Percent-encoded, from the endpoint's root; or `url` for a session URI.
        var path: String = ""
        var url: String? = nil
        var query: [(String, String)] = []
        var headers: [(String, String)] = []
        var body: [UInt8]? = nil
        /// For messages: "PUT", "GET metadata of"…
        var what: String
        /// The key relative to the prefix, for messages; nil for a request on the bucket.
        var key: String? = nil
    }

    func request(for call: GCSCall, token: String?) -> HTTPRequest {
        var url = call.url ?? origin + call.path
        if !call.query.isEmpty {
            url += (url.contains("?") ? "&" : "?") + call.query.map { "\(Self.encode($0.0))=\(Self.encode($0.1))" }.joined(separator: "&")
        }
        var request = HTTPRequest(method: call.method, url: url, headers: call.headers)
        if let token { request.headers.append(("Authorization", "Bearer " + token)) }
        if let body = call.body {
            request.body = MemoryStream(body)
            request.bodyLength = Int64(body.count)
        }
        return request
    }

    /// Sends `call` with retries. Returns a 2xx answer or one whose status is in `accept`; throws a
    /// `CNBackupError` for anything else.
    func send(_ call: GCSCall, accept: Set<Int> = []) throws -> HTTPResponse {
        try withRetries(call) { request in
            let response = try client.perform(request)
            return (response, response)
        } accept: { (200..<300).contains($0.status) || accept.contains($0.status) }
    }

    /// Like `send` but a 2xx answer's body is streamed.
    func sendStreaming(_ call: GCSCall) throws -> (HTTPResponse, ByteStream?) {
        try withRetries(call) { request in
            let (response, body) = try client.stream(request)
            return (response, (response, body))
        } accept: { (200..<300).contains($0.status) }
    }

    /// Runs one request under the retry policy: transport failures that may pass and 429/5xx are
    /// retried; a 401 is retried with a fresh token (a token the server revoked or that expired
    /// early); anything else is an error.
    func withRetries<T>(_ call: GCSCall, _ attempt: (HTTPRequest) throws -> (HTTPResponse, T),
                        accept: (HTTPResponse) -> Bool) throws -> T {
        try settings.retry.run { number, _ in
            let token = try credentials.token()
            let response: HTTPResponse
            let value: T
            do {
                (response, value) = try attempt(request(for: call, token: token))
            } catch let transport as HTTPTransportError {
                let failure = CNBackupError(.storage, "GCS \(call.what) \(displayName)\(call.key ?? "") failed after \(number) attempt(s)"
                                                + (transport.hint.map { ": " + $0 } ?? ""),
                                            cause: transport.description)
                if transport.isRetryable { return .retry(failure) }
                throw failure
            }
            if accept(response) { return .success(value) }
            if response.status == 401 {
                credentials.invalidate(token)
                return .retry(error(for: response, call: call))
            }
            guard RetryPolicy.isRetryable(status: response.status) else { throw error(for: response, call: call) }
            return .retry(error(for: response, call: call))
        }
    }

    /// GCS's `{"error": {"code", "message", "errors": [{"reason"}]}}`, or the body's first line.
    static func parseError(_ body: [UInt8]) -> (reason: String?, message: String?) {
        if let object = json(body)?["error"] as? [String: Any] {
            let reason = (object["errors"] as? [[String: Any]])?.first?["reason"] as? String ?? object["status"] as? String
            return (reason, object["message"] as? String)
        }
        let text = String(decoding: body.prefix(300), as: UTF8.self).split(separator: "\n").first.map(String.init)
        return (nil, text)
    }

    /// The error for an answer that is not a success: GCS's reason and message as the cause,
    /// nothing from the request (no token, no session URI).
    func error(for response: HTTPResponse, call: GCSCall) -> CNBackupError {
        let parsed = Self.parseError(response.body)
        var cause = "HTTP \(response.status)" + (parsed.reason.map { " \($0)" } ?? "") + (parsed.message.map { ": \($0)" } ?? "")
        if let token = credentials.lastKnown, token.count >= 8 { cause = cause.replacingOccurrences(of: token, with: "<redacted>") }
        let target = "\(displayName)\(call.key ?? "")"
        let reason = parsed.reason ?? ""
        switch response.status {
        case 404:
            if call.key == nil || (parsed.message ?? "").lowercased().contains("bucket") {
                return CNBackupError(.notFound, "bucket \(settings.bucket) does not exist at \(settings.endpoint) (or these credentials may not see it): check the bucket in --store", cause: cause)
            }
            return CNBackupError(.notFound, "\(target) does not exist", cause: cause)
        case 401:
            return CNBackupError(.authentication, "GCS refused the credentials for \(call.what) \(target) (\(credentials.description)): the token is invalid or expired even after a refresh", cause: cause)
        case 403:
            return CNBackupError(.authentication, "GCS refused \(call.what) \(target) for \(credentials.description) (not retried): grant its service account the role this action needs (examples/gcp/iam-writer-role.yaml)", cause: cause)
        case 412:
            return CNBackupError(.alreadyExists, "\(target) already exists; it is never replaced", cause: cause)
        case 416:
            return CNBackupError(.invalidInput, "the range asked of \(target) is outside the object", cause: cause)
        case 400 where reason.lowercased().contains("customerencryption") || (parsed.message ?? "").lowercased().contains("encryption key"):
            return CNBackupError(.storage, "\(target) was written with a customer-supplied encryption key: cnbackup cannot read it (nor did it write it)", cause: cause)
        default:
            return CNBackupError(.storage, "GCS \(call.what) \(target) failed with HTTP \(response.status)", cause: cause)
        }
    }
}

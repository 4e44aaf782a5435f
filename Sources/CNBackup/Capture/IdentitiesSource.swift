import Foundation
import CNBackupCore
import CNBackupHTTP
import CNBackupStorage


/// Streams a secret held in memory; the secret is wiped when the stream is released.
final class SecretStream: ByteStream {
    private let secret: SecretText
    private var offset = 0
    init(_ secret: SecretText) { self.secret = secret }
    func next() throws -> [UInt8]? {
        guard offset < secret.bytes.count else { return nil }
        let end = min(secret.bytes.count, offset + (1 << 20))
        defer { offset = end }
        return Array(secret.bytes[offset..<end])
    }
}

/// A secret held in memory and wiped when released.
final class SecretText {
    var bytes: [UInt8]
    init(_ bytes: [UInt8]) { self.bytes = bytes }
    deinit { wipe(&bytes) }
    var string: String { String(decoding: bytes, as: UTF8.self) }
}

extension HTTPSourceDefinition {
    static func requireSecureURL(_ text: String, what: String) throws { try SecureURL.require(text, what: what) }

    /// Checks every URL of the source (used by validation and before fetching).
    func checkURLs() throws {
        try Self.requireSecureURL(url, what: "identities URL")
        if let oauth { try Self.requireSecureURL(oauth.tokenURL, what: "OAuth token URL") }
    }

    static func readSecret(_ path: String, what: String) throws -> SecretText {
        guard var data = FileManager.default.contents(atPath: path).map(Array.init) else {
            throw CNBackupError(.invalidInput, "cannot read the \(what) file \(path): check the path and the secret's mount")
        }
        while let last = data.last, last == 0x0A || last == 0x0D || last == 0x20 { data.removeLast() }
        Redaction.register(String(decoding: data, as: UTF8.self))
        return SecretText(data)
    }

    /// Fetches the dump, retrying 5xx and dropped connections, and returns its exact bytes as a
    /// stream. The body stays in memory (an identities dump is small); it is never written to disk
    /// in clear and never logged.
    func fetch() throws -> ByteStream {
        try checkURLs()
        let deadline = Date().addingTimeInterval(TimeInterval(timeoutSeconds))
        let token = try bearerToken(deadline: deadline)
        var request = HTTPRequest(method: "GET", url: url)
        request.headers = [("Authorization", "Bearer " + token.string), ("Accept", "application/json")]
        let response = try withRetries(what: "GET \(url)", deadline: deadline) { request }
        switch response.status {
        case 200: break
        case 401:
            throw CNBackupError(.capture, "\(url) answered 401: the token was not accepted; check the OAuth client, its secret and audience")
        case 403:
            throw CNBackupError(.capture, "\(url) answered 403: the token's user lacks the rights: the identities endpoints need a token for the node's own ledger API user (participant admin, actAs on the operator party), i.e. the validator or SV backend's own OAuth client, not a new one")
        default:
            throw CNBackupError(.capture, "\(url) answered HTTP \(response.status)")
        }
        // The one copy of the dump lives in a SecretText, wiped once the capture has read it.
        let body = SecretText(response.body)
        if expectIdentities { try IdentitiesShape.check(body.bytes) }
        return SecretStream(body)
    }

    private func bearerToken(deadline: Date) throws -> SecretText {
        if let tokenFile { return try Self.readSecret(tokenFile, what: "token") }
        guard let oauth else { throw CNBackupError(.invalidInput, "an http capture needs oauth or tokenFile") }
        let secret = try Self.readSecret(oauth.clientSecretFile, what: "OAuth client secret")
        func encode(_ s: String) -> String {
            var allowed = CharacterSet.alphanumerics; allowed.insert(charactersIn: "-._~")
            return s.addingPercentEncoding(withAllowedCharacters: allowed) ?? s
        }
        var fields = ["grant_type=client_credentials", "client_id=" + encode(oauth.clientId), "client_secret=" + encode(secret.string)]
        if let audience = oauth.audience { fields.append("audience=" + encode(audience)) }
        if let scope = oauth.scope { fields.append("scope=" + encode(scope)) }
        let form = SecretText(Array(fields.joined(separator: "&").utf8))
        var request = HTTPRequest(method: "POST", url: oauth.tokenURL)
        request.headers = [("Content-Type", "application/x-www-form-urlencoded"), ("Accept", "application/json")]
        request.body = MemoryStream(form.bytes)
        request.bodyLength = Int64(form.bytes.count)
        let response = try withRetries(what: "POST \(oauth.tokenURL)", deadline: deadline) {
            var attempt = request
            attempt.body = MemoryStream(form.bytes)
            return attempt
        }
        guard response.status == 200 else {
            throw CNBackupError(.capture, "the OAuth token endpoint \(oauth.tokenURL) answered HTTP \(response.status): check the client id, secret and audience")
        }
        var body = response.body
        defer { wipe(&body) }
        guard let json = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any],
              let token = json["access_token"] as? String, !token.isEmpty else {
            throw CNBackupError(.capture, "the OAuth token endpoint's answer has no access_token")
        }
        Redaction.register(token)
        return SecretText(Array(token.utf8))
    }

    /// `RetryPolicy.capture`: up to 4 attempts within the time left before `deadline`, each
    /// given only that time; 5xx answers and dropped connections are retried.
    private func withRetries(what: String, deadline: Date, _ request: () -> HTTPRequest) throws -> HTTPResponse {
        try RetryPolicy.capture(deadline: deadline.timeIntervalSinceNow).fetch(
            request, caFile: caFile, limit: 256 << 20, what: what,
            timedOut: CNBackupError(.capture, "\(what) did not finish within the capture's timeout of \(timeoutSeconds)s: check the endpoint, or raise `timeout`"))
    }
}

/// The documented shapes of an identities dump (docs/CANTON.md, "Node identities"): an SV's `{"identities": {...}}` with
/// three NodeIdentitiesDumps, or a validator's single NodeIdentitiesDump. Unknown extra fields are
/// allowed (the schema only grows); the bytes are archived exactly as served.
public enum IdentitiesShape {
    public static func check(_ bytes: [UInt8]) throws {
        guard let object = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] else {
            throw CNBackupError(.capture, "the identities dump is not a JSON object")
        }
        if let identities = object["identities"] as? [String: Any] {
            for field in ["sv_party_id", "dso_party_id", "domain_alias", "domain_id"] where !(identities[field] is String) {
                throw CNBackupError(.capture, "the SV identities dump lacks \(field)")
            }
            for node in ["participant", "sequencer", "mediator"] {
                guard let dump = identities[node] as? [String: Any] else {
                    throw CNBackupError(.capture, "the SV identities dump lacks its \(node) identities")
                }
                try checkNode(dump, name: node)
            }
        } else {
            try checkNode(object, name: "participant")
        }
    }

    static func checkNode(_ dump: [String: Any], name: String) throws {
        guard dump["id"] is String, let keys = dump["keys"] as? [[String: Any]], dump["authorizedStoreSnapshot"] is String else {
            throw CNBackupError(.capture, "the \(name) identities dump lacks id, keys or authorizedStoreSnapshot")
        }
        for key in keys {
            let inline = key["keyPair"] is String
            let kms = key["keyId"] is String && (key["type"] as? String).map { ["signing", "encryption"].contains($0) } == true
            guard inline || kms else { throw CNBackupError(.capture, "a key in the \(name) identities dump is neither a keyPair nor a KMS key reference") }
        }
    }
}

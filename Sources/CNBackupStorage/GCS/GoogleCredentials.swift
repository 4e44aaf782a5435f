import Foundation
import CNBackupCore
import CNBackupHTTP

/// Google access tokens for the GCS store, found the way Google's own libraries find them
/// (application-default credentials), refreshed before they expire, never logged.
///
/// The order:
/// 1. `GOOGLE_APPLICATION_CREDENTIALS`, a JSON file of one of three types:
///    - `service_account`: a key file. A JWT signed RS256 with its private key is exchanged at its
///      `token_uri` for an access token.
///    - `external_account`: workload identity federation, how EKS, AKS or an on-premises cluster
///      reaches GCS without a key. A token file (a projected Kubernetes service-account token, an
///      OIDC token) is exchanged at Google's STS, then, when the file names one, for a service
///      account's token (impersonation). `executable`, `url` and AWS sources are refused.
///    - `authorized_user`: gcloud's own user login, for a restore from an operator's workstation.
/// 2. gcloud's well-known file (`$CLOUDSDK_CONFIG` or `~/.config/gcloud`,
///    `application_default_credentials.json`), read the same way.
/// 3. The metadata server, plain HTTP by design, at `metadata.google.internal` (or
///    `GCE_METADATA_HOST`): GKE Workload Identity gives the pod's bound service account there.
///
/// Token and STS endpoints must be Google's own (https, `*.googleapis.com` or
/// `accounts.google.com`) unless an emulator is configured (`STORAGE_EMULATOR_HOST`, or a store
/// endpoint that is not Google's); then any https URL, or plain http to loopback, is allowed and
/// the store's CA file is trusted for them. With an emulator and no credentials at all, requests go
/// without a token, as Google's libraries send them to an emulator.
public final class GoogleCredentialProvider: @unchecked Sendable {
    // @unchecked: `cached`, `expiry` and `lifetime` are only touched under `lock`.
    package enum Source: Sendable {
        case serviceAccount(email: String, keyId: String?, tokenURL: String, keyFile: String)
        case externalAccount(ExternalAccount)
        case authorizedUser(file: String, tokenURL: String)
        case metadata(host: String)
        case anonymous
    }

    package struct ExternalAccount: Sendable {
        package var audience: String
        package var subjectTokenType: String
        package var tokenURL: String
        package var subjectTokenFile: String
        /// `json` format: the field of the file's JSON object that holds the token.
        package var subjectTokenField: String?
        package var impersonationURL: String?
        package var lifetimeSeconds: Int
    }

    package let source: Source
    /// Trusted for token endpoints that are not Google's (an emulator's stand-ins); nil: the system's CAs.
    private let caFile: String?
    private let lock = NSLock()
    private var cached: String?
    private var expiry: Date?
    private var lifetime: TimeInterval = 3600

    /// The scope of storage tokens: objects and their metadata, not ACLs or bucket settings.
    package static let storageScope = "https://www.googleapis.com/auth/devstorage.read_write"
    package static let cloudPlatformScope = "https://www.googleapis.com/auth/cloud-platform"
    package static let defaultMetadataHost = "metadata.google.internal"

    package init(source: Source, caFile: String? = nil) {
        self.source = source; self.caFile = caFile
    }

    /// What kind of credentials these are, for messages and `check-store` (never a secret).
    public var description: String {
        switch source {
        case .serviceAccount(let email, _, _, let file): return "service account \(email) (key file \(file))"
        case .externalAccount(let account):
            return "workload identity federation (\(account.audience))"
                + (account.impersonationURL.flatMap(Self.impersonatedEmail).map { ", impersonating \($0)" } ?? "")
        case .authorizedUser(let file, _): return "gcloud user credentials (\(file))"
        case .metadata(let host): return "the metadata server at \(host) (GKE Workload Identity or the VM's service account)"
        case .anonymous: return "no credentials (emulator)"
        }
    }

    // MARK: - Finding the credentials

    /// Application-default credentials, in Google's order (above).
    /// - Parameters:
    ///   - emulator: an emulator is configured: non-Google token endpoints are allowed, and no
    ///     credentials at all means anonymous requests.
    ///   - caFile: the store's CA file, trusted for non-Google token endpoints only.
    public static func applicationDefault(emulator: Bool, caFile: String? = nil,
                                          _ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> GoogleCredentialProvider {
        let trustedCA = emulator ? caFile : nil
        if let path = environment["GOOGLE_APPLICATION_CREDENTIALS"], !path.isEmpty {
            return GoogleCredentialProvider(source: try source(fromFile: path, emulator: emulator, what: "GOOGLE_APPLICATION_CREDENTIALS"),
                                            caFile: trustedCA)
        }
        let configDirectory = environment["CLOUDSDK_CONFIG"].flatMap { $0.isEmpty ? nil : $0 }
            ?? environment["HOME"].map { $0 + "/.config/gcloud" }
        if let folder = configDirectory {
            let wellKnown = folder + "/application_default_credentials.json"
            if FileManager.default.fileExists(atPath: wellKnown) {
                return GoogleCredentialProvider(source: try source(fromFile: wellKnown, emulator: emulator, what: "gcloud's application-default credentials"),
                                                caFile: trustedCA)
            }
        }
        if let host = environment["GCE_METADATA_HOST"], !host.isEmpty {
            try checkMetadataHost(host, configured: true)
            return GoogleCredentialProvider(source: .metadata(host: host))
        }
        if emulator { return GoogleCredentialProvider(source: .anonymous) }
        return GoogleCredentialProvider(source: .metadata(host: defaultMetadataHost))
    }

    /// The metadata server is plain HTTP by design, so only its own names may be used: the token
    /// would otherwise travel in clear to wherever a setting points.
    package static func checkMetadataHost(_ host: String, configured: Bool) throws {
        let name = host.split(separator: ":").first.map(String.init)?.lowercased() ?? ""
        guard !host.contains("/"), !host.contains("@"), !name.isEmpty else {
            throw CNBackupError(.invalidInput, "GCE_METADATA_HOST \"\(host)\" is not HOST[:PORT]")
        }
        if !configured && !["metadata.google.internal", "169.254.169.254"].contains(name) {
            throw CNBackupError(.invalidInput, "the metadata server must be metadata.google.internal or 169.254.169.254 (or GCE_METADATA_HOST)")
        }
    }

    /// Reads a credentials file and decides what it is; secrets stay in the file until a token is
    /// needed, so none is held longer than one exchange.
    package static func source(fromFile path: String, emulator: Bool, what: String) throws -> Source {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CNBackupError(.invalidInput, "cannot read the credentials file \(path) (\(what)): check the path and that this user may read it")
        }
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
              let type = object["type"] as? String else {
            throw CNBackupError(.invalidInput, "the credentials file \(path) (\(what)) is not a Google credentials JSON object with a \"type\"")
        }
        func field(_ name: String) throws -> String {
            guard let value = object[name] as? String, !value.isEmpty else {
                throw CNBackupError(.invalidInput, "the \(type) credentials file \(path) has no \"\(name)\"")
            }
            return value
        }
        switch type {
        case "service_account":
            // A key file is a long-lived secret: like any private key, it must not be open to others.
            try KeyFile.requirePrivateMode(path: path, what: "service-account key file")
            let tokenURL = (object["token_uri"] as? String) ?? "https://oauth2.googleapis.com/token"
            try requireTokenEndpoint(tokenURL, emulator: emulator, what: "the key file's token_uri")
            _ = try field("private_key")
            return .serviceAccount(email: try field("client_email"), keyId: object["private_key_id"] as? String,
                                   tokenURL: tokenURL, keyFile: path)
        case "authorized_user":
            try KeyFile.requirePrivateMode(path: path, what: "user credentials file")
            _ = try field("client_id"); _ = try field("client_secret"); _ = try field("refresh_token")
            let tokenURL = (object["token_uri"] as? String) ?? "https://oauth2.googleapis.com/token"
            try requireTokenEndpoint(tokenURL, emulator: emulator, what: "the user credentials' token_uri")
            return .authorizedUser(file: path, tokenURL: tokenURL)
        case "external_account":
            let source = object["credential_source"] as? [String: Any] ?? [:]
            if source["executable"] != nil {
                throw CNBackupError(.invalidInput, "the external_account file \(path) has an executable credential source: cnbackup never runs a program named in a credentials file; use a file source (a projected service-account token)")
            }
            if source["environment_id"] != nil || source["url"] != nil {
                throw CNBackupError(.invalidInput, "the external_account file \(path) takes its token from \(source["url"] != nil ? "a URL" : "AWS"): cnbackup reads subject tokens from a file only (a projected Kubernetes service-account token or an OIDC token file); generate the configuration with --credential-source-file")
            }
            guard let file = source["file"] as? String, !file.isEmpty else {
                throw CNBackupError(.invalidInput, "the external_account file \(path) names no credential_source.file")
            }
            let format = source["format"] as? [String: Any]
            let formatType = (format?["type"] as? String) ?? "text"
            guard formatType == "text" || formatType == "json" else {
                throw CNBackupError(.invalidInput, "the external_account file \(path) has format \"\(formatType)\": use text or json")
            }
            let tokenURL = try field("token_url")
            try requireTokenEndpoint(tokenURL, emulator: emulator, what: "the external account's token_url (STS)")
            let impersonation = object["service_account_impersonation_url"] as? String
            if let impersonation { try requireTokenEndpoint(impersonation, emulator: emulator, what: "service_account_impersonation_url") }
            let lifetime = ((object["service_account_impersonation"] as? [String: Any])?["token_lifetime_seconds"] as? Int) ?? 3600
            return .externalAccount(ExternalAccount(
                audience: try field("audience"), subjectTokenType: try field("subject_token_type"), tokenURL: tokenURL,
                subjectTokenFile: file, subjectTokenField: formatType == "json" ? (format?["subject_token_field_name"] as? String ?? "") : nil,
                impersonationURL: impersonation, lifetimeSeconds: max(600, min(43_200, lifetime))))
        default:
            throw CNBackupError(.invalidInput, "the credentials file \(path) has type \"\(type)\": use service_account, external_account or authorized_user (or no file on GKE, where the metadata server gives the pod's identity)")
        }
    }

    /// Google's own endpoints: https to `*.googleapis.com` or `accounts.google.com`. An emulator's
    /// stand-ins may be elsewhere, over https or to loopback.
    package static func requireTokenEndpoint(_ url: String, emulator: Bool, what: String) throws {
        try SecureURL.require(url, what: what)
        guard !emulator else { return }
        let host = URLComponents(string: url)?.host?.lowercased() ?? ""
        guard URLComponents(string: url)?.scheme?.lowercased() == "https",
              host == "accounts.google.com" || host.hasSuffix(".googleapis.com") else {
            throw CNBackupError(.invalidInput, "\(what) \(url) is not one of Google's endpoints (https://*.googleapis.com): a credentials file may not send its secrets elsewhere unless an emulator is configured (STORAGE_EMULATOR_HOST)")
        }
    }

    static func impersonatedEmail(_ url: String) -> String? {
        guard let range = url.range(of: "/serviceAccounts/"), let end = url.range(of: ":generateAccessToken") else { return nil }
        return String(url[range.upperBound..<end.lowerBound])
    }

    // MARK: - Tokens

    /// A bearer token valid for a while yet, or nil for anonymous (emulator) requests.
    public func token(now: Date = Date()) throws -> String? {
        if case .anonymous = source { return nil }
        lock.lock(); defer { lock.unlock() }
        // Refresh five minutes before expiry, or at three quarters of a short lifetime.
        if let cached, let expiry, expiry.timeIntervalSince(now) > min(300, lifetime / 4) { return cached }
        let (token, expires) = try fetch(now: now)
        cached = token
        expiry = expires
        lifetime = max(1, expires.timeIntervalSince(now))
        return token
    }

    /// The server refused `token` (401): the next `token()` fetches a fresh one.
    public func invalidate(_ token: String?) {
        lock.lock(); defer { lock.unlock() }
        if let token, token == cached { cached = nil; expiry = nil }
    }

    /// The token last handed out, for redacting messages; nil before the first request.
    package var lastKnown: String? {
        lock.lock(); defer { lock.unlock() }
        return cached
    }

    private func fetch(now: Date) throws -> (String, Date) {
        switch source {
        case .serviceAccount(let email, let keyId, let tokenURL, let keyFile):
            var assertion = try Self.signedAssertion(email: email, keyId: keyId, audience: tokenURL, keyFile: keyFile, now: now)
            defer { wipe(&assertion) }
            var form = Array("grant_type=\(Self.formEncode("urn:ietf:params:oauth:grant-type:jwt-bearer"))&assertion=".utf8) + assertion
            defer { wipe(&form) }
            return try oauthToken(url: tokenURL, form: form, now: now, what: "the token endpoint for service account \(email)",
                                  hint: "check that the key is not disabled or deleted (gcloud iam service-accounts keys list) and this host's clock")
        case .authorizedUser(let file, let tokenURL):
            guard let data = FileManager.default.contents(atPath: file),
                  let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
                  let id = object["client_id"] as? String, let secret = object["client_secret"] as? String,
                  let refresh = object["refresh_token"] as? String else {
                throw CNBackupError(.invalidInput, "cannot read the user credentials in \(file)")
            }
            var form = Array("grant_type=refresh_token&client_id=\(Self.formEncode(id))&client_secret=\(Self.formEncode(secret))&refresh_token=\(Self.formEncode(refresh))".utf8)
            defer { wipe(&form) }
            return try oauthToken(url: tokenURL, form: form, now: now, what: "the token endpoint for the user credentials in \(file)",
                                  hint: "log in again: gcloud auth application-default login")
        case .externalAccount(let account):
            return try federatedToken(account, now: now)
        case .metadata(let host):
            return try metadataToken(host: host, now: now)
        case .anonymous:
            throw CNBackupError(.authentication, "no credentials")
        }
    }

    /// The JWT a service-account key signs: `iss` the account, `aud` the token endpoint, one hour.
    package static func signedAssertion(email: String, keyId: String?, audience: String, keyFile: String, now: Date) throws -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: keyFile),
              let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
              let pem = object["private_key"] as? String else {
            throw CNBackupError(.invalidInput, "cannot read the private key of service-account key file \(keyFile)")
        }
        var pemBytes = Array(pem.utf8)
        defer { wipe(&pemBytes) }
        var header: [String: Any] = ["alg": "RS256", "typ": "JWT"]
        if let keyId { header["kid"] = keyId }
        let issued = Int(now.timeIntervalSince1970)
        let claims: [String: Any] = ["iss": email, "scope": storageScope, "aud": audience, "iat": issued, "exp": issued + 3600]
        let signingInput = base64URL(try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys]))
            + "." + base64URL(try JSONSerialization.data(withJSONObject: claims, options: [.sortedKeys, .withoutEscapingSlashes]))
        let signature: [UInt8]
        do {
            signature = try RS256.sign(pemPrivateKey: pemBytes, message: Array(signingInput.utf8))
        } catch let error as CNBackupError {
            throw CNBackupError(.invalidInput, "the private_key of service-account key file \(keyFile) cannot sign: \(error.message)")
        }
        return Array((signingInput + "." + base64URL(Data(signature))).utf8)
    }

    private func post(_ url: String, body: [UInt8], contentType: String, bearer: String? = nil, what: String) throws -> HTTPResponse {
        try RetryPolicy.storage.fetch({
            var request = HTTPRequest(method: "POST", url: url)
            request.headers = [("Content-Type", contentType), ("Accept", "application/json")]
            if let bearer { request.headers.append(("Authorization", "Bearer " + bearer)) }
            request.body = MemoryStream(body)
            request.bodyLength = Int64(body.count)
            return request
        }, caFile: caFile, limit: 1 << 20, what: what,
           timedOut: CNBackupError(.authentication, "\(what) did not answer in time"))
    }

    /// The `access_token` and `expires_in` of an OAuth answer; errors carry Google's `error` and
    /// `error_description` (they name what failed, never a secret of ours).
    private func oauthToken(url: String, form: [UInt8], now: Date, what: String, hint: String) throws -> (String, Date) {
        let response = try authenticationExchange(what: what) {
            try post(url, body: form, contentType: "application/x-www-form-urlencoded", what: what)
        }
        let object = (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any]
        guard response.status == 200, let token = object?["access_token"] as? String, !token.isEmpty else {
            throw CNBackupError(.authentication, "\(what) refused to give a token (HTTP \(response.status)): \(hint)",
                                cause: Self.oauthError(object))
        }
        let seconds = (object?["expires_in"] as? Double) ?? Double(object?["expires_in"] as? String ?? "") ?? 3600
        return (token, now.addingTimeInterval(seconds))
    }

    private func authenticationExchange(what: String, _ body: () throws -> HTTPResponse) throws -> HTTPResponse {
        do { return try body() } catch let error as CNBackupError where error.code == .capture {
            throw CNBackupError(.authentication, "\(what) could not be reached: \(error.message)", cause: error.cause)
        }
    }

    private static func oauthError(_ object: [String: Any]?) -> String? {
        if let error = object?["error"] as? String {
            return error + ((object?["error_description"] as? String).map { ": " + $0 } ?? "")
        }
        if let error = object?["error"] as? [String: Any] {
            return (error["status"] as? String ?? "") + ((error["message"] as? String).map { ": " + $0 } ?? "")
        }
        return nil
    }

    /// Workload identity federation: the subject token for a federated token at STS, then, when
    /// configured, that for a service account's token at the IAM credentials API.
    private func federatedToken(_ account: ExternalAccount, now: Date) throws -> (String, Date) {
        guard var raw = FileManager.default.contents(atPath: account.subjectTokenFile).map(Array.init) else {
            throw CNBackupError(.invalidInput, "cannot read the subject token file \(account.subjectTokenFile) (the external_account's credential_source.file): is the projected service-account token mounted?")
        }
        defer { wipe(&raw) }
        var subject: String
        if let field = account.subjectTokenField {
            guard let object = (try? JSONSerialization.jsonObject(with: Data(raw))) as? [String: Any],
                  let value = object[field] as? String else {
                throw CNBackupError(.invalidInput, "the subject token file \(account.subjectTokenFile) has no string field \"\(field)\"")
            }
            subject = value
        } else {
            subject = String(decoding: raw, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        guard !subject.isEmpty else {
            throw CNBackupError(.invalidInput, "the subject token file \(account.subjectTokenFile) is empty")
        }
        // The token goes in the POST body, never in the URL.
        var form = Array(("grant_type=\(Self.formEncode("urn:ietf:params:oauth:grant-type:token-exchange"))"
            + "&audience=\(Self.formEncode(account.audience))&scope=\(Self.formEncode(Self.cloudPlatformScope))"
            + "&requested_token_type=\(Self.formEncode("urn:ietf:params:oauth:token-type:access_token"))"
            + "&subject_token_type=\(Self.formEncode(account.subjectTokenType))&subject_token=\(Self.formEncode(subject))").utf8)
        subject = ""
        defer { wipe(&form) }
        let (federated, federatedExpiry) = try oauthToken(
            url: account.tokenURL, form: form, now: now, what: "STS \(account.tokenURL)",
            hint: "check the workload identity pool provider (its audience, issuer and attribute condition) against the token's claims")
        guard let impersonation = account.impersonationURL else { return (federated, federatedExpiry) }
        let email = Self.impersonatedEmail(impersonation) ?? impersonation
        let body = try JSONSerialization.data(withJSONObject: ["scope": [Self.storageScope], "lifetime": "\(account.lifetimeSeconds)s"])
        let what = "the IAM credentials API impersonating \(email)"
        let response = try authenticationExchange(what: what) {
            try post(impersonation, body: Array(body), contentType: "application/json", bearer: federated, what: what)
        }
        let object = (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any]
        guard response.status == 200, let token = object?["accessToken"] as? String, !token.isEmpty,
              let expires = (object?["expireTime"] as? String).flatMap(Timestamp.parse) else {
            throw CNBackupError(.authentication,
                "\(what) refused to give a token (HTTP \(response.status)): grant the pool's principal roles/iam.workloadIdentityUser on \(email)",
                cause: Self.oauthError(object))
        }
        return (token, expires)
    }

    private func metadataToken(host: String, now: Date) throws -> (String, Date) {
        let url = "http://\(host)/computeMetadata/v1/instance/service-accounts/default/token"
        let response: HTTPResponse
        do {
            // Short timeouts: off Google Cloud the name does not resolve, and a run should say so at once.
            let client = HTTPClient(options: HTTPClientOptions(connectTimeoutSeconds: 3, totalTimeoutSeconds: 15))
            response = try RetryPolicy(maxAttempts: 3, baseDelay: 0.2, maxDelay: 1).run { _, _ in
                do {
                    let answer = try client.perform(HTTPRequest(method: "GET", url: url, headers: [("Metadata-Flavor", "Google")]), limit: 1 << 20)
                    return RetryPolicy.isRetryable(status: answer.status) ? .retry(CNBackupError(.authentication, "HTTP \(answer.status)")) : .success(answer)
                } catch let error as HTTPTransportError where error.isRetryable {
                    return .retry(error)
                }
            }
        } catch {
            throw CNBackupError(.authentication,
                "no Google credentials: GOOGLE_APPLICATION_CREDENTIALS is not set, there is no gcloud application-default login, and the metadata server at \(host) did not answer; on GKE, enable Workload Identity and annotate the Kubernetes service account with iam.gke.io/gcp-service-account, elsewhere set GOOGLE_APPLICATION_CREDENTIALS to an external_account (workload identity federation) or service-account key file",
                cause: "\(error)")
        }
        // Whatever answers must say it is the metadata server, as Google's libraries require.
        guard response.header("metadata-flavor") == "Google" else {
            throw CNBackupError(.authentication, "the server at \(host) answered without Metadata-Flavor: Google: it is not the metadata server")
        }
        let object = (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any]
        guard response.status == 200, let token = object?["access_token"] as? String, !token.isEmpty else {
            throw CNBackupError(.authentication,
                "the metadata server at \(host) gave no token (HTTP \(response.status)): on GKE, check that the Kubernetes service account is bound to a Google service account (roles/iam.workloadIdentityUser) and annotated with iam.gke.io/gcp-service-account")
        }
        let seconds = (object?["expires_in"] as? Double) ?? 3600
        return (token, now.addingTimeInterval(seconds))
    }

    package static func formEncode(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics; allowed.insert(charactersIn: "-._~")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }

    package static func base64URL(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}

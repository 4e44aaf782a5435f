import Foundation
import CNBackupCore
import CNBackupHTTP

/// Where a store gets its credentials, refreshed before they expire during long runs.
///
/// Fixed credentials (environment variables, the shared credentials file) never change. Web
/// identity (`AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`, as EKS gives a pod through IRSA)
/// exchanges the token file's current content for temporary credentials with STS
/// AssumeRoleWithWebIdentity, and again five minutes before they expire.
public final class S3CredentialProvider: @unchecked Sendable {
    // @unchecked: `cached` and `expiry` are only touched under `lock`.
    package struct WebIdentity: Sendable {
        package var tokenFile: String
        package var roleArn: String
        package var sessionName: String
        package var stsEndpoint: String
        package var caFile: String?
    }

    private let fixed: S3Credentials?
    private let webIdentity: WebIdentity?
    private let lock = NSLock()
    private var cached: S3Credentials?
    private var expiry: Date?
    package static let refreshMargin: TimeInterval = 300

    public init(fixed: S3Credentials) {
        self.fixed = fixed; self.webIdentity = nil
    }

    package init(webIdentity: WebIdentity) {
        self.fixed = nil; self.webIdentity = webIdentity
    }

    /// The AWS tools' order: access keys in the environment, then web identity, then the shared
    /// credentials file.
    public static func fromEnvironment(region: String, caFile: String? = nil,
                                       _ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> S3CredentialProvider {
        if environment["AWS_ACCESS_KEY_ID"].map({ !$0.isEmpty }) == true {
            return S3CredentialProvider(fixed: try S3Credentials.fromEnvironment(environment))
        }
        if let tokenFile = environment["AWS_WEB_IDENTITY_TOKEN_FILE"], !tokenFile.isEmpty,
           let roleArn = environment["AWS_ROLE_ARN"], !roleArn.isEmpty {
            let custom = environment["AWS_ENDPOINT_URL_STS"]
            if let custom { try SecureURL.require(custom, what: "AWS_ENDPOINT_URL_STS") }
            let endpoint = custom ?? "https://sts.\(region == "auto" ? "us-east-1" : region).amazonaws.com"
            return S3CredentialProvider(webIdentity: WebIdentity(
                tokenFile: tokenFile, roleArn: roleArn,
                sessionName: environment["AWS_ROLE_SESSION_NAME"] ?? "cnbackup-\(getpid())",
                // The store's CA file is for the store; AWS's own STS is verified against the system's CAs.
                stsEndpoint: endpoint, caFile: custom == nil ? nil : caFile))
        }
        return S3CredentialProvider(fixed: try S3Credentials.fromEnvironment(environment))
    }

    /// Credentials valid for at least the refresh margin.
    public func current(now: Date = Date()) throws -> S3Credentials {
        if let fixed { return fixed }
        lock.lock(); defer { lock.unlock() }
        if let cached, let expiry, expiry.timeIntervalSince(now) > Self.refreshMargin { return cached }
        let (credentials, expires) = try assumeRole()
        cached = credentials
        expiry = expires
        return credentials
    }

    /// The credentials last handed out, for redacting messages; nil before the first request.
    package var lastKnown: S3Credentials? {
        if let fixed { return fixed }
        lock.lock(); defer { lock.unlock() }
        return cached
    }

    private func assumeRole() throws -> (S3Credentials, Date) {
        guard let web = webIdentity else { throw CNBackupError(.invalidInput, "no web identity configured") }
        guard var token = FileManager.default.contents(atPath: web.tokenFile).map(Array.init) else {
            throw CNBackupError(.invalidInput, "cannot read the web identity token file \(web.tokenFile) (AWS_WEB_IDENTITY_TOKEN_FILE)")
        }
        defer { wipe(&token) }
        while let last = token.last, last == 0x0A || last == 0x0D || last == 0x20 { token.removeLast() }
        func encode(_ s: String) -> String {
            var allowed = CharacterSet.alphanumerics; allowed.insert(charactersIn: "-._~")
            return s.addingPercentEncoding(withAllowedCharacters: allowed) ?? s
        }
        // The token goes in the POST body, never in the URL (which proxies and logs may keep).
        var form = Array(("Action=AssumeRoleWithWebIdentity&Version=2011-06-15&DurationSeconds=3600&RoleArn=\(encode(web.roleArn))"
            + "&RoleSessionName=\(encode(web.sessionName))&WebIdentityToken=").utf8)
        form += Array(encode(String(decoding: token, as: UTF8.self)).utf8)
        defer { wipe(&form) }
        var request = HTTPRequest(method: "POST", url: web.stsEndpoint)
        request.headers = [("Content-Type", "application/x-www-form-urlencoded"), ("Accept", "application/xml")]
        request.body = MemoryStream(form)
        request.bodyLength = Int64(form.count)
        let response: HTTPResponse
        do {
            response = try HTTPClient(options: HTTPClientOptions(caFile: web.caFile)).perform(request, limit: 1 << 20)
        } catch let error as HTTPTransportError {
            throw CNBackupError(.authentication, "STS \(web.stsEndpoint) could not be reached: \(error.message)")
        }
        let root = S3XMLElement.parse(response.body)
        guard response.status == 200,
              let credentials = root?.child("AssumeRoleWithWebIdentityResult")?.child("Credentials"),
              let id = credentials.value("AccessKeyId"), let secret = credentials.value("SecretAccessKey"),
              let session = credentials.value("SessionToken"),
              let expiration = credentials.value("Expiration").flatMap(Timestamp.parse) else {
            let code = root?.child("Error")?.value("Code") ?? "HTTP \(response.status)"
            throw CNBackupError(.authentication,
                "STS AssumeRoleWithWebIdentity for \(web.roleArn) failed (\(code)): check the role's trust policy and the service account's annotation")
        }
        return (S3Credentials(accessKeyId: id, secretAccessKey: secret, sessionToken: session), expiration)
    }
}

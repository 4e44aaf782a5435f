import Foundation
import CNBackupCore
import CNBackupHTTP

/// Access keys for S3 and other AWS-style services. `description` and the mirror never show the
/// secret or the session token, so a stray `print` or `dump` cannot leak them.
public struct S3Credentials: Sendable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public var accessKeyId: String
    public var secretAccessKey: String
    public var sessionToken: String?

    public init(accessKeyId: String, secretAccessKey: String, sessionToken: String? = nil) {
        self.accessKeyId = accessKeyId; self.secretAccessKey = secretAccessKey; self.sessionToken = sessionToken
    }

    public var description: String { "S3Credentials(accessKeyId: \(accessKeyId), secret: <redacted>)" }
    public var debugDescription: String { description }
    public var customMirror: Mirror { Mirror(self, children: ["accessKeyId": accessKeyId], displayStyle: .struct) }
}

/// AWS Signature Version 4, header variant (the `Authorization` header).
/// https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html
package struct SigV4Signer: Sendable {
    package var region: String
    package var service: String
    /// Generic AWS services remove `.`/`..` and empty segments from the path before signing; S3
    /// signs the path exactly as sent (a key may contain `//`).
    package var normalizePath: Bool
    /// Generic AWS services URI-encode the (already encoded) wire path once more; S3 does not.
    package var doubleEncodePath: Bool
    /// Send `x-amz-content-sha256` (S3 requires it; the generic suite asks for it with sign_body).
    package var addContentSHA256Header: Bool
    /// Add `x-amz-security-token` after signing instead of signing it (some STS-era services).
    package var omitSessionTokenFromSignature = false

    package init(region: String, service: String, normalizePath: Bool, doubleEncodePath: Bool,
                 addContentSHA256Header: Bool, omitSessionTokenFromSignature: Bool = false) {
        self.region = region; self.service = service; self.normalizePath = normalizePath
        self.doubleEncodePath = doubleEncodePath; self.addContentSHA256Header = addContentSHA256Header
        self.omitSessionTokenFromSignature = omitSessionTokenFromSignature
    }

    package static let emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    package static let unsignedPayload = "UNSIGNED-PAYLOAD"

    package struct Result {
        package var canonicalRequest: String
        package var stringToSign: String
        package var signature: String
        /// The request's headers with `x-amz-date`, `x-amz-content-sha256`, the session token and
        /// `Authorization` added. Holds secrets (the token, the signature): never log these.
        package var headers: [(String, String)]
    }

    /// - Parameters:
    ///   - path: the path as it goes on the wire (percent-encoded for S3 by `uriEncode`).
    ///   - query: decoded name/value pairs; the signer encodes them (`canonicalQuery`).
    ///   - headers: every header to sign, `Host` included.
    ///   - payloadHash: hex SHA-256 of the body, or `UNSIGNED-PAYLOAD`.
    package func sign(method: String, path: String, query: [(String, String)], headers: [(String, String)],
              payloadHash: String, date: Date, credentials: S3Credentials) throws -> Result {
        let stamp = Self.timestamp(date)
        let day = String(stamp.prefix(8))
        var headers = headers
        headers.append(("X-Amz-Date", stamp))
        if addContentSHA256Header { headers.append(("x-amz-content-sha256", payloadHash)) }
        if let token = credentials.sessionToken, !omitSessionTokenFromSignature {
            headers.append(("X-Amz-Security-Token", token))
        }

        // Canonical headers: lower-case names, sorted; values trimmed with inner runs of
        // whitespace (line folds included) collapsed; repeated names joined with commas.
        var merged: [String: [String]] = [:]
        for (name, value) in headers {
            let collapsed = value.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" })
                .joined(separator: " ")
            merged[name.lowercased(), default: []].append(collapsed)
        }
        let names = merged.keys.sorted()
        let canonicalHeaders = names.map { "\($0):\(merged[$0]!.joined(separator: ","))\n" }.joined()
        let signedHeaders = names.joined(separator: ";")

        var canonicalPath = path.isEmpty ? "/" : path
        if normalizePath { canonicalPath = Self.normalize(canonicalPath) }
        if doubleEncodePath { canonicalPath = Self.uriEncode(canonicalPath, keepSlash: true) }

        let canonicalRequest = [method, canonicalPath, Self.canonicalQuery(query), canonicalHeaders,
                                signedHeaders, payloadHash].joined(separator: "\n")
        let scope = "\(day)/\(region)/\(service)/aws4_request"
        let stringToSign = ["AWS4-HMAC-SHA256", stamp, scope,
                            SHA256Hasher.hash(Array(canonicalRequest.utf8)).hex].joined(separator: "\n")
        var key = try hmacSHA256(key: Array("AWS4\(credentials.secretAccessKey)".utf8), data: Array(day.utf8))
        defer { wipe(&key) }
        for part in [region, service, "aws4_request"] { key = try hmacSHA256(key: key, data: Array(part.utf8)) }
        let signature = try hmacSHA256(key: key, data: Array(stringToSign.utf8)).hex

        if let token = credentials.sessionToken, omitSessionTokenFromSignature {
            headers.append(("X-Amz-Security-Token", token))
        }
        headers.append(("Authorization", "AWS4-HMAC-SHA256 Credential=\(credentials.accessKeyId)/\(scope), "
                        + "SignedHeaders=\(signedHeaders), Signature=\(signature)"))
        return Result(canonicalRequest: canonicalRequest, stringToSign: stringToSign,
                      signature: signature, headers: headers)
    }

    /// `YYYYMMDD'T'HHMMSS'Z'` in UTC.
    package static func timestamp(_ date: Date) -> String {
        var t = time_t(floor(date.timeIntervalSince1970))
        var parts = tm()
        gmtime_r(&t, &parts)
        return String(format: "%04d%02d%02dT%02d%02d%02dZ", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1,
                      Int(parts.tm_mday), Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec))
    }

    /// RFC 3986 percent-encoding as SigV4 wants it: only unreserved characters stay as they are.
    package static func uriEncode(_ text: String, keepSlash: Bool) -> String {
        let hexDigits = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"),
                 UInt8(ascii: "."), UInt8(ascii: "~"):
                out.append(byte)
            case UInt8(ascii: "/") where keepSlash:
                out.append(byte)
            default:
                out.append(UInt8(ascii: "%")); out.append(hexDigits[Int(byte >> 4)]); out.append(hexDigits[Int(byte & 15)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Encoded `name=value` pairs sorted by name then value, joined with `&`; the same string
    /// serves as the request's query, so what is signed is what is sent.
    package static func canonicalQuery(_ items: [(String, String)]) -> String {
        items.map { (uriEncode($0.0, keepSlash: false), uriEncode($0.1, keepSlash: false)) }
            .sorted { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }
            .map { "\($0.0)=\($0.1)" }
            .joined(separator: "&")
    }

    /// Removes `.`, `..` and empty segments, keeping a trailing slash.
    package static func normalize(_ path: String) -> String {
        var segments: [Substring] = []
        for segment in path.split(separator: "/", omittingEmptySubsequences: true) {
            if segment == "." { continue }
            if segment == ".." { _ = segments.popLast(); continue }
            segments.append(segment)
        }
        var result = "/" + segments.joined(separator: "/")
        if path.hasSuffix("/") && result != "/" { result += "/" }
        return result
    }
}

import Foundation
import Testing
import CNBackupCore
import CNBackupTestKit
import CNBackupHTTP
import CNBackupStorage

/// The AWS SigV4 test suite (from aws-c-auth, Apache-2.0, see Resources/aws-sigv4-suite/LICENSE):
/// every case's canonical request, string to sign and signature must match, header variant.
@Suite struct SigV4SuiteTests {
    struct Context: Decodable {
        struct Credentials: Decodable { let access_key_id: String; let secret_access_key: String; let token: String? }
        let credentials: Credentials
        let normalize: Bool
        let region: String
        let service: String
        let sign_body: Bool
        let timestamp: String
        let omit_session_token: Bool?
    }

    /// Foundation on Linux treats the bundle's `Resources` folder as its resource directory, on
    /// macOS it is one level below: look in both.
    static var suiteDirectory: URL {
        let candidates = [Bundle.module.bundleURL.appendingPathComponent("Resources/aws-sigv4-suite"),
                          Bundle.module.resourceURL?.appendingPathComponent("aws-sigv4-suite"),
                          Bundle.module.resourceURL?.appendingPathComponent("Resources/aws-sigv4-suite")]
        return candidates.compactMap { $0 }.first { FileManager.default.fileExists(atPath: $0.path) }
            ?? candidates[0]!
    }

    static let caseNames: [String] = {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: suiteDirectory.path)) ?? []
        return names.filter { !$0.hasPrefix(".") && $0 != "LICENSE" }.sorted()
    }()

    @Test func suiteIsPresent() {
        #expect(Self.caseNames.count >= 38)
    }

    @Test(arguments: caseNames)
    func headerSigning(_ name: String) throws {
        let dir = Self.suiteDirectory.appendingPathComponent(name)
        func text(_ file: String) throws -> String {
            try String(contentsOf: dir.appendingPathComponent(file), encoding: .utf8)
        }
        let context = try JSONDecoder().decode(Context.self, from: Data(contentsOf: dir.appendingPathComponent("context.json")))

        // request.txt: request line, headers (continuation lines start with whitespace), blank line, body.
        let raw = try text("request.txt")
        let (head, body): (Substring, Substring) = {
            if let r = raw.range(of: "\n\n") { return (raw[..<r.lowerBound], raw[r.upperBound...]) }
            return (Substring(raw), "")
        }()
        var lines = head.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let requestLine = lines.removeFirst().split(separator: " ")
        let method = String(requestLine[0])
        let target = requestLine[1..<(requestLine.count - 1)].joined(separator: " ")
        var headers: [(String, String)] = []
        for line in lines where !line.isEmpty {
            if line.first == " " || line.first == "\t" {
                headers[headers.count - 1].1 += "\n" + line
            } else if let colon = line.firstIndex(of: ":") {
                headers.append((String(line[..<colon]), String(line[line.index(after: colon)...])))
            }
        }
        let path: String
        var query: [(String, String)] = []
        if let q = target.firstIndex(of: "?") {
            path = String(target[..<q])
            for item in target[target.index(after: q)...].split(separator: "&") {
                let pair = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                let decode = { (s: Substring) in s.removingPercentEncoding ?? String(s) }
                query.append((decode(pair[0]), pair.count > 1 ? decode(pair[1]) : ""))
            }
        } else {
            path = target
        }

        let signer = SigV4Signer(region: context.region, service: context.service,
                                 normalizePath: context.normalize, doubleEncodePath: true,
                                 addContentSHA256Header: context.sign_body,
                                 omitSessionTokenFromSignature: context.omit_session_token ?? false)
        let date = try #require(ISO8601DateFormatter().date(from: context.timestamp))
        let credentials = S3Credentials(accessKeyId: context.credentials.access_key_id,
                                        secretAccessKey: context.credentials.secret_access_key,
                                        sessionToken: context.credentials.token)
        let result = try signer.sign(method: method, path: path, query: query, headers: headers,
                                     payloadHash: SHA256Hasher.hash(Array(body.utf8)).hex,
                                     date: date, credentials: credentials)
        #expect(result.canonicalRequest == (try text("header-canonical-request.txt")))
        #expect(result.stringToSign == (try text("header-string-to-sign.txt")))
        #expect(result.signature == (try text("header-signature.txt")).trimmingCharacters(in: .whitespacesAndNewlines))
        let authorization = try #require(result.headers.last(where: { $0.0 == "Authorization" })?.1)
        #expect((try text("header-signed-request.txt")).contains("Authorization:" + authorization))
    }

    @Test func s3PathIsEncodedOnce() {
        #expect(SigV4Signer.uriEncode("a b/ሴ~x", keepSlash: true) == "a%20b/%E1%88%B4~x")
        #expect(SigV4Signer.canonicalQuery([("prefix", "a/b c"), ("list-type", "2")]) == "list-type=2&prefix=a%2Fb%20c")
    }

    @Test func credentialsNeverPrintSecrets() {
        let c = S3Credentials(accessKeyId: "AKID", secretAccessKey: "SECRETSECRET", sessionToken: "TOKENTOKEN")
        var dumped = ""
        dump(c, to: &dumped)
        for shown in ["\(c)", String(reflecting: c), dumped] {
            #expect(!shown.contains("SECRETSECRET") && !shown.contains("TOKENTOKEN"))
        }
    }
}

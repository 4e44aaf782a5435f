import Foundation
import Testing
import CNBackupCore
import CNBackupTestKit
import CNBackupHTTP
import CNBackupStorage

/// Web identity against a stand-in STS (a small Python server) that records what it is sent.
@Suite struct WebIdentityTests {
    /// Starts the stand-in, which serves for 15 seconds; its credentials expire `lifetime`
    /// seconds after each call.
    func startSTS(dir: String, lifetime: Int) throws -> String {
        let script = """
        import http.server, sys, datetime
        log = sys.argv[1]; lifetime = int(sys.argv[2]); calls = [0]
        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers['Content-Length'])).decode()
                calls[0] += 1
                open(log, 'a').write(self.path + ' ' + body + '\\n')
                exp = (datetime.datetime.utcnow() + datetime.timedelta(seconds=lifetime)).strftime('%Y-%m-%dT%H:%M:%SZ')
                xml = ('<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials>'
                       '<AccessKeyId>ASIA%d</AccessKeyId><SecretAccessKey>secret-%d</SecretAccessKey>'
                       '<SessionToken>session-%d</SessionToken><Expiration>%s</Expiration>'
                       '</Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>') % (calls[0], calls[0], calls[0], exp)
                self.send_response(200); self.send_header('Content-Length', str(len(xml))); self.end_headers()
                self.wfile.write(xml.encode())
            def log_message(self, *a): pass
        s = http.server.HTTPServer(('127.0.0.1', 0), H)
        print(s.server_address[1], flush=True)
        # Ends by itself: a test that fails half-way leaves no server behind.
        import time
        end = time.time() + 15
        s.timeout = 0.2
        while time.time() < end:
            s.handle_request()
        """
        return try startPythonServer(script, arguments: [dir + "/sts.log", "\(lifetime)"]) + "/"
    }

    @Test func assumesTheRoleAndRefreshesBeforeExpiry() throws {
        try withTemporaryDirectory { dir in
            try "eyJ-web-identity-token".write(toFile: dir + "/token", atomically: true, encoding: .utf8)
            for (lifetime, expectedCalls) in [(3600, 1), (60, 2)] {
                try? FileManager.default.removeItem(atPath: dir + "/sts.log")
                let endpoint = try startSTS(dir: dir, lifetime: lifetime)
                let provider = try S3CredentialProvider.fromEnvironment(region: "eu-central-1", caFile: nil, [
                    "AWS_WEB_IDENTITY_TOKEN_FILE": dir + "/token", "AWS_ROLE_ARN": "arn:aws:iam::1:role/cnbackup-writer",
                    "AWS_ENDPOINT_URL_STS": endpoint, "HOME": dir,
                ])
                let first = try provider.current()
                #expect(first.accessKeyId == "ASIA1" && first.sessionToken == "session-1")
                let second = try provider.current()
                // Credentials valid for an hour are reused; ones expiring within the margin are renewed.
                #expect(second.accessKeyId == "ASIA\(expectedCalls)")
                let log = try String(contentsOfFile: dir + "/sts.log", encoding: .utf8).split(separator: "\n")
                #expect(log.count == expectedCalls)
                #expect(log[0].contains("Action=AssumeRoleWithWebIdentity") && log[0].contains("RoleArn=arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fcnbackup-writer"))
                // The token travels in the body, not in the URL.
                #expect(log[0].hasPrefix("/ ") && log[0].contains("WebIdentityToken=eyJ-web-identity-token"))
            }
        }
    }

    @Test func accessKeysInTheEnvironmentComeFirst() throws {
        let provider = try S3CredentialProvider.fromEnvironment(region: "us-east-1", caFile: nil, [
            "AWS_ACCESS_KEY_ID": "AKIA", "AWS_SECRET_ACCESS_KEY": "s", "AWS_WEB_IDENTITY_TOKEN_FILE": "/nonexistent", "AWS_ROLE_ARN": "arn",
        ])
        #expect(try provider.current().accessKeyId == "AKIA")
    }
}

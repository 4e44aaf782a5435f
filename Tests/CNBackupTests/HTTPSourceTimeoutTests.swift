import Foundation
import Testing
@testable import CNBackup
import CNBackupCore
import CNBackupHTTP
import CNBackupStorage

/// An identities endpoint that answers, sends a little, then stalls: the capture fails within its
/// `timeout` instead of holding the run (curl's stall limit alone would wait 120 s per attempt).
@Suite struct HTTPSourceTimeoutTests {
    @Test func aStallingEndpointFailsTheCaptureWithinItsTimeout() throws {
        try withTemporaryDirectory { dir in
            let f = try Fixture(dir: dir)
            let server = try startPythonServer("""
            import http.server, time, sys
            class H(http.server.BaseHTTPRequestHandler):
                def do_GET(self):
                    self.send_response(200); self.send_header('Content-Length', '100000'); self.end_headers()
                    self.wfile.write(b'{"id": "participant::1220", '); self.wfile.flush()
                    time.sleep(20)
                def log_message(self, *a): pass
            s = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H)
            print(s.server_address[1], flush=True)
            s.timeout = 0.2
            end = time.time() + 25
            while time.time() < end:
                s.handle_request()
            """, arguments: [])
            try "token-\(UUID().uuidString)".write(toFile: dir + "/token", atomically: true, encoding: .utf8)
            let definition = try f.pipeline("""
              - name: identities
                role: identities
                http: { url: "\(server)/api/validator/v0/admin/participant/identities", tokenFile: "\(dir)/token", timeout: 2s }
              - { name: other, role: other, command: [ "printf", "x" ] }
            """)
            let started = Date()
            let result = try f.run(definition)
            #expect(Date().timeIntervalSince(started) < 15)
            #expect(!result.isComplete)
            let failure = try #require(result.manifest.failures.first { $0.component == "identities" })
            #expect(failure.reason.contains("timed out") || failure.reason.contains("timeout"), "\(failure.reason)")
            #expect(result.manifest.components.map(\.name) == ["other"])
        }
    }

    @Test func aBadTimeoutIsRefusedWithItsPlace() throws {
        try withTemporaryDirectory { dir in
            let f = try Fixture(dir: dir)
            let error = #expect(throws: CNBackupError.self) {
                try f.pipeline("""
                  - name: identities
                    role: identities
                    http: { url: "https://sv.example.com/api/sv/v0/admin/domain/identities-dump", tokenFile: "/t", timeout: soon }
                """)
            }
            #expect(error?.message.contains("timeout") == true, "\(String(describing: error))")
        }
    }
}

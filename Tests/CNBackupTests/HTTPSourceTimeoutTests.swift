import Foundation
import Testing
@testable import CNBackup
import CNBackupCore
import CNBackupTestKit
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

/// Scan's active synchronizer serial as a check on the pipeline's epoch.
@Suite struct ScanEpochTests {
    func scan(serial: Int) throws -> String {
        try startPythonServer("""
        import http.server, json, time
        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path != '/api/scan/v0/active-synchronizer-serial':
                    self.send_response(404); self.send_header('Content-Length', '0'); self.end_headers(); return
                body = json.dumps({'serial': \(serial)}).encode()
                self.send_response(200); self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(body))); self.end_headers(); self.wfile.write(body)
            def log_message(self, *a): pass
        s = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H)
        print(s.server_address[1], flush=True)
        s.timeout = 0.2
        end = time.time() + 30
        while time.time() < end:
            s.handle_request()
        """, arguments: [])
    }

    @Test func aPipelineBehindScansSerialIsRefusedBeforeAnythingRuns() throws {
        try withTemporaryDirectory { dir in
            let f = try Fixture(dir: dir)
            var definition = try f.pipeline("  - { name: x, role: other, command: [ \"printf\", \"x\" ] }")
            definition.scanURL = try scan(serial: 3)   // the pipeline says serial 2
            let error = #expect(throws: CNBackupError.self) { try f.run(definition) }
            #expect(error?.message.contains("active physical synchronizer serial 3") == true, "\(String(describing: error))")
            #expect(try f.catalog.entries().isEmpty)
            definition.scanURL = try scan(serial: 2)
            #expect(try f.run(definition).isComplete)
        }
    }

    @Test func scanURLsMustBeHTTPS() throws {
        let error = #expect(throws: CNBackupError.self) {
            try PipelineDefinition.parse("""
            version: 1
            node: { name: n, kind: generic }
            epoch: { migrationId: 4, serial: 1, scanUrl: "http://scan.example.com" }
            store: { url: "file:///tmp/x" }
            encryption: { recipients: [ "cnb1-x25519-pub-5Kx4253ztnZ4V8S1NRbyswvudM8iOYU6y0ZxT34V8D5ifaCl" ] }
            signing: { keyFile: /k }
            captures: [ { name: x, role: other, command: [ "true" ] } ]
            """)
        }
        #expect(error?.message.contains("https") == true, "\(String(describing: error))")
    }
}

extension ScanEpochTests {
    /// Scan down is a warning, never a reason to skip the backup.
    @Test func aScanThatDoesNotAnswerDoesNotStopTheBackup() throws {
        try withTemporaryDirectory { dir in
            let f = try Fixture(dir: dir)
            var definition = try f.pipeline("  - { name: x, role: other, command: [ \"printf\", \"x\" ] }")
            definition.scanURL = "http://127.0.0.1:1"
            #expect(try f.run(definition).isComplete)
        }
    }
}

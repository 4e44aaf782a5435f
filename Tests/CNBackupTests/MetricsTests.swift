import Foundation
import Logging
import Testing
@testable import CNBackup
import CNBackupCore
import CNBackupTestKit
import CNBackupHTTP
import CNBackupStorage
import CNBackupCatalog

@Suite struct MetricsTests {
    /// A stand-in Pushgateway (Python) that logs each request's method, path and body, answers
    /// with the statuses given in turn (then 200), and ends by itself after 15 seconds.
    func startGateway(dir: String, statuses: [Int] = []) throws -> String {
        let script = """
        import http.server, sys, time
        log = sys.argv[1]; statuses = [int(x) for x in sys.argv[2].split(',') if x]
        class H(http.server.BaseHTTPRequestHandler):
            def do_PUT(self):
                body = self.rfile.read(int(self.headers['Content-Length'])).decode()
                open(log, 'a').write('PUT ' + self.path + ' ' + self.headers.get('Content-Type', '') + '\\n' + body + '\\n---\\n')
                code = statuses.pop(0) if statuses else 200
                self.send_response(code); self.send_header('Content-Length', '0'); self.end_headers()
            def log_message(self, *a): pass
        s = http.server.HTTPServer(('127.0.0.1', 0), H)
        print(s.server_address[1], flush=True)
        end = time.time() + 15
        s.timeout = 0.2
        while time.time() < end:
            s.handle_request()
        """
        return try startPythonServer(script, arguments: [dir + "/gateway.log", statuses.map(String.init).joined(separator: ",")])
    }

    @Test func freshnessIsPushedAsOneGroupPerNodeWithGaps() throws {
        try withTemporaryDirectory { dir in
            let f = try Fixture(dir: dir)
            let definition = try f.pipeline("  - { name: one, role: other, command: [ \"printf\", \"x\" ] }")
            var logger = Logger(label: "test"); logger.logLevel = .critical
            // Two complete sets 40 days apart: a gap for a 30-day retention period.
            _ = try BackupRunner(definition: definition, store: f.store, logger: logger, capturedAt: Date().addingTimeInterval(-41 * 86_400)).run()
            _ = try BackupRunner(definition: definition, store: f.store, logger: logger, capturedAt: Date().addingTimeInterval(-86_400)).run()
            let report = try FreshnessCheck(catalog: f.catalog).check(node: "node-1", maxAge: 2 * 86_400, retention: RetentionPolicy(retentionPeriod: 30 * 86_400))
            #expect(report.fresh)
            #expect(report.gaps?.count == 1)
            #expect(report.prometheusText.contains("cnbackup_history_gaps{node=\"node-1\"} 1"))
            #expect(try FreshnessCheck(catalog: f.catalog).check(node: "node-1", maxAge: 2 * 86_400).prometheusText.contains("cnbackup_history_gaps") == false)
            #expect(report.prometheusText.contains("cnbackup_last_success_epoch{node=\"node-1\",migration_id=\"4\",serial=\"2\"} 1"))

            let url = try startGateway(dir: dir, statuses: [503])
            try Pushgateway(url: url + "/").push(report.prometheusText, job: "cnbackup_freshness", node: "node-1")
            let log = try String(contentsOfFile: dir + "/gateway.log", encoding: .utf8)
            // The first answer was 503: the push was retried.
            #expect(log.components(separatedBy: "PUT /metrics/job/cnbackup_freshness/node/node-1 text/plain; version=0.0.4").count == 3)
            #expect(log.contains("cnbackup_backup_fresh{node=\"node-1\"} 1"))
        }
    }

    @Test func aRefusedPushSaysWhatToCheckAndInsecureGatewaysAreRefused() throws {
        try withTemporaryDirectory { dir in
            let url = try startGateway(dir: dir, statuses: [400])
            let error = #expect(throws: CNBackupError.self) { try Pushgateway(url: url).push("x 1\n", job: "cnbackup_run", node: "n") }
            #expect(error?.message.contains("HTTP 400") == true)
            #expect(throws: CNBackupError.self) { try Pushgateway(url: "http://metrics.example.com:9091") }
            #expect(throws: CNBackupError.self) { try Pushgateway(url: "ftp://127.0.0.1") }
        }
    }

    @Test func runMetricsNameEveryComponentAndAFailedRun() throws {
        try withTemporaryDirectory { dir in
            let f = try Fixture(dir: dir)
            let result = try f.run(try f.pipeline("""
              - { name: good, role: other, command: [ "printf", "fine" ] }
              - { name: bad, role: other, command: [ "sh", "-c", "exit 3" ] }
            """))
            let text = runMetricsText(node: "node-1", result: result, duration: 2.5)
            #expect(text.contains("cnbackup_run_success{node=\"node-1\"} 0"))
            #expect(text.contains("cnbackup_run_committed{node=\"node-1\"} 1"))
            #expect(text.contains("cnbackup_run_failed_components{node=\"node-1\"} 1"))
            #expect(text.contains("cnbackup_run_component_plaintext_bytes{node=\"node-1\",component=\"good\"} 4"))
            #expect(text.contains("cnbackup_run_duration_seconds{node=\"node-1\"} 2.500"))
            let nothing = runMetricsText(node: "a\"b", result: nil, duration: 1)
            #expect(nothing.contains("cnbackup_run_committed{node=\"a\\\"b\"} 0"))
            #expect(!nothing.contains("component"))
            try writeMetricsFile(text, to: dir + "/run.prom")
            #expect(try String(contentsOfFile: dir + "/run.prom", encoding: .utf8) == text)
        }
    }

    @Test func copyLagIsReportedPerNodeAndPerEpoch() throws {
        try withTemporaryDirectory { dir in
            let f = try Fixture(dir: dir)
            var logger = Logger(label: "test"); logger.logLevel = .critical
            let old = try f.pipeline("  - { name: one, role: other, command: [ \"printf\", \"x\" ] }")
            var new = old
            new.epoch = Epoch(migrationId: 5, serial: 0)
            let a = try BackupRunner(definition: old, store: f.store, logger: logger, capturedAt: Date().addingTimeInterval(-7200)).run()
            _ = try BackupRunner(definition: old, store: f.store, logger: logger, capturedAt: Date().addingTimeInterval(-3600)).run()
            _ = try BackupRunner(definition: new, store: f.store, logger: logger, capturedAt: Date().addingTimeInterval(-600)).run()
            // The copy has the new epoch's set and only the older of the old epoch's two.
            let copy = FileSystemStore(root: dir + "/copy")
            _ = try Copier(source: f.catalog, destination: copy).copy(setIds: [a.setId])
            let newest = try #require(try f.catalog.entries().map(\.setId).max())
            _ = try Copier(source: f.catalog, destination: copy).copy(setIds: [newest])
            let lags = try CopyLag.measure(source: f.catalog, destination: Catalog(store: copy, signers: [f.signer]))
            #expect(lags.count == 1 && lags[0].seconds == 0)
            let text = copyLagMetricsText(lags)
            #expect(text.contains("cnbackup_copy_lag_seconds{node=\"node-1\"} 0"))
            #expect(text.contains("cnbackup_copy_epoch_lag_seconds{node=\"node-1\",migration_id=\"5\",serial=\"0\"} 0"))
            #expect(text.contains("cnbackup_copy_epoch_lag_seconds{node=\"node-1\",migration_id=\"4\",serial=\"2\"} 3600"))
        }
    }
}

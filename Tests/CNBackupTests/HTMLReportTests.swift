import Foundation
import Logging
import Testing
@testable import CNBackup
import CNBackupCore
import CNBackupTestKit
import CNBackupStorage
import CNBackupCatalog

/// `report --html`: what the bucket's writer controls is shown as text, never as markup, and the
/// page runs and fetches nothing.
@Suite struct HTMLReportTests {
    let hostile = ["<script>alert(1)</script>", "\"><img src=x onerror=alert(2)>", "</svg><a href=\"https://evil.example/\">x</a>",
                   "'; @import url(https://evil.example/x.css);"]

    @Test func everythingTheWriterControlsIsEscapedAndNothingRuns() {
        let row = HTMLReport.SetRow(setId: hostile[0], node: hostile[1], epoch: hostile[2], captured: Date(), status: "untrusted",
                                    storedBytes: 1, durationSeconds: 1, components: [(name: hostile[3], bytes: 1, seconds: 1)],
                                    problems: hostile, lockedUntil: nil, drills: [])
        let page = HTMLReport(store: hostile[1], generated: Date(), sets: [row], gaps: [hostile[1]: [hostile[0]]], retentionPeriod: 86_400).render()
        for text in hostile { #expect(!page.contains(text), "\(text) appears unescaped") }
        #expect(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"))
        #expect(!page.lowercased().contains("<script"))
        // No element that loads anything, and a style sheet that imports nothing (the writer's text
        // is shown escaped, as text).
        #expect(!page.contains("<img") && !page.contains("<a ") && !page.contains("<link") && !page.contains("<iframe"))
        let style = page.components(separatedBy: "<style>")[1].components(separatedBy: "</style>")[0]
        #expect(!style.contains("@import") && !style.contains("url("))
        // The policy is the first thing in <head>, before anything it governs.
        let head = page.components(separatedBy: "<head>")[1]
        #expect(head.hasPrefix("\n<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"))
    }

    @Test func thePageShowsEverySetAndProblemTheCatalogHas() throws {
        try withTemporaryDirectory { dir in
            let f = try Fixture(dir: dir)
            var logger = Logger(label: "test"); logger.logLevel = .critical
            let definition = try f.pipeline("  - { name: one, role: other, command: [ \"printf\", \"x\" ] }")
            let a = try BackupRunner(definition: definition, store: f.store, logger: logger, capturedAt: Date().addingTimeInterval(-86_400)).run()
            let b = try BackupRunner(definition: definition, store: f.store, logger: logger).run()
            // A forged set: a manifest nobody pinned signed.
            let forged = "node-1/migration-4/serial-2/20261101T000000Z-0badf00d/manifest-00000000000000aa.json"
            try f.store.putBytes(key: forged, Array("{}".utf8))
            let report = try HTMLReport.collect(catalog: f.catalog, node: nil, drillSigners: [], retention: RetentionPolicy(retentionPeriod: 30 * 86_400))
            let page = report.render()
            for id in [a.setId, b.setId, "20261101T000000Z-0badf00d"] { #expect(page.contains(id)) }
            let untrusted = try #require(report.sets.first { $0.setId == "20261101T000000Z-0badf00d" })
            #expect(untrusted.status == "untrusted" && !untrusted.problems.isEmpty)
            for problem in untrusted.problems { #expect(page.contains(HTMLReport.escape(problem))) }
            #expect(report.sets.filter { $0.status == "complete" }.count == 2)
        }
    }
}

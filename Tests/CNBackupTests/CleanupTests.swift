import Foundation
import Testing
@testable import CNBackup
import CNBackupCore
import CNBackupTestKit
import CNBackupHTTP
import CNBackupStorage
import CNBackupCatalog

@Suite struct CleanupTests {
    @Test func removesOnlyOldOrphansNeverCommittedSets() throws {
        try withTemporaryDirectory { dir in
            let f = try Fixture(dir: dir)
            let committed = try f.run(try f.pipeline("  - { name: one, role: other, command: [ \"printf\", \"x\" ] }"))
            // An orphan: objects of a set whose run died before its manifest.
            let orphan = SetLayout(node: "node-1", epoch: Epoch(migrationId: 4, serial: 2), setId: "20260101T000000Z-00000001")
            try f.store.putBytes(key: orphan.key(relative: "apps.zst.cnb"), [1, 2, 3])
            try f.store.putBytes(key: orphan.key(relative: SetLayout.signatureName(of: SetLayout.legacyManifestName)), [4])

            // Young orphans may belong to a running backup: left alone.
            #expect(try Cleaner(store: f.store, olderThan: 3600).plan().orphanSets.isEmpty)
            let plan = try Cleaner(store: f.store, olderThan: 3600).plan(now: Date().addingTimeInterval(7200))
            #expect(plan.orphanSets.map(\.directory) == [orphan.directory])
            try Cleaner(store: f.store, olderThan: 3600).apply(plan)
            #expect(try f.store.list(prefix: orphan.directory + "/").isEmpty)
            #expect(try f.catalog.entry(setId: committed.setId).isCompleteBackup)
            // The object, its journal entry and signature, the manifest and its signature.
            #expect(try f.store.list(prefix: committed.layout.directory + "/").count == 5)
        }
    }

    @Test func durations() throws {
        #expect(try DurationText.parse("4h") == 14400)
        #expect(try DurationText.parse("30d") == 30 * 86400)
        #expect(throws: CNBackupError.self) { try DurationText.parse("soon") }
    }
}

import Foundation
import Logging
import Testing
@testable import CNBackup
import CNBackupCore
import CNBackupTestKit
import CNBackupHTTP
import CNBackupStorage
import CNBackupCatalog

@Suite struct PrunerTests {
    /// Commits a signed, complete set with no objects, captured `daysAgo` days ago.
    func commitSet(_ f: Fixture, daysAgo: Double) throws -> SetLayout {
        let start = Date().addingTimeInterval(-daysAgo * 86400)
        let layout = SetLayout(node: "node-1", epoch: Epoch(migrationId: 4, serial: 2), setId: try SetLayout.newSetId(start: start))
        let manifest = Manifest(formatVersion: 1, setId: layout.setId, node: NodeInfo(name: "node-1", kind: .generic),
                                epoch: layout.epoch, status: .complete, failures: [], toolVersion: "test",
                                captureStart: Timestamp.format(start), captureEnd: Timestamp.format(start), recovered: nil,
                                components: [], barrier: nil)
        try SetCommitter(store: f.store).commit(manifest, layout: layout, signingKey: try KeyFile.loadSigningKey(path: f.signingPath))
        return layout
    }

    @Test func thinsTheHistoryKeepingAChainAndDeletesManifestsFirst() throws {
        try withTemporaryDirectory { dir in
            let f = try Fixture(dir: dir)
            let layouts = try stride(from: 60.0, through: 0.5, by: -2.0).map { try commitSet(f, daysAgo: $0) }
            let policy = RetentionPolicy(retentionPeriod: 10 * 86400, margin: 86400, keepWithin: 3 * 86400, keepLast: 2)
            let pruner = Pruner(catalog: f.catalog, policy: policy)
            let (plan, entries) = try pruner.plan(node: "node-1")
            #expect(plan.refusedToDelete == nil && plan.gaps.isEmpty)
            #expect(!plan.deletedSetIds.isEmpty)
            #expect(plan.keptSetIds.contains(layouts.first!.setId) && plan.keptSetIds.contains(layouts.last!.setId))
            #expect(try pruner.apply(plan, entries: entries) == plan.deletedSetIds.count)
            let remaining = try f.catalog.entries(node: "node-1")
            #expect(Set(remaining.map(\.setId)) == Set(plan.keptSetIds))
            // Consecutive kept sets are never further apart than the retention period minus the margin.
            let times = remaining.compactMap { $0.manifest?.captureStartDate }.sorted()
            for (a, b) in zip(times, times.dropFirst()) { #expect(b.timeIntervalSince(a) <= 9 * 86400 + 1) }
            #expect(try f.store.list(prefix: layouts[1].directory + "/").isEmpty || plan.keptSetIds.contains(layouts[1].setId))
        }
    }

    @Test func deletesNothingWhileTheNewestSetIsNotSigned() throws {
        try withTemporaryDirectory { dir in
            let f = try Fixture(dir: dir)
            for days in stride(from: 60.0, through: 2, by: -2.0) { _ = try commitSet(f, daysAgo: days) }
            let newest = try commitSet(f, daysAgo: 0.1)
            try f.store.delete(keys: [try f.catalog.entry(setId: newest.setId).signatureKey])
            let pruner = Pruner(catalog: f.catalog, policy: RetentionPolicy(retentionPeriod: 10 * 86400, margin: 86400, keepWithin: 86400, keepLast: 1))
            let (plan, entries) = try pruner.plan(node: "node-1")
            #expect(plan.refusedToDelete != nil && plan.deletedSetIds.isEmpty)
            #expect(try pruner.apply(plan, entries: entries) == 0)
        }
    }

    @Test func reportsAGapInTheHistory() throws {
        try withTemporaryDirectory { dir in
            let f = try Fixture(dir: dir)
            _ = try commitSet(f, daysAgo: 40)
            _ = try commitSet(f, daysAgo: 1)
            let (plan, _) = try Pruner(catalog: f.catalog, policy: RetentionPolicy(retentionPeriod: 30 * 86400)).plan(node: "node-1")
            #expect(plan.gaps.count == 1)
        }
    }
}

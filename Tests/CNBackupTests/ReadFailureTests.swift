import Foundation
import Testing
@testable import CNBackup
import CNBackupCore
import CNBackupStorage
import CNBackupCatalog
import CNBackupTesting
import CNBackupTestKit

/// A read failure is one set's problem, and an outage is not an attack.
@Suite struct ReadFailureTests {
    /// Three signed, complete sets, two days apart, the oldest first in listings.
    func threeSets(_ f: Fixture, in store: any ObjectStore) throws -> [SetLayout] {
        try [5.0, 3.0, 1.0].map { daysAgo in
            let start = Date().addingTimeInterval(-daysAgo * 86400)
            let layout = SetLayout(node: "node-1", epoch: Epoch(migrationId: 4, serial: 2), setId: try SetLayout.newSetId(start: start))
            let manifest = Manifest(formatVersion: 1, setId: layout.setId, node: NodeInfo(name: "node-1", kind: .generic),
                                    epoch: layout.epoch, status: .complete, failures: [], toolVersion: "test",
                                    captureStart: Timestamp.format(start), captureEnd: Timestamp.format(start), recovered: nil,
                                    components: [], barrier: nil)
            try SetCommitter(store: store).commit(manifest, layout: layout, signingKey: try KeyFile.loadSigningKey(path: f.signingPath))
            return layout
        }
    }

    @Test func anObjectThatCannotBeReadMakesOnlyItsSetUntrusted() throws {
        try withTemporaryDirectory { dir in
            let f = try Fixture(dir: dir)
            let store = FaultyStore(MemoryStore())
            let layouts = try threeSets(f, in: store)
            // The first manifest GET fails as the store answers for an archived or customer-key object.
            store.inject(.permanentError, into: .get)
            let entries = try Catalog(store: store, signers: [f.signer]).entries(node: "node-1")
            #expect(entries.count == 3)
            #expect(entries[0].setId == layouts[0].setId && !entries[0].isTrusted && !entries[0].isUnreadable)
            #expect(entries[0].problems.first?.contains("cannot be read") == true)
            #expect(entries[1].isTrusted && entries[2].isTrusted)
        }
    }

    @Test func anOutageMakesAnEntryUnreadableAndNeitherPruneNorFreshnessDecideOnIt() throws {
        try withTemporaryDirectory { dir in
            let f = try Fixture(dir: dir)
            let store = FaultyStore(MemoryStore())
            _ = try threeSets(f, in: store)
            let catalog = Catalog(store: store, signers: [f.signer])
            store.inject(.transientError, into: .get)
            let entries = try catalog.entries(node: "node-1")
            #expect(entries[0].isUnreadable && !entries[0].isTrusted)

            // Everything but the newest set would go: with one set unread, nothing does.
            let policy = RetentionPolicy(retentionPeriod: 10 * 86400, margin: 86400, keepWithin: 0, keepLast: 1)
            store.inject(.transientError, into: .get)
            let (plan, planned) = try Pruner(catalog: catalog, policy: policy).plan(node: "node-1")
            #expect(plan.refusedToDelete?.contains("did not answer") == true)
            #expect(plan.deletedSetIds.isEmpty)
            #expect(try Pruner(catalog: catalog, policy: policy).apply(plan, entries: planned) == 0)

            store.inject(.transientError, into: .get)
            let error = #expect(throws: CNBackupError.self) { try FreshnessCheck(catalog: catalog).check(node: "node-1", maxAge: 86400 * 10) }
            #expect(error?.code == .storage && error?.message.contains("cannot be judged") == true)
            // Once the store answers, the newest set is fresh again.
            #expect(try FreshnessCheck(catalog: catalog).check(node: "node-1", maxAge: 86400 * 2).fresh)
        }
    }

    @Test func aManifestListedLargerThanAnyManifestIsNotFetched() throws {
        try withTemporaryDirectory { dir in
            let f = try Fixture(dir: dir)
            let store = FaultyStore(MemoryStore())
            let layouts = try threeSets(f, in: store)
            let key = try Catalog(store: store, signers: [f.signer]).entry(setId: layouts[1].setId).manifestKey
            try store.delete(keys: [key])
            try store.putBytes(key: key, [UInt8](repeating: 0x20, count: Catalog.manifestLimit + 1))
            let before = store.callCount(.get)
            let entries = try Catalog(store: store, signers: [f.signer]).entries(node: "node-1")
            #expect(entries[1].problems.first?.contains("not read") == true)
            // Two manifests and two signatures read; the oversized one never.
            #expect(store.callCount(.get) - before == 4)
        }
    }
}

/// Which drills `check-freshness --max-drill-age` counts.
@Suite struct DrillFreshnessTests {
    func receipt(_ setId: String, _ status: DrillReceipt.Status, hoursAgo: Double) -> DrillReceipt {
        DrillReceipt(formatVersion: 1, setId: setId, node: "n", epoch: Epoch(migrationId: 0, serial: 0), manifestSHA256: "",
                     status: status, at: Timestamp.format(Date().addingTimeInterval(-hoursAgo * 3600)), toolVersion: "t",
                     scratch: "throwaway", postgresVersions: [], checked: [], failures: status == .failed ? ["apps: rows differ"] : [],
                     components: [], restoreSeconds: 1)
    }

    @Test func theNewestDrillOfARecentSetDecides() throws {
        try withTemporaryDirectory { dir in
            let f = try Fixture(dir: dir)
            let store = MemoryStore()
            let layouts = try ReadFailureTests().threeSets(f, in: store)
            let sets = try Catalog(store: store, signers: [f.signer]).entries(node: "node-1").compactMap(\.trusted)
            let day = 86400.0
            // A failed drill of the newest set is not hidden by an older passing one.
            let failed = DrillFreshness.judge(receipts: [receipt(layouts[2].setId, .passed, hoursAgo: 30), receipt(layouts[2].setId, .failed, hoursAgo: 1)],
                                              sets: sets, maxDrillAge: 7 * day, maxAge: day)
            #expect(!failed.fresh && failed.newest?.status == .failed)
            let passed = DrillFreshness.judge(receipts: [receipt(layouts[2].setId, .passed, hoursAgo: 1)], sets: sets, maxDrillAge: 7 * day, maxAge: day)
            #expect(passed.fresh)
            // A passing drill of a set older than maxDrillAge + maxAge does not count.
            let old = DrillFreshness.judge(receipts: [receipt(layouts[0].setId, .passed, hoursAgo: 1)], sets: sets, maxDrillAge: 2 * day, maxAge: day)
            #expect(!old.fresh && old.newest == nil)
        }
    }
}

/// Lifecycle rules the bucket's writer could aim at history.
@Suite struct LifecycleWarningTests {
    @Test func rulesKeyedOnTagsOrTheBackupsPrefixAreFlagged() {
        let byTag = S3Store.LifecycleRule(id: "tmp", enabled: true, prefix: "", tags: ["cnb-component=scratch"], expires: true)
        let underPrefix = S3Store.LifecycleRule(id: "old", enabled: true, prefix: "mainnet/", tags: [], expires: true)
        let elsewhere = S3Store.LifecycleRule(id: "logs", enabled: true, prefix: "logs/", tags: [], expires: true)
        let moveOnly = S3Store.LifecycleRule(id: "ia", enabled: true, prefix: "mainnet/", tags: [], expires: false)
        let warnings = StoreCheck.lifecycleWarnings([byTag, underPrefix, elsewhere, moveOnly], prefix: "mainnet/")
        #expect(warnings.count == 2)
        #expect(warnings.contains { $0.contains("\"tmp\"") && $0.contains("PutObjectTagging") })
        #expect(warnings.contains { $0.contains("\"old\"") })
        #expect(StoreCheck.lifecycleWarnings(nil, prefix: "mainnet/").count == 1)
    }
}

import Foundation
import Logging
import Testing
@testable import CNBackup
import CNBackupCore
import CNBackupTestKit
import CNBackupHTTP
import CNBackupStorage
import CNBackupCatalog

/// prune and check-freshness over a history someone with write access to the bucket tampered
/// with: an edited manifest, a set re-signed by another key, a forged set sealed to the public
/// recipients and signed by the forger. Neither command is fooled.
@Suite struct TamperedHistoryTests {
    @Test func pruneAndFreshnessDecideOnlyFromPinnedSignatures() throws {
        try withTemporaryDirectory { dir in
            let f = try Fixture(dir: dir)
            var logger = Logger(label: "test"); logger.logLevel = .critical
            let definition = try f.pipeline("  - { name: one, role: other, command: [ \"printf\", \"data\" ] }")
            let day: TimeInterval = 86_400
            var sets: [RunResult] = []
            for age in stride(from: 60.0, through: 2.0, by: -2.0) {
                sets.append(try BackupRunner(definition: definition, store: f.store, logger: logger,
                                             capturedAt: Date().addingTimeInterval(-age * day)).run())
            }
            let root = dir + "/store/"
            // 1. An old set's manifest is edited to look a day old.
            let edited = sets[0]
            let manifestPath = root + edited.layout.manifestKey(of: edited.manifest)
            let text = try String(contentsOfFile: manifestPath, encoding: .utf8)
            try text.replacingOccurrences(of: edited.manifest.captureStart, with: Timestamp.format(Date().addingTimeInterval(-day)))
                .write(toFile: manifestPath, atomically: true, encoding: .utf8)
            // 2. Another is re-signed by a forger's key.
            _ = try KeyFile.generate(kind: .ed25519, at: dir + "/forger")
            let forgerKey = try KeyFile.loadSigningKey(path: dir + "/forger")
            let resigned = sets[1]
            let resignedBytes = try f.store.getBytes(key: resigned.layout.manifestKey(of: resigned.manifest))
            try f.store.putBytes(key: resigned.layout.signatureKey(of: resigned.manifest), try ManifestSignature.sign(resignedBytes, with: forgerKey, use: .manifest).encoded())

            let freshness = FreshnessCheck(catalog: f.catalog)
            let honest = try freshness.check(node: "node-1", maxAge: 3 * day)
            #expect(honest.fresh && honest.newestCompleteSetId == sets.last!.setId)
            #expect(honest.untrustedSets == 2)

            let policy = RetentionPolicy(retentionPeriod: 30 * day, margin: day, keepWithin: 7 * day, keepLast: 3)
            let pruner = Pruner(catalog: f.catalog, policy: policy)
            let (plan, entries) = try pruner.plan(node: "node-1")
            #expect(plan.refusedToDelete == nil)
            #expect(!plan.deletedSetIds.isEmpty)
            for untrusted in [edited.setId, resigned.setId] {
                let decision = try #require(plan.decisions.first { $0.setId == untrusted })
                #expect(decision.keep && decision.reasons.contains(RetentionPlanner.untrustedReason))
            }
            _ = try pruner.apply(plan, entries: entries)
            // Untrusted sets are never deleted: that needs an operator's look, not an automatic rule.
            #expect(try f.store.head(key: edited.layout.manifestKey(of: edited.manifest)) != nil)
            #expect(try f.store.head(key: resigned.layout.manifestKey(of: resigned.manifest)) != nil)

            // 3. A forged newest set: sealed to the public recipient, signed by the forger.
            var forgedDefinition = definition
            forgedDefinition.signingKeyFile = dir + "/forger"
            _ = try BackupRunner(definition: forgedDefinition, store: f.store, logger: logger).run()
            let afterForgery = try freshness.check(node: "node-1", maxAge: 3 * day)
            #expect(afterForgery.newestCompleteSetId == sets.last!.setId)
            #expect(afterForgery.untrustedSets == 3)
            // The newest set is not one prune can trust: it deletes nothing and says why.
            let (refused, _) = try pruner.plan(node: "node-1")
            #expect(refused.deletedSetIds.isEmpty)
            #expect(refused.decisions.contains { $0.reasons.contains { $0.contains("untrusted: prune deletes nothing") } })
            // With the forged set as the only recent one, the node is stale, not fresh.
            let stale = try freshness.check(node: "node-1", maxAge: 3 * day, now: Date().addingTimeInterval(2 * day))
            #expect(!stale.fresh)
        }
    }
}

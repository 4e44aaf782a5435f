import Foundation
import Testing
@testable import CNBackup
import CNBackupCore
import CNBackupTestKit
import CNBackupHTTP
import CNBackupStorage
import CNBackupCatalog

@Suite struct CopyTests {
    @Test func copiesSignedSetsUnchangedResumesAndSkipsForgeries() throws {
        try withTemporaryDirectory { dir in
            let f = try Fixture(dir: dir)
            let definition = try f.pipeline("  - { name: one, role: other, command: [ \"printf\", \"payload one\" ] }\n  - { name: two, role: other, command: [ \"printf\", \"payload two\" ] }")
            let a = try f.run(definition), b = try f.run(definition)
            let destination = FileSystemStore(root: dir + "/copy")
            // An interrupted earlier copy left one object of set a behind.
            let partialKey = a.objectKey("one")
            try destination.putBytes(key: partialKey, try f.store.getBytes(key: partialKey))

            // A forged set: re-signed by a key nobody pinned.
            try FileManager.default.removeItem(atPath: dir + "/store/" + b.layout.signatureKey(of: b.manifest))
            _ = try KeyFile.generate(kind: .ed25519, at: dir + "/forger")
            let forged = try ManifestSignature.sign(try f.store.getBytes(key: b.layout.manifestKey(of: b.manifest)), with: try KeyFile.loadSigningKey(path: dir + "/forger"), use: .manifest)
            try f.store.putBytes(key: b.layout.signatureKey(of: b.manifest), forged.encoded())

            let outcomes = try Copier(source: f.catalog, destination: destination).copy(setIds: nil)
            let byId = Dictionary(uniqueKeysWithValues: outcomes.map { ($0.setId, $0) })
            #expect(byId[a.setId]?.verified == true && byId[a.setId]?.skippedObjects == 1 && byId[a.setId]?.copiedObjects == 3)
            #expect(byId[b.setId]?.error?.contains("not copied") == true)
            #expect(try destination.head(key: b.layout.manifestKey(of: b.manifest)) == nil)
            // Bytes, manifest and signature unchanged.
            for key in [a.layout.manifestKey(of: a.manifest), a.layout.signatureKey(of: a.manifest), a.objectKey("two")] {
                #expect(try destination.getBytes(key: key, limit: 1 << 20) == f.store.getBytes(key: key, limit: 1 << 20))
            }
            // Again: nothing more to copy.
            let again = try Copier(source: f.catalog, destination: destination).copy(setIds: [a.setId])
            #expect(again.first?.copiedObjects == 2 && again.first?.skippedObjects == 2)  // manifest+sig rewritten if absent
            #expect(try Catalog(store: destination, signers: [f.signer]).entry(setId: a.setId).isCompleteBackup)
        }
    }
}

@Suite struct FreshnessTests {
    @Test func freshStaleAndMetrics() throws {
        try withTemporaryDirectory { dir in
            let f = try Fixture(dir: dir)
            let none = try FreshnessCheck(catalog: f.catalog).check(node: "node-1", maxAge: 3600)
            #expect(!none.fresh && none.newestCompleteSetId == nil)
            let result = try f.run(try f.pipeline("  - { name: one, role: other, command: [ \"printf\", \"x\" ] }"))
            let fresh = try FreshnessCheck(catalog: f.catalog).check(node: "node-1", maxAge: 3600)
            #expect(fresh.fresh && fresh.newestCompleteSetId == result.setId)
            let stale = try FreshnessCheck(catalog: f.catalog).check(node: "node-1", maxAge: 3600, now: Date().addingTimeInterval(5 * 3600))
            #expect(!stale.fresh)
            try stale.writeMetrics(to: dir + "/cnbackup.prom")
            let text = try String(contentsOfFile: dir + "/cnbackup.prom", encoding: .utf8)
            #expect(text.contains("cnbackup_backup_fresh{node=\"node-1\"} 0"))
            #expect(text.contains("cnbackup_last_success_component_bytes{node=\"node-1\",component=\"one\"}"))
            // A partial set newer than the complete one does not make the node fresh.
            _ = try f.run(try f.pipeline("  - { name: one, role: other, command: [ \"false\" ] }"))
            let afterPartial = try FreshnessCheck(catalog: f.catalog).check(node: "node-1", maxAge: 3600)
            #expect(afterPartial.newestCompleteSetId == result.setId && afterPartial.partialSets == 1)
        }
    }
}

import Foundation
import Testing
@testable import CNBackup
import CNBackupCore
import CNBackupStorage
import CNBackupCatalog
import CNBackupTestKit

/// `recover` signs only what the run's own signed journal vouches for.
@Suite struct JournalTests {
    @Test func recoverLeavesOutObjectsTheJournalDoesNotVouchFor() throws {
        try withTemporaryDirectory { dir in
            let f = try Fixture(dir: dir)
            let result = try f.run(try f.pipeline("""
              - { name: one, role: other, command: [ printf, "first" ] }
              - { name: two, role: other, command: [ printf, "second" ] }
            """))
            // The run died before its manifest, as far as the store shows.
            try f.store.delete(keys: [result.layout.manifestKey(of: result.manifest), result.layout.signatureKey(of: result.manifest)])
            // The writer seals its own object to the public recipient under the set's name for a
            // third component, and one more under a component the run stored.
            let real = try f.store.getBytes(key: result.objectKey("two"))
            let description = try OpeningStream(MemoryStream(real), identities: [f.identity]).header.description
            func forged(_ component: String) throws -> [UInt8] {
                var named = description
                named.component = component
                return try SealingStream(try ZstdCompressStream(MemoryStream(Array("planted".utf8)), settings: CompressionSettings()),
                                         recipients: [try Recipient(parsing: f.recipient)], description: named).readAll(limit: 1 << 20)
            }
            try f.store.putBytes(key: result.layout.key(relative: try SetLayout.newObjectName(component: "three")), try forged("three"))
            try f.store.putBytes(key: result.layout.key(relative: try SetLayout.newObjectName(component: "two")), try forged("two"))
            let signingKey = try KeyFile.loadSigningKey(path: f.signingPath)
            let manifest = try Recoverer(store: f.store).recover(setId: result.setId, options: .init(identities: [f.identity], signingKey: signingKey,
                                                                                                     kind: .generic, olderThan: 0))
            #expect(manifest.recovered == true)
            #expect(manifest.components.map(\.name).sorted() == ["one", "two"])
            #expect(manifest.components.first { $0.name == "two" }?.objectKey == result.manifest.components.first { $0.name == "two" }?.objectKey)
            #expect(manifest.status == .partial)
            #expect(manifest.failures.filter { $0.reason.contains("no journal entry") }.count == 2)
        }
    }

    @Test func aJournalEntrySignedByAnotherKeyVouchesForNothing() throws {
        try withTemporaryDirectory { dir in
            let f = try Fixture(dir: dir)
            let result = try f.run(try f.pipeline("  - { name: one, role: other, command: [ printf, \"first\" ] }"))
            try f.store.delete(keys: [result.layout.manifestKey(of: result.manifest), result.layout.signatureKey(of: result.manifest)])
            let journal = try f.store.list(prefix: result.layout.directory + "/journal-").map(\.key)
            try f.store.delete(keys: journal)
            _ = try KeyFile.generate(kind: .ed25519, at: dir + "/forger")
            try JournalEntry.write(JournalEntry(layout: result.layout, record: result.manifest.components[0]), layout: result.layout,
                                   store: f.store, key: try KeyFile.loadSigningKey(path: dir + "/forger"))
            let error = #expect(throws: CNBackupError.self) {
                try Recoverer(store: f.store).recover(setId: result.setId, options: .init(identities: [f.identity],
                                                                                          signingKey: try KeyFile.loadSigningKey(path: f.signingPath), olderThan: 0))
            }
            #expect(error?.message.contains("not signed by the node's key") == true)
        }
    }
}

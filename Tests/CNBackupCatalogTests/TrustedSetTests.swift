import Foundation
import Testing
import CNBackupCore
import CNBackupStorage
import CNBackupCatalog
import CNBackupTesting
import CNBackupTestKit

/// Only the catalog makes a `TrustedSet`, and only from a manifest that passes every check.
@Suite struct TrustedSetTests {
    struct Signer {
        let key: SigningKey
        let pin: SignerKey
        init(in dir: String, name: String) throws {
            let path = dir + "/" + name
            _ = try KeyFile.generate(kind: .ed25519, at: path)
            key = try KeyFile.loadSigningKey(path: path)
            pin = key.publicKey
        }
    }

    func commit(_ store: MemoryStore, signer: SigningKey, node: String = "sv-1",
                components: [ComponentRecord] = []) throws -> (layout: SetLayout, manifestKey: String, signatureKey: String) {
        let start = Date().addingTimeInterval(-3600)
        let layout = SetLayout(node: node, epoch: Epoch(migrationId: 4, serial: 1), setId: try SetLayout.newSetId(start: start))
        let manifest = Manifest(formatVersion: 1, setId: layout.setId, node: NodeInfo(name: node, kind: .generic),
                                epoch: layout.epoch, status: .complete, failures: [], toolVersion: "test",
                                captureStart: Timestamp.format(start), captureEnd: Timestamp.format(start), recovered: nil,
                                components: components, barrier: nil)
        let name = try SetCommitter(store: store).commit(manifest, layout: layout, signingKey: signer).manifestName!
        return (layout, layout.key(relative: name), layout.key(relative: SetLayout.signatureName(of: name)))
    }

    @Test func aSignedSetByThePinnedSignerIsTrusted() throws {
        try withTemporaryDirectory { dir in
            let store = MemoryStore(), node = try Signer(in: dir, name: "node")
            let layout = try commit(store, signer: node.key).layout
            let set = try Catalog(store: store, signers: [node.pin]).trustedSet(setId: layout.setId)
            #expect(set.setId == layout.setId && set.node == "sv-1" && !set.recovered)
            #expect(set.signer == node.pin.keyID)
            #expect(try Manifest.decode(set.manifestBytes) == set.manifest)
        }
    }

    @Test func anotherSignerOrAnAlteredManifestMakesNone() throws {
        try withTemporaryDirectory { dir in
            let store = MemoryStore(), node = try Signer(in: dir, name: "node"), other = try Signer(in: dir, name: "other")
            let layout = try commit(store, signer: other.key).layout
            let catalog = Catalog(store: store, signers: [node.pin])
            #expect(try catalog.entry(setId: layout.setId).trusted == nil)
            let error = #expect(throws: CNBackupError.self) { try catalog.trustedSet(setId: layout.setId) }
            #expect(error?.code == .authentication)
            #expect(error?.message.contains("not a pinned signer") == true)

            let altered = try commit(store, signer: node.key)
            var bytes = try store.getBytes(key: altered.manifestKey)
            bytes[bytes.count / 2] ^= 0x01
            try store.delete(keys: [altered.manifestKey])
            try store.putBytes(key: altered.manifestKey, bytes)
            #expect(throws: CNBackupError.self) { try catalog.trustedSet(setId: altered.layout.setId) }
        }
    }

    @Test func aManifestMovedToAnotherNodeIsNotTrustedThere() throws {
        try withTemporaryDirectory { dir in
            let store = MemoryStore(), node = try Signer(in: dir, name: "node")
            let (layout, manifestKey, signatureKey) = try commit(store, signer: node.key, node: "sv-1")
            let decoy = SetLayout(node: "sv-2", epoch: layout.epoch, setId: layout.setId)
            let name = String(manifestKey.split(separator: "/").last!)
            try store.putBytes(key: decoy.key(relative: name), try store.getBytes(key: manifestKey))
            try store.putBytes(key: decoy.key(relative: SetLayout.signatureName(of: name)), try store.getBytes(key: signatureKey))
            let catalog = Catalog(store: store, signers: [node.pin])
            #expect(try catalog.entry(setId: layout.setId, node: "sv-2").trusted == nil)
            #expect(try catalog.trustedSet(setId: layout.setId, node: "sv-1").node == "sv-1")
        }
    }

    @Test func aMissingComponentNamesTheOnesTheSetHas() throws {
        try withTemporaryDirectory { dir in
            let store = MemoryStore(), node = try Signer(in: dir, name: "node")
            let layout = try commit(store, signer: node.key).layout
            let set = try Catalog(store: store, signers: [node.pin]).trustedSet(setId: layout.setId)
            let error = #expect(throws: CNBackupError.self) { try set.component("apps") }
            #expect(error?.code == .notFound)
        }
    }
}

/// The apps-before-participant rule as the runner records it and verify re-checks it.
@Suite struct BarrierRuleTests {
    func record(_ name: String, _ role: ComponentRole, start: Int, end: Int) -> ComponentRecord {
        ComponentRecord(name: name, role: role, source: "test", objectKey: name + ".cnb", storedSize: 0, storedSHA256: "",
                        plaintextSize: 0, plaintextDigestHMAC: "", codec: CodecInfo(name: "zstd", level: 3),
                        keyIds: [], segmentSize: 0, started: "", ended: "", startOrder: start, endOrder: end, readBack: .full)
    }

    @Test func holdsOnlyWhenEveryAppsCaptureEndedBeforeTheParticipantStarted() {
        let apps = record("apps", .apps, start: 1, end: 3), participant = record("participant", .participant, start: 4, end: 6)
        #expect(BarrierRule.evaluate([apps, participant], apps: ["apps"]).holds)
        let late = record("apps", .apps, start: 1, end: 5)
        #expect(!BarrierRule.evaluate([late, participant], apps: ["apps"]).holds)
        // An apps capture the plan named but the set lacks breaks the rule too.
        #expect(!BarrierRule.evaluate([apps, participant], apps: ["apps", "scan"]).holds)
    }

    @Test func storedNamesOfDumpSectionsAndDrillVerdictsStayAsWritten() throws {
        #expect(DumpSection.allCases.map(\.rawValue) == ["pre-data", "data", "post-data"])
        #expect(DrillReceipt.Comparison.previousDrill.rawValue == "previous-drill")
        // Text output shows the stored names too.
        #expect("\(DrillReceipt.Comparison.previousDrill) \(DrillReceipt.Status.passed) \(DumpSection.preData)" == "previous-drill passed pre-data")
        let decoded = try JSONDecoder().decode([DrillReceipt.Status].self, from: Data(#"["passed","failed","skipped"]"#.utf8))
        #expect(decoded == [.passed, .failed, .skipped])
    }
}

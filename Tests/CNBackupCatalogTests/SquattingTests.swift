import Foundation
import Testing
import CNBackupCore
import CNBackupStorage
import CNBackupCatalog
import CNBackupTesting
import CNBackupTestKit

/// A store whose writer races the run: before each write to a manifest name, it puts
/// its own bytes there first, as someone who lists the bucket and guesses would.
final class SquattingStore: ObjectStore, @unchecked Sendable {
    // @unchecked: `squatted` is only touched under `lock`.
    let base = MemoryStore()
    private let lock = NSLock()
    private var squatted = 0
    /// How many of the run's writes the squatter gets to first.
    let times: Int
    init(times: Int) { self.times = times }
    var squats: Int { lock.withLock { squatted } }

    var displayName: String { "squatted" }
    func put(key: String, from source: ByteStream, options: PutOptions) throws -> ObjectInfo {
        let name = key.split(separator: "/").last.map(String.init) ?? key
        if name.hasPrefix("manifest-"), name.hasSuffix(".json"), lock.withLock({ squatted < times ? { squatted += 1; return true }() : false }) {
            try base.putBytes(key: key, Array("squatted".utf8))
        }
        return try base.put(key: key, from: source, options: options)
    }
    func get(key: String, range: ClosedRange<Int64>?) throws -> ByteStream { try base.get(key: key, range: range) }
    func head(key: String) throws -> ObjectInfo? { try base.head(key: key) }
    func list(prefix: String) throws -> [ObjectInfo] { try base.list(prefix: prefix) }
    func delete(keys: [String]) throws { try base.delete(keys: keys) }
    func tags(key: String) throws -> [String: String] { try base.tags(key: key) }
}

@Suite struct SquattingTests {
    func manifest(_ layout: SetLayout) -> Manifest {
        Manifest(formatVersion: 1, setId: layout.setId, node: NodeInfo(name: layout.node, kind: .generic), epoch: layout.epoch,
                 status: .complete, failures: [], toolVersion: "test", captureStart: Timestamp.format(SetLayout.time(ofSetId: layout.setId)!),
                 captureEnd: Timestamp.format(Date()), recovered: nil, components: [], barrier: nil)
    }

    @Test func aCommitWhoseNamesAreOccupiedTakesOthersAndTheSetIsTrusted() throws {
        try withTemporaryDirectory { dir in
            _ = try KeyFile.generate(kind: .ed25519, at: dir + "/sign")
            let key = try KeyFile.loadSigningKey(path: dir + "/sign")
            let store = SquattingStore(times: 2)
            let layout = SetLayout(node: "sv-1", epoch: Epoch(migrationId: 4, serial: 1), setId: try SetLayout.newSetId(start: Date().addingTimeInterval(-60)))
            let committed = try SetCommitter(store: store).commit(manifest(layout), layout: layout, signingKey: key)
            #expect(store.squats == 2)
            let (entries, ignored) = try Catalog(store: store, signers: [key.publicKey]).scan()
            #expect(entries.count == 1 && entries[0].isTrusted && entries[0].manifestName == committed.manifestName)
            // The squatter's manifest candidate is listed as ignored, with the reason.
            #expect(ignored.contains { $0.reason.contains("decoy or a squatter") })
        }
    }

    @Test func aSignedManifestCopiedUnderAnotherNameIsADecoyNotASecondSet() throws {
        try withTemporaryDirectory { dir in
            _ = try KeyFile.generate(kind: .ed25519, at: dir + "/sign")
            let key = try KeyFile.loadSigningKey(path: dir + "/sign")
            let store = MemoryStore()
            let layout = SetLayout(node: "sv-1", epoch: Epoch(migrationId: 4, serial: 1), setId: try SetLayout.newSetId(start: Date().addingTimeInterval(-60)))
            let committed = try SetCommitter(store: store).commit(manifest(layout), layout: layout, signingKey: key)
            let copy = try SetLayout.newManifestName()
            try store.putBytes(key: layout.key(relative: copy), try store.getBytes(key: layout.manifestKey(of: committed)))
            try store.putBytes(key: layout.key(relative: SetLayout.signatureName(of: copy)), try store.getBytes(key: layout.signatureKey(of: committed)))
            let (entries, ignored) = try Catalog(store: store, signers: [key.publicKey]).scan()
            #expect(entries.count == 1 && entries[0].isTrusted && entries[0].manifestName == committed.manifestName)
            #expect(ignored.contains { $0.key.hasSuffix(copy) && $0.reason.contains("signed as") })
        }
    }

    @Test func namesHaveARandomPartAndReadBackToTheirComponent() throws {
        let a = try SetLayout.newObjectName(component: "apps-cantonnet_sv"), b = try SetLayout.newObjectName(component: "apps-cantonnet_sv")
        #expect(a != b)
        #expect(SetLayout.component(ofObjectName: a) == "apps-cantonnet_sv")
        #expect(SetLayout.component(ofObjectName: "apps.zst.cnb") == "apps")
        #expect(SetLayout.isManifestName(try SetLayout.newManifestName()) && SetLayout.isManifestName("manifest.json"))
        #expect(!SetLayout.isManifestName("manifest-0123.json") && !SetLayout.isManifestName("manifest-0123456789abcdef.json\n"))
    }

    @Test func aSignatureForOneUseNeverVerifiesAsAnother() throws {
        try withTemporaryDirectory { dir in
            _ = try KeyFile.generate(kind: .ed25519, at: dir + "/sign")
            let key = try KeyFile.loadSigningKey(path: dir + "/sign")
            let bytes = Array("{}".utf8)
            let receipt = try ManifestSignature.sign(bytes, with: key, use: .drillReceipt)
            #expect(receipt.isValid(for: bytes, as: .drillReceipt))
            #expect(!receipt.isValid(for: bytes, as: .manifest))
            let decoded = try ManifestSignature.decode(receipt.encoded())
            #expect(decoded == receipt && !decoded.isValid(for: bytes, as: .journal))
        }
    }
}

/// Per-table counts are sealed to the recipients; only totals stay in clear.
@Suite struct SealedRowCountsTests {
    @Test func countsOpenWithTheSetsKeysOnlyAndMustMatchTheirTotals() throws {
        let owner = try newIdentity(), stranger = try newIdentity()
        let counts: [String: Int64] = ["public.contracts": 50_000, "public.log": 7]
        let sealed = try SealedRowCounts.seal(counts, to: [owner.recipient])
        #expect(sealed.tables == 2 && sealed.rows == 50_007)
        #expect(!sealed.sealed.contains("contracts"))
        #expect(try sealed.open(with: [owner]) == counts)
        #expect(throws: CNBackupError.self) { try sealed.open(with: [stranger]) }
        var lying = sealed
        lying.rows += 1
        #expect(throws: CNBackupError.self) { try lying.open(with: [owner]) }
    }
}

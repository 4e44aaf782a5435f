import Foundation
import Testing
@testable import CNBackup
import CNBackupCore
import CNBackupStorage
import CNBackupCatalog
import CNBackupTesting
import CNBackupTestKit

/// A store whose writer swaps an object between two reads: the first GET of `key` gets the real
/// bytes, every later one `forged`.
final class SwappingStore: ObjectStore, @unchecked Sendable {
    // @unchecked: `gets` is only touched under `lock`.
    let base = MemoryStore()
    let key: String
    let forged: [UInt8]
    private let lock = NSLock()
    private var gets = 0
    init(key: String, forged: [UInt8]) { self.key = key; self.forged = forged }
    var getsOfKey: Int { lock.withLock { gets } }

    var displayName: String { "swapping" }
    func put(key: String, from source: ByteStream, options: PutOptions) throws -> ObjectInfo { try base.put(key: key, from: source, options: options) }
    func get(key: String, range: ClosedRange<Int64>?) throws -> ByteStream {
        guard key == self.key else { return try base.get(key: key, range: range) }
        let first = lock.withLock { gets += 1; return gets == 1 }
        return first ? try base.get(key: key, range: range) : MemoryStream(forged)
    }
    func head(key: String) throws -> ObjectInfo? { try base.head(key: key) }
    func list(prefix: String) throws -> [ObjectInfo] { try base.list(prefix: prefix) }
    func delete(keys: [String]) throws { try base.delete(keys: keys) }
    func tags(key: String) throws -> [String: String] { try base.tags(key: key) }
}

@Suite struct LegacyReadTests {
    /// A set whose manifest binds no header (as manifests written before the binding): the object
    /// is read once, so an object swapped after its digest was checked never reaches the output.
    @Test func aLegacySetIsCheckedAndOpenedFromOneRead() throws {
        try withTemporaryDirectory { dir in
            let f = try Fixture(dir: dir)
            let input = patternBytes(300_000)
            try Data(input).write(to: URL(fileURLWithPath: dir + "/input"))
            let result = try f.run(try f.pipeline("  - { name: dump, role: other, file: \"\(dir)/input\" }"))
            let key = result.objectKey("dump")
            let real = try f.store.getBytes(key: key, limit: 1 << 30)
            // The writer's object: the same description, sealed to the same public recipient.
            let header = try OpeningStream(MemoryStream(real), identities: [f.identity]).header
            let forgedPlain = Array(repeating: UInt8(ascii: "F"), count: input.count)
            let forged = try SealingStream(try ZstdCompressStream(MemoryStream(forgedPlain), settings: CompressionSettings()),
                                           recipients: [try Recipient(parsing: f.recipient)], description: header.description,
                                           segmentSize: header.segmentSize).readAll(limit: 1 << 30)

            // The legacy manifest: no header binding, signed by the node.
            var legacy = result.manifest
            legacy.components[0].headerSHA256 = nil
            let store = SwappingStore(key: key, forged: forged)
            try store.base.putBytes(key: key, real)
            try SetCommitter(store: store).commit(legacy, layout: result.layout, signingKey: try KeyFile.loadSigningKey(path: f.signingPath))
            let catalog = Catalog(store: store, signers: [f.signer])
            try Restorer(catalog: catalog).restore(catalog.trustedSet(setId: result.setId), component: "dump", identities: [f.identity],
                                                   to: .file(path: dir + "/restored", overwrite: false))
            #expect(store.getsOfKey == 1)
            #expect(Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/restored"))) == input)
        }
    }
}

import Foundation
import Logging
import Testing
@testable import CNBackup
import CNBackupCore
import CNBackupTestKit
import CNBackupHTTP
import CNBackupStorage
import CNBackupCatalog

@Suite struct SampledReadBackTests {
    @Test func segmentsOpenOneByOneAndTamperingIsCaught() throws {
        let identity = try newIdentity()
        let plaintext = patternBytes(1000)
        let dataKey = try DataKey.random()
        let sealing = try SealingStream(MemoryStream(plaintext, chunkSize: 37), recipients: [identity.recipient],
                                        description: ObjectDescription(), segmentSize: 64, dataKey: dataKey,
                                        ephemeralSecrets: nil, symmetricSalts: nil)
        let sealed = try sealing.readAll(limit: 1 << 20)
        let layout = try #require(SegmentLayout(header: sealing.header, storedSize: Int64(sealed.count)))
        func segment(_ index: Int64) -> [UInt8] {
            let range = layout.range(ofSegment: index)
            return Array(sealed[Int(range.lowerBound)...Int(range.upperBound)])
        }
        #expect(layout.count == 16)  // 15 full segments of 64 and one of 40
        var joined: [UInt8] = []
        for index in 0..<layout.count {
            joined += try layout.open(segment: index, sealed: segment(index), dataKey: dataKey)
        }
        #expect(joined == plaintext)
        var damaged = segment(3)
        damaged[5] ^= 1
        #expect(throws: CNBackupError.self) { try layout.open(segment: 3, sealed: damaged, dataKey: dataKey) }
        // A segment opened at another index (reordered) fails: the nonce carries the index.
        #expect(throws: CNBackupError.self) { try layout.open(segment: 4, sealed: segment(3), dataKey: dataKey) }
        // The last segment opened as if not last (the object cut at a boundary) fails.
        let cut = try #require(SegmentLayout(header: sealing.header, storedSize: Int64(layout.range(ofSegment: 14).upperBound + 1)))
        #expect(throws: CNBackupError.self) { try cut.open(segment: 14, sealed: segment(14), dataKey: dataKey) }
        // Sizes no sealed object has.
        #expect(SegmentLayout(header: sealing.header, storedSize: layout.headerSize + 5) == nil)
        #expect(SegmentLayout(header: sealing.header, storedSize: layout.headerSize + 80 + 16) == nil)
    }

    @Test func aRunWithSampledReadBackRecordsItAndVerifies() throws {
        try withTemporaryDirectory { dir in
            let f = try Fixture(dir: dir)
            try Data(patternBytes(3 << 20 + 5)).write(to: URL(fileURLWithPath: dir + "/input"))
            let result = try f.run(try f.pipeline(extra: "verify: { readBack: sample }", "  - { name: dump, role: other, file: \"\(dir)/input\" }"))
            #expect(result.isComplete)
            #expect(result.manifest.components.map(\.readBack) == [.sample])
            #expect(try Verifier(catalog: f.catalog).verify(setId: result.setId, identities: [f.identity]).ok)
        }
    }
}

@Suite struct VerifyOptionsTests {
    @Test func aSetNoHeldKeyCanOpenFails() throws {
        try withTemporaryDirectory { dir in
            let f = try Fixture(dir: dir)
            let result = try f.run(try f.pipeline("  - { name: one, role: other, command: [ \"printf\", \"x\" ] }"))
            let verifier = Verifier(catalog: f.catalog)
            let entry = try f.catalog.entry(setId: result.setId)
            let other = try newIdentity()
            let lost = try verifier.verify(entry: entry, options: VerifyOptions(heldKeys: [other.keyID]))
            #expect(!lost.ok)
            #expect(lost.problems.contains { $0.contains("none of the keys you hold can open one") })
            #expect(lost.openableBy == [f.identity.keyID])
            let held = try verifier.verify(entry: entry, options: VerifyOptions(heldKeys: [try KeyID(parsing: f.recipient)]))
            #expect(held.ok, "\(held)")
            #expect(try KeyID(parsing: f.identity.keyID.description) == f.identity.keyID)
            let refused = #expect(throws: CNBackupError.self) { try KeyID(parsing: "not-a-key-but-maybe-a-secret-0123") }
            #expect(refused.map { !"\($0)".contains("secret-0123") && !"\($0)".contains("not-a-key") } == true)
        }
    }

    @Test func sampleKeepsTheNewestAndEveryUntrustedSet() throws {
        try withTemporaryDirectory { dir in
            let f = try Fixture(dir: dir)
            let definition = try f.pipeline("  - { name: one, role: other, command: [ \"printf\", \"x\" ] }")
            var results: [RunResult] = []
            for _ in 0..<8 { results.append(try f.run(definition)) }
            try FileManager.default.removeItem(atPath: dir + "/store/" + results[2].layout.signatureKey(of: results[2].manifest))
            let entries = try f.catalog.entries()
            for _ in 0..<20 {
                let chosen = Verifier.sample(entries, percent: 10).map(\.setId)
                #expect(chosen.contains(entries.last!.setId))
                #expect(chosen.contains(results[2].setId))
                // Set ids of one second sort by their random part, so the untrusted set may be the newest.
                #expect(chosen.count >= Set([entries.last!.setId, results[2].setId]).count && chosen.count <= 3)
            }
            #expect(Verifier.sample(entries, percent: 100).count == 8)
        }
    }

    @Test func deepVerifyChecksTheIdentitiesShape() throws {
        try withTemporaryDirectory { dir in
            let f = try Fixture(dir: dir)
            try #"{"id":"participant::1220","keys":[{"keyPair":"AAAA","name":"k"}],"authorizedStoreSnapshot":"BBBB","version":"0.4"}"#
                .write(toFile: dir + "/good.json", atomically: true, encoding: .utf8)
            try #"{"hello":"world"}"#.write(toFile: dir + "/bad.json", atomically: true, encoding: .utf8)
            let result = try f.run(try f.pipeline("""
              - { name: good, role: identities, file: "\(dir)/good.json" }
              - { name: bad, role: identities, file: "\(dir)/bad.json" }
            """))
            let report = try Verifier(catalog: f.catalog).verify(setId: result.setId, identities: [f.identity])
            let good = try #require(report.components.first { $0.component == "good" })
            let bad = try #require(report.components.first { $0.component == "bad" })
            #expect(good.ok && good.checked.contains("identities shape"))
            #expect(!bad.ok && bad.error?.contains("identities") == true)
            #expect(!report.ok)
        }
    }

    static let pgBin = "/usr/lib/postgresql/15/bin"

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: pgBin + "/pg_restore")))
    func deepVerifyRunsPgRestoreListOnDumps() throws {
        try withTemporaryDirectory { dir in
            let f = try Fixture(dir: dir)
            // Starts like a custom-format archive but is not one.
            let result = try f.run(try f.pipeline("  - { name: db, role: other, command: [ \"sh\", \"-c\", \"printf PGDMP; head -c 100000 /dev/zero\" ] }"))
            let verifier = Verifier(catalog: f.catalog)
            let entry = try f.catalog.entry(setId: result.setId)
            let report = try verifier.verify(entry: entry, options: VerifyOptions(identities: [f.identity], pgBinDirectory: Self.pgBin))
            #expect(!report.ok)
            #expect(report.components[0].error?.contains("pg_restore --list failed") == true, "\(report)")
            let missing = try verifier.verify(entry: entry, options: VerifyOptions(identities: [f.identity], pgBinDirectory: dir + "/nowhere"))
            #expect(missing.components[0].error?.contains("pg_restore was not found") == true)
            // Shallow verify does not need pg_restore and holds.
            #expect(try verifier.verify(entry: entry, options: VerifyOptions()).ok)
        }
    }
}

@Suite struct RecoverTests {
    @Test func anOrphanSetGetsARecoveredManifestThatVerifies() throws {
        try withTemporaryDirectory { dir in
            let f = try Fixture(dir: dir)
            try Data(patternBytes(1 << 20 + 3)).write(to: URL(fileURLWithPath: dir + "/input"))
            let result = try f.run(try f.pipeline("""
              - { name: dump, role: participant, file: "\(dir)/input" }
              - { name: ids, role: other, command: [ "printf", "identities" ] }
            """))
            // The run died after signing, before the manifest: recover never replaces the stored
            // signature, so it refuses until someone with delete rights removed it.
            try FileManager.default.removeItem(atPath: dir + "/store/" + result.layout.manifestKey(of: result.manifest))
            #expect(try f.catalog.entries().isEmpty)
            let recoverer = Recoverer(store: f.store)
            let signingKey = try KeyFile.loadSigningKey(path: f.signingPath)
            let signed = #expect(throws: CNBackupError.self) {
                try recoverer.recover(setId: result.setId, options: .init(identities: [f.identity], signingKey: signingKey, olderThan: 0))
            }
            #expect(signed?.code == .alreadyExists && signed?.message.contains("never replaces") == true)
            // The common case: the run died during its captures, before signing anything.
            try FileManager.default.removeItem(atPath: dir + "/store/" + result.layout.signatureKey(of: result.manifest))
            let young = #expect(throws: CNBackupError.self) {
                try recoverer.recover(setId: result.setId, options: .init(identities: [f.identity], signingKey: signingKey))
            }
            #expect(young?.message.contains("may still be going") == true)

            let manifest = try recoverer.recover(setId: result.setId, options: .init(identities: [f.identity], signingKey: signingKey, kind: .generic, olderThan: 0))
            #expect(manifest.recovered == true && manifest.status == .complete)
            for original in result.manifest.components {
                let rebuilt = try #require(manifest.components.first { $0.name == original.name })
                #expect(rebuilt.storedSHA256 == original.storedSHA256)
                #expect(rebuilt.plaintextSize == original.plaintextSize)
                #expect(rebuilt.plaintextDigestHMAC == original.plaintextDigestHMAC)
                #expect(rebuilt.role == original.role && rebuilt.keyIds == original.keyIds)
            }
            // Trusted, but a complete backup for freshness and retention only when the operator says so.
            let entry = try f.catalog.entry(setId: result.setId)
            #expect(entry.isTrusted && !entry.isCompleteBackup)
            let counting = Catalog(store: f.store, pins: f.catalog.pins, countRecovered: true)
            #expect(try counting.entry(setId: result.setId).isCompleteBackup)
            let report = try Verifier(catalog: f.catalog).verify(setId: result.setId, identities: [f.identity])
            #expect(report.ok, "\(report)")
            #expect(report.status?.contains("recovered") == true)
            // Once it has a manifest it is no orphan.
            #expect(throws: CNBackupError.self) {
                try recoverer.recover(setId: result.setId, options: .init(identities: [f.identity], signingKey: signingKey, olderThan: 0))
            }
        }
    }

    @Test func objectsThatDoNotBelongAreLeftOutAndTheSetIsPartial() throws {
        try withTemporaryDirectory { dir in
            let f = try Fixture(dir: dir)
            let definition = try f.pipeline("""
              - { name: one, role: apps, command: [ "printf", "apps" ] }
              - { name: two, role: participant, command: [ "printf", "participant" ] }
            """)
            let a = try f.run(definition), b = try f.run(definition)
            let root = dir + "/store/"
            try FileManager.default.removeItem(atPath: root + a.layout.manifestKey(of: a.manifest))
            try FileManager.default.removeItem(atPath: root + a.layout.signatureKey(of: a.manifest))
            // Object "two" of set a is replaced by b's: its header names set b.
            try FileManager.default.removeItem(atPath: root + a.objectKey("two"))
            try FileManager.default.copyItem(atPath: root + b.objectKey("two"), toPath: root + a.objectKey("two"))
            let signingKey = try KeyFile.loadSigningKey(path: f.signingPath)
            let manifest = try Recoverer(store: f.store).recover(setId: a.setId, options: .init(identities: [f.identity], signingKey: signingKey, olderThan: 0))
            #expect(manifest.node.kind == .validator)
            #expect(manifest.components.map(\.name) == ["one"])
            #expect(manifest.status == .partial)
            #expect(manifest.failures.contains { $0.component == "two" && $0.reason.contains("swapped") })
            #expect(manifest.failures.contains { $0.component == "identities" })
            #expect(try !f.catalog.entry(setId: a.setId).isCompleteBackup)
            // A key that opens nothing recovers nothing.
            #expect(throws: CNBackupError.self) {
                try Recoverer(store: f.store).recover(setId: b.setId, options: .init(identities: [try newIdentity()], signingKey: signingKey, olderThan: 0))
            }
        }
    }
}

/// A store that hands back one flipped byte when an object is read: what a bad disk or a broken
/// proxy does after accepting the upload intact.
final class CorruptingReadStore: ObjectStore, @unchecked Sendable {
    let inner: FileSystemStore
    let flipAt: Int64
    init(inner: FileSystemStore, flipAt: Int64) { self.inner = inner; self.flipAt = flipAt }
    var displayName: String { inner.displayName }
    func put(key: String, from source: ByteStream, options: PutOptions) throws -> ObjectInfo { try inner.put(key: key, from: source, options: options) }
    func head(key: String) throws -> ObjectInfo? { try inner.head(key: key) }
    func list(prefix: String) throws -> [ObjectInfo] { try inner.list(prefix: prefix) }
    func delete(keys: [String]) throws { try inner.delete(keys: keys) }
    func tags(key: String) throws -> [String: String] { try inner.tags(key: key) }
    func get(key: String, range: ClosedRange<Int64>?) throws -> ByteStream {
        var bytes = try inner.get(key: key, range: range).readAll(limit: 1 << 30)
        let position = flipAt - (range?.lowerBound ?? 0)
        if key.hasSuffix(".zst.cnb"), position >= 0, position < Int64(bytes.count) { bytes[Int(position)] ^= 0x20 }
        return MemoryStream(bytes)
    }
}

@Suite struct ReadBackCatchesCorruptionTests {
    func run(readBack: String, flipAt: Int64) throws -> RunResult {
        try withTemporaryDirectory { dir in
            let f = try Fixture(dir: dir)
            try Data(patternBytes(3 << 20)).write(to: URL(fileURLWithPath: dir + "/input"))
            let definition = try f.pipeline(extra: "verify: { readBack: \(readBack) }", "  - { name: dump, role: other, file: \"\(dir)/input\" }")
            var logger = Logger(label: "test"); logger.logLevel = .critical
            let store = CorruptingReadStore(inner: FileSystemStore(root: dir + "/store"), flipAt: flipAt)
            return try BackupRunner(definition: definition, store: store, logger: logger).run()
        }
    }

    @Test func fullReadBackFailsTheCaptureOnAFlippedByte() throws {
        for offset: Int64 in [10, 2_000, 1 << 20, (3 << 20) - 100] {
            let result = try run(readBack: "full", flipAt: offset)
            #expect(!result.isComplete, "flip at \(offset)")
            #expect(result.manifest.failures.first?.reason.contains("authenticate") == true
                    || result.manifest.failures.first?.reason.contains("header") == true, "\(result.manifest.failures)")
        }
    }

    @Test func sampledReadBackCatchesAFlipInTheHeaderOrTheFirstSegment() throws {
        #expect(try !run(readBack: "sample", flipAt: 10).isComplete)
        #expect(try !run(readBack: "sample", flipAt: 2_000).isComplete)
        // Size only: the flip goes unnoticed until verify --deep.
        #expect(try run(readBack: "none", flipAt: 2_000).isComplete)
    }
}

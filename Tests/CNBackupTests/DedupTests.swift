import Foundation
import Testing
@testable import CNBackup
import CNBackupCore
import CNBackupTestKit
import CNBackupStorage
import CNBackupCatalog

/// Write-only deduplication: content-defined chunks, reuse only through signed records, readers
/// that refuse a chunk before releasing any of it, and a job whose secrets open nothing.
@Suite struct DedupTests {
    func dedupPipeline(_ f: Fixture, dir: String, input: String) throws -> PipelineDefinition {
        let keyFile = dir + "/dedup.key"
        if !FileManager.default.fileExists(atPath: keyFile) { _ = try KeyFile.generate(kind: .dedup, at: keyFile) }
        return try f.pipeline(extra: "dedup: { keyFile: \"\(keyFile)\" }", """
          - { name: dump, role: other, file: "\(input)", dedup: true }
        """)
    }

    func restored(_ f: Fixture, _ result: RunResult, dir: String) throws -> [UInt8] {
        let path = dir + "/restored-\(result.setId)"
        try Restorer(catalog: f.catalog).restore(f.catalog.trustedSet(setId: result.setId), component: "dump", identities: [f.identity],
                                                 to: .file(path: path, overwrite: false))
        return Array(try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    func chunkKeys(_ f: Fixture) throws -> [String] {
        try f.store.list(prefix: SetLayout.chunkFolder(node: "node-1")).map(\.key)
    }

    @Test func anInsertChangesTheChunksAroundIt() throws {
        let secret = try DedupSecret(try randomBytes(32))
        let chunker = ContentDefinedChunker(secret: secret)
        var generator = SystemRandomNumberGenerator()
        let original = (0..<(12 << 20)).map { _ in UInt8.random(in: 0...255, using: &generator) }
        var edited = original
        edited.insert(contentsOf: Array("an inserted row\n".utf8), at: 6 << 20)
        func ids(_ bytes: [UInt8]) throws -> [String] {
            let stream = ChunkingStream(MemoryStream(bytes, chunkSize: 100_000), chunker: chunker)
            var result: [String] = []
            var total = 0
            while let chunk = try stream.next() {
                #expect(chunk.count <= chunker.maximumSize)
                total += chunk.count
                result.append(try secret.chunkID(chunk))
            }
            #expect(total == bytes.count)
            return result
        }
        let before = try ids(original), after = try ids(edited)
        #expect(before.count >= 6 && before.count <= 48)
        // The chunk the insert lands in, and at most one on each side whose cut point it moves.
        #expect(Set(after).subtracting(before).count <= 3)
        // Another secret cuts elsewhere: sizes do not follow from the content alone.
        let other = ContentDefinedChunker(secret: try DedupSecret(try randomBytes(32)))
        let first = try ChunkingStream(MemoryStream(original), chunker: chunker).next()?.count
        let firstOther = try ChunkingStream(MemoryStream(original), chunker: other).next()?.count
        #expect(first != firstOther)
    }

    @Test func aSecondDumpStoresOnlyWhatChangedAndRestoresIdentical() throws {
        try withTemporaryDirectory { dir in
            let f = try Fixture(dir: dir)
            var bytes = patternBytes(10 << 20)
            try Data(bytes).write(to: URL(fileURLWithPath: dir + "/input"))
            let first = try f.run(try dedupPipeline(f, dir: dir, input: dir + "/input"))
            #expect(first.isComplete)
            let firstRecord = try #require(first.manifest.components.first?.dedup)
            #expect(firstRecord.newChunks == firstRecord.distinctChunks && firstRecord.reusedFrom.isEmpty)
            let chunksAfterFirst = try chunkKeys(f).count

            bytes.insert(contentsOf: patternBytes(50_000, seed: 42), at: 4 << 20)
            try FileManager.default.removeItem(atPath: dir + "/input")
            try Data(bytes).write(to: URL(fileURLWithPath: dir + "/input"))
            let second = try f.run(try dedupPipeline(f, dir: dir, input: dir + "/input"))
            let secondRecord = try #require(second.manifest.components.first?.dedup)
            #expect(secondRecord.reusedFrom == [first.setId])
            // The chunk the insert lands in, and at most one on each side whose cut point it moves.
            #expect(secondRecord.newChunks <= 3 && secondRecord.newChunks < secondRecord.distinctChunks / 2, "\(secondRecord)")
            #expect(try chunkKeys(f).count == chunksAfterFirst + secondRecord.newChunks)
            #expect(try restored(f, second, dir: dir) == bytes)
            let report = try Verifier(catalog: f.catalog).verify(setId: second.setId, identities: [f.identity])
            #expect(report.ok, "\(report)")
            // The listing shows sets only: chunks are not ignored keys of the catalog.
            #expect(try f.catalog.scan().ignored.isEmpty)
        }
    }

    @Test func aSwappedOrPlantedChunkIsRefusedBeforeAnyByte() throws {
        try withTemporaryDirectory { dir in
            let f = try Fixture(dir: dir)
            try Data(patternBytes(6 << 20)).write(to: URL(fileURLWithPath: dir + "/input"))
            let result = try f.run(try dedupPipeline(f, dir: dir, input: dir + "/input"))
            let keys = try chunkKeys(f)
            try #require(keys.count >= 3)
            // The writer swaps two chunks' bytes: each is a genuine chunk of this node, sealed to the
            // same recipients, but not the one the index binds at that place.
            let root = dir + "/store/"
            let a = try Data(contentsOf: URL(fileURLWithPath: root + keys[0])), b = try Data(contentsOf: URL(fileURLWithPath: root + keys[1]))
            try FileManager.default.removeItem(atPath: root + keys[0]); try FileManager.default.removeItem(atPath: root + keys[1])
            try b.write(to: URL(fileURLWithPath: root + keys[0])); try a.write(to: URL(fileURLWithPath: root + keys[1]))
            let refused = #expect(throws: CNBackupError.self) { _ = try restored(f, result, dir: dir) }
            #expect(refused?.code == .integrity)
            #expect(refused?.message.contains("another sealed header than the index binds") == true, "\(String(describing: refused))")
            #expect(!FileManager.default.fileExists(atPath: dir + "/restored-\(result.setId)"))
            // A chunk sealed by someone else to the public recipient, planted at a bound key.
            try FileManager.default.removeItem(atPath: root + keys[0])
            let forged = try seal(patternBytes(1000), to: [try Recipient(parsing: f.recipient)])
            try Data(forged).write(to: URL(fileURLWithPath: root + keys[0]))
            #expect(throws: CNBackupError.self) { _ = try restored(f, result, dir: dir) }
            #expect(try !Verifier(catalog: f.catalog).verify(setId: result.setId, identities: [f.identity]).ok)
        }
    }

    @Test func reuseComesFromSignedRecordsNeverFromListings() throws {
        try withTemporaryDirectory { dir in
            let f = try Fixture(dir: dir)
            let bytes = patternBytes(5 << 20)
            try Data(bytes).write(to: URL(fileURLWithPath: dir + "/input"))
            let pipeline = try dedupPipeline(f, dir: dir, input: dir + "/input")
            let first = try f.run(pipeline)
            // The writer plants objects named like chunks of this node for every id it can see in
            // the clear chunk table, under keys of its own choosing.
            let record = try #require(first.manifest.components.first?.dedup)
            var planted: [String] = []
            try f.catalog.readChunkTable(record, layout: first.layout) { reference in
                let key = SetLayout.chunkFolder(node: "node-1") + reference.id + "-0000000000000000" + SetLayout.objectSuffix
                try f.store.putBytes(key: key, Array("junk".utf8))
                planted.append(key)
            }
            // The first set is made untrusted (its signature removed): nothing vouches for its chunks now.
            let signature = try #require(try f.store.list(prefix: first.layout.directory + "/").first {
                SetLayout.manifestName(ofSignature: ($0.key as NSString).lastPathComponent) != nil
            })
            try f.store.delete(keys: [signature.key])
            let second = try f.run(pipeline)
            let secondRecord = try #require(second.manifest.components.first?.dedup)
            #expect(secondRecord.reusedFrom.isEmpty && secondRecord.newChunks == secondRecord.distinctChunks)
            var referenced: [String] = []
            try f.catalog.readChunkTable(secondRecord, layout: second.layout) { referenced.append($0.key) }
            #expect(Set(referenced).isDisjoint(with: planted))
            #expect(try restored(f, second, dir: dir) == bytes)
        }
    }

    @Test func theJobsSecretsOpenNoChunk() throws {
        try withTemporaryDirectory { dir in
            let f = try Fixture(dir: dir)
            try Data(patternBytes(2 << 20)).write(to: URL(fileURLWithPath: dir + "/input"))
            _ = try f.run(try dedupPipeline(f, dir: dir, input: dir + "/input"))
            let key = try #require(try chunkKeys(f).first)
            let sealed = try f.store.getBytes(key: key, limit: 16 << 20)
            // The job holds the signing key, the dedup secret and public recipients: as keys that
            // might open something, the dedup secret's bytes and a fresh identity are tried.
            let line = try KeyFile.readKeyLine(path: dir + "/dedup.key")
            let (_, secretBytes) = try KeyText.decode(line, expecting: [.dedupSecret], what: "test")
            for identity in [Identity.symmetric(try SymmetricKey(secretBytes)), try newIdentity()] {
                let refused = #expect(throws: CNBackupError.self) { _ = try openSealed(sealed, with: [identity]) }
                #expect(refused?.code == .wrongKey)
            }
            #expect(try openSealed(sealed, with: [f.identity]).count > 0)
        }
    }

    @Test func dedupNeedsItsKeyFileAndASingleJobDump() throws {
        try withTemporaryDirectory { dir in
            let f = try Fixture(dir: dir)
            let missing = #expect(throws: CNBackupError.self) {
                _ = try f.pipeline("""
                  - { name: dump, role: other, command: [ "true" ], dedup: true }
                """)
            }
            #expect(missing?.message.contains("keyFile") == true)
            #expect(throws: CNBackupError.self) {
                _ = try f.pipeline(extra: "dedup: { keyFile: k }", """
                  - { name: db, role: other, postgres: { host: h, user: u, databases: [ d ], jobs: 4, dedup: true } }
                """)
            }
        }
    }

    @Test func pruneDeletesOnlyUnreferencedChunksOnItsClockAndNothingMidRun() throws {
        try withTemporaryDirectory { dir in
            let f = try Fixture(dir: dir)
            _ = try KeyFile.generate(kind: .dedup, at: dir + "/dedup.key")
            let pipeline = try f.pipeline(extra: "dedup: { keyFile: \"\(dir)/dedup.key\", graceHours: 1 }", """
              - { name: dump, role: other, file: "\(dir)/input", dedup: true }
            """)
            let original = patternBytes(6 << 20)
            try Data(original).write(to: URL(fileURLWithPath: dir + "/input"))
            let a = try f.run(pipeline)
            var edited = original
            edited.replaceSubrange((3 << 20)..<((3 << 20) + 100_000), with: patternBytes(100_000, seed: 9))
            try FileManager.default.removeItem(atPath: dir + "/input")
            try Data(edited).write(to: URL(fileURLWithPath: dir + "/input"))
            let b = try f.run(pipeline)
            let bRecord = try #require(b.manifest.components.first?.dedup)
            #expect(bRecord.reusedFrom == [a.setId] && bRecord.newChunks >= 1)
            var onlyA = Set<String>()
            try f.catalog.readChunkTable(try #require(a.manifest.components.first?.dedup), layout: a.layout) { onlyA.insert($0.key) }
            try f.catalog.readChunkTable(bRecord, layout: b.layout) { onlyA.remove($0.key) }
            try #require(!onlyA.isEmpty)

            let collector = ChunkCollector(catalog: f.catalog)
            let entries = try f.catalog.entries(node: "node-1")
            // Within twice the grace period of their writing, even unreferenced chunks stay.
            let now = try collector.plan(node: "node-1", entries: entries, deleting: [a.setId])
            #expect(now.unreferenced.isEmpty && now.tooYoung == onlyA.count)
            // A run still going (a set folder with an object and no manifest, written within 2G) stops every chunk deletion.
            let later = Date().addingTimeInterval(3 * 3600)
            let running = "node-1/migration-4/serial-2/20991231T000000Z-0badc0de/journal-0000000000000000.json"
            try f.store.putBytes(key: running, Array("{}".utf8))
            try FileManager.default.setAttributes([.modificationDate: later.addingTimeInterval(-600)], ofItemAtPath: dir + "/store/" + running)
            let midRun = try collector.plan(node: "node-1", entries: entries, deleting: [a.setId], now: later)
            #expect(midRun.refused != nil && midRun.unreferenced.isEmpty)
            try f.store.delete(keys: [running])
            // Past 2G with nothing running: exactly the chunks only the deleted set used.
            let due = try collector.plan(node: "node-1", entries: entries, deleting: [a.setId], now: later)
            #expect(due.refused == nil && Set(due.unreferenced) == onlyA)
            // Without deleting A, its chunks stay referenced.
            #expect(try collector.plan(node: "node-1", entries: entries, deleting: [], now: later).unreferenced.isEmpty)
            // Prune deletes A, then the chunks; B restores whole.
            try f.store.delete(keys: try f.store.list(prefix: a.layout.directory + "/").map(\.key))
            #expect(try collector.apply(due) == onlyA.count)
            #expect(try restored(f, b, dir: dir) == edited)

            // The writer re-plants a pruned chunk at its old key; a run with that content again never reuses it.
            let replanted = try #require(onlyA.first)
            try f.store.putBytes(key: replanted, Array("planted".utf8))
            try FileManager.default.removeItem(atPath: dir + "/input")
            try Data(original).write(to: URL(fileURLWithPath: dir + "/input"))
            let c = try f.run(pipeline)
            var cKeys = Set<String>()
            try f.catalog.readChunkTable(try #require(c.manifest.components.first?.dedup), layout: c.layout) { cKeys.insert($0.key) }
            #expect(cKeys.isDisjoint(with: onlyA))
            #expect(try restored(f, c, dir: dir) == original)
        }
    }

    @Test func copyCarriesTheChunksAndTheDestinationDeduplicatesToo() throws {
        try withTemporaryDirectory { dir in
            let f = try Fixture(dir: dir)
            var bytes = patternBytes(6 << 20)
            try Data(bytes).write(to: URL(fileURLWithPath: dir + "/input"))
            let pipeline = try dedupPipeline(f, dir: dir, input: dir + "/input")
            let a = try f.run(pipeline)
            bytes.append(contentsOf: patternBytes(300_000, seed: 5))
            try FileManager.default.removeItem(atPath: dir + "/input")
            try Data(bytes).write(to: URL(fileURLWithPath: dir + "/input"))
            let b = try f.run(pipeline)
            let destination = FileSystemStore(root: dir + "/copy")
            let copier = Copier(source: f.catalog, destination: destination)
            let first = try copier.copy(setIds: [a.setId])
            #expect(first.allSatisfy { $0.error == nil && $0.verified }, "\(first)")
            let second = try copier.copy(setIds: [b.setId])
            #expect(second.allSatisfy { $0.error == nil && $0.verified }, "\(second)")
            let record = try #require(b.manifest.components.first?.dedup)
            // The chunks B shares with A were found at the destination, not copied again.
            #expect(second[0].skippedObjects >= record.distinctChunks - record.newChunks)
            let copied = Catalog(store: destination, signers: [f.signer])
            try Restorer(catalog: copied).restore(copied.trustedSet(setId: b.setId), component: "dump", identities: [f.identity],
                                                  to: .file(path: dir + "/from-copy", overwrite: false))
            #expect(Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/from-copy"))) == bytes)
        }
    }

    @Test func underObjectLockAChunkIsReusedOnlyWhileItsLockCoversTheNewSet() throws {
        let grace: TimeInterval = 86_400
        let lock = ChunkLock(lockDays: 30, grace: grace)
        #expect(lock.chunkDays == 32)
        let written = Date()
        var reference = ChunkReference(id: "x", key: ".chunks/n/x-0.zst.cnb", headerSHA256: "", storedSize: 1, storedSHA256: "",
                                       plaintextSize: 1, keyIds: [])
        reference.retainUntil = Timestamp.format(written.addingTimeInterval(32 * 86_400))
        #expect(ChunkLock.covers(reference, start: written.addingTimeInterval(3600), grace: grace, lockDays: 30))
        #expect(ChunkLock.covers(reference, start: written.addingTimeInterval(grace - 60), grace: grace, lockDays: 30))
        #expect(!ChunkLock.covers(reference, start: written.addingTimeInterval(grace + 3600), grace: grace, lockDays: 30))
        reference.retainUntil = nil
        #expect(!ChunkLock.covers(reference, start: written, grace: grace, lockDays: 30))
        #expect(ChunkLock.covers(reference, start: written, grace: grace, lockDays: nil))
    }

    @Test func recoverRebuildsADeduplicatedComponentFromItsJournal() throws {
        try withTemporaryDirectory { dir in
            let f = try Fixture(dir: dir)
            let bytes = patternBytes(3 << 20)
            try Data(bytes).write(to: URL(fileURLWithPath: dir + "/input"))
            let result = try f.run(try dedupPipeline(f, dir: dir, input: dir + "/input"))
            // The run died before its commit: no manifest, no signature.
            let committed = try f.store.list(prefix: result.layout.directory + "/").map(\.key).filter {
                let name = ($0 as NSString).lastPathComponent
                return SetLayout.isManifestName(name) || SetLayout.manifestName(ofSignature: name) != nil
            }
            try f.store.delete(keys: committed)
            var options = Recoverer.Options(identities: [f.identity], signingKey: try KeyFile.loadSigningKey(path: f.signingPath), olderThan: 0)
            options.kind = .generic
            let manifest = try Recoverer(store: f.store).recover(setId: result.setId, options: options)
            #expect(manifest.components.map(\.name) == ["dump"] && manifest.components[0].dedup != nil, "\(manifest.failures)")
            let catalog = Catalog(store: f.store, signers: [f.signer])
            try Restorer(catalog: catalog).restore(catalog.trustedSet(setId: result.setId), component: "dump", identities: [f.identity],
                                                   to: .file(path: dir + "/recovered", overwrite: false))
            #expect(Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/recovered"))) == bytes)
        }
    }

    @Test func aLostOrDamagedChunkNamesEverySetThatUsesIt() throws {
        try withTemporaryDirectory { dir in
            let f = try Fixture(dir: dir)
            try Data(patternBytes(4 << 20)).write(to: URL(fileURLWithPath: dir + "/input"))
            let pipeline = try dedupPipeline(f, dir: dir, input: dir + "/input")
            let a = try f.run(pipeline)
            let b = try f.run(pipeline)
            #expect(b.manifest.components[0].dedup?.newChunks == 0)
            let chunk = try #require(try chunkKeys(f).first)
            // Damaged in place (same size): only a deep verify sees it, and names both sets.
            let path = dir + "/store/" + chunk
            var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
            bytes[bytes.count - 10] ^= 0x40
            try FileManager.default.removeItem(atPath: path)
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            let deep = try Verifier(catalog: f.catalog).verify(setId: a.setId, identities: [f.identity])
            let deepError = deep.components.compactMap(\.error).joined()
            #expect(!deep.ok && deepError.contains(a.setId) && deepError.contains(b.setId), "\(deepError)")
            // Lost: the plain verify sees it too.
            try FileManager.default.removeItem(atPath: path)
            let shallow = try Verifier(catalog: f.catalog).verify(setId: b.setId)
            let shallowError = shallow.components.compactMap(\.error).joined()
            #expect(!shallow.ok && shallowError.contains(a.setId) && shallowError.contains(b.setId), "\(shallowError)")
        }
    }
}

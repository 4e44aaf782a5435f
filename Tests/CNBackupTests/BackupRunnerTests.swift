import Foundation
import Logging
import Testing
@testable import CNBackup
import CNBackupCore
import CNBackupTestKit
import CNBackupHTTP
import CNBackupStorage
import CNBackupCatalog

/// A node's keys and a file store in a temporary folder.
extension RunResult {
    /// The store key of `component`'s sealed object, as the signed manifest records it.
    func objectKey(_ component: String) -> String {
        layout.key(relative: manifest.components.first { $0.name == component }?.objectKey ?? "no component \(component)")
    }
}

struct Fixture {
    let dir: String
    let identity: Identity
    let identityPath: String
    let recipient: String
    let signer: SignerKey
    let signingPath: String
    var storeURL: String { "file://\(dir)/store" }
    var store: any ObjectStore { FileSystemStore(root: dir + "/store") }
    var catalog: Catalog { Catalog(store: store, signers: [signer]) }

    init(dir: String) throws {
        self.dir = dir
        identityPath = dir + "/identity"
        recipient = try KeyFile.generate(kind: .x25519, at: identityPath)
        identity = try KeyFile.loadIdentity(path: identityPath)
        signingPath = dir + "/signing"
        signer = try SignerKey(parsing: try KeyFile.generate(kind: .ed25519, at: signingPath))
    }

    func pipeline(kind: String = "generic", extra: String = "", _ captures: String) throws -> PipelineDefinition {
        try PipelineDefinition.parse("""
        version: 1
        node: { name: node-1, kind: \(kind) }
        epoch: { migrationId: 4, serial: 2 }
        store: { url: "\(storeURL)" }
        encryption: { recipients: [ "\(recipient)" ] }
        signing: { keyFile: "\(signingPath)" }
        parallelism: 4
        \(extra)
        captures:
        \(captures)
        """)
    }

    func run(_ definition: PipelineDefinition) throws -> RunResult {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        return try BackupRunner(definition: definition, store: store, logger: logger).run()
    }
}

@Suite struct BackupRunnerTests {
    @Test func runVerifyRestoreRoundTrip() throws {
        try withTemporaryDirectory { dir in
            let f = try Fixture(dir: dir)
            let input = patternBytes(2 << 20 + 99)
            try Data(input).write(to: URL(fileURLWithPath: dir + "/input"))
            let result = try f.run(try f.pipeline("""
              - { name: dump, role: other, file: "\(dir)/input" }
              - { name: echo, role: other, command: [ "printf", "hello" ] }
            """))
            #expect(result.isComplete)
            #expect(result.layout.directory == "node-1/migration-4/serial-2/\(result.setId)")
            let entries = try f.catalog.entries()
            #expect(entries.count == 1 && entries[0].isCompleteBackup)
            #expect(try f.store.tags(key: result.objectKey("dump"))["cnb-migration-id"] == "4")

            let report = try Verifier(catalog: f.catalog).verify(setId: result.setId, identities: [f.identity])
            #expect(report.ok, "\(report)")
            try Restorer(catalog: f.catalog).restore(f.catalog.trustedSet(setId: result.setId), component: "dump", identities: [f.identity],
                                                     to: .file(path: dir + "/restored", overwrite: false))
            #expect(Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/restored"))) == input)
            // The plaintext digest in the manifest is an HMAC, not a bare hash.
            let record = try #require(result.manifest.components.first { $0.name == "dump" })
            #expect(record.plaintextDigestHMAC != SHA256Hasher.hash(input).hex)
        }
    }

    @Test func failedCaptureCommitsAPartialSet() throws {
        try withTemporaryDirectory { dir in
            let f = try Fixture(dir: dir)
            let result = try f.run(try f.pipeline("""
              - { name: good, role: other, command: [ "printf", "fine" ] }
              - { name: bad, role: other, command: [ "sh", "-c", "printf half; echo 'pg_dump: connection refused' >&2; exit 3" ] }
            """))
            #expect(!result.isComplete)
            #expect(result.manifest.failures.map(\.component) == ["bad"])
            #expect(result.manifest.failures[0].reason.contains("status 3"))
            // The child's standard error goes to the job's log only: never free text into the bucket.
            #expect(!result.manifest.failures[0].reason.contains("connection refused"))
            #expect(!String(decoding: try result.manifest.encoded(), as: UTF8.self).contains("connection refused"))
            let entry = try f.catalog.entry(setId: result.setId)
            #expect(entry.isTrusted && !entry.isCompleteBackup)
            // Nothing of the failed capture was stored.
            #expect(try f.store.list(prefix: result.layout.key(relative: "bad-")).isEmpty)
            #expect(try !Verifier(catalog: f.catalog).verify(setId: result.setId).ok)
        }
    }

    /// The apps capture is held up; the participant capture must not start before it ends.
    @Test func appsFinishBeforeParticipantStarts() throws {
        try withTemporaryDirectory { dir in
            let f = try Fixture(dir: dir)
            let log = dir + "/events"
            let result = try f.run(try f.pipeline("""
              - { name: participant, role: participant, command: [ "sh", "-c", "echo participant-start >> \(log); printf p" ] }
              - { name: apps, role: apps, command: [ "sh", "-c", "sleep 1; echo apps-end >> \(log); printf a" ] }
              - { name: mediator, role: other, command: [ "sh", "-c", "echo other >> \(log); printf m" ] }
            """))
            let events = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
            #expect(events.firstIndex(of: "apps-end")! < events.firstIndex(of: "participant-start")!)
            let barrier = try #require(result.manifest.barrier)
            #expect(barrier.holds)
            #expect(barrier.appsCompletedOrder! < barrier.participantStartedOrder!)
            #expect(try Verifier(catalog: f.catalog).verify(setId: result.setId).ok)
        }
    }

    @Test func tamperedManifestObjectsAndSignaturesAreRefused() throws {
        try withTemporaryDirectory { dir in
            let f = try Fixture(dir: dir)
            let definition = try f.pipeline("  - { name: one, role: other, command: [ \"printf\", \"first set\" ] }\n  - { name: two, role: other, command: [ \"printf\", \"second\" ] }")
            let a = try f.run(definition)
            let b = try f.run(definition)
            let root = dir + "/store/"

            // An object swapped in from another set fails, though its own bytes are intact.
            let objectA = root + a.objectKey("one"), objectB = root + b.objectKey("one")
            let saved = try Data(contentsOf: URL(fileURLWithPath: objectA))
            try FileManager.default.removeItem(atPath: objectA)
            try FileManager.default.copyItem(atPath: objectB, toPath: objectA)
            #expect(try !Verifier(catalog: f.catalog).verify(setId: a.setId).ok)
            #expect(throws: CNBackupError.self) {
                try Restorer(catalog: f.catalog).restore(f.catalog.trustedSet(setId: a.setId), component: "one", identities: [f.identity], to: .file(path: dir + "/out", overwrite: false))
            }
            #expect(!FileManager.default.fileExists(atPath: dir + "/out"))
            try saved.write(to: URL(fileURLWithPath: objectA))
            #expect(try Verifier(catalog: f.catalog).verify(setId: a.setId).ok)

            // An edited manifest.
            let manifestPath = root + a.layout.manifestKey(of: a.manifest)
            let original = try String(contentsOfFile: manifestPath, encoding: .utf8)
            try original.replacingOccurrences(of: "\"partial\"", with: "\"complete\"").replacingOccurrences(of: "first", with: "frist")
                .replacingOccurrences(of: "\"toolVersion\" : \"", with: "\"toolVersion\" : \"x").write(toFile: manifestPath, atomically: true, encoding: .utf8)
            #expect(try f.catalog.entry(setId: a.setId).signature == .invalid)
            #expect(try !Verifier(catalog: f.catalog).verify(setId: a.setId).ok)

            // Re-signed by another key: not pinned.
            try original.write(toFile: manifestPath, atomically: true, encoding: .utf8)
            _ = try KeyFile.generate(kind: .ed25519, at: dir + "/forger")
            let forged = try ManifestSignature.sign(Array(original.utf8), with: try KeyFile.loadSigningKey(path: dir + "/forger"), use: .manifest)
            try Data(forged.encoded()).write(to: URL(fileURLWithPath: root + a.layout.signatureKey(of: a.manifest)))
            #expect(try f.catalog.entry(setId: a.setId).signature == .unpinnedSigner(forged.signer.keyID))

            // No signature at all.
            try FileManager.default.removeItem(atPath: root + a.layout.signatureKey(of: a.manifest))
            #expect(try f.catalog.entry(setId: a.setId).signature == .missing)
            #expect(try !f.catalog.entry(setId: a.setId).isCompleteBackup)
            #expect(try f.catalog.entry(setId: b.setId).isCompleteBackup)
        }
    }

    @Test func unknownSetIdsSayWhatToDo() throws {
        try withTemporaryDirectory { dir in
            let f = try Fixture(dir: dir)
            let unknown = #expect(throws: CNBackupError.self) { try f.catalog.entry(setId: "20260101T000000Z-00000000") }
            #expect(unknown?.code == .notFound)
            #expect(unknown?.message.contains("cnbackup list") == true)
            #expect(throws: CNBackupError.self) { try f.catalog.entry(setId: "../../etc") }
        }
    }
}

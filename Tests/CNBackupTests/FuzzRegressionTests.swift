import Foundation
import Logging
import Testing
@testable import CNBackup
import CNBackupCore
import CNBackupTestKit
import CNBackupHTTP
import CNBackupStorage
import CNBackupTesting
import CNBackupCatalog

/// The fuzz targets' readers (Fuzz/Sources), run here on their seed corpora (Fuzz/corpus and the
/// shipped pipelines/*.yaml), on cut and bit-flipped copies of the seeds, and on every input that
/// once found something (Resources/fuzz-regressions/<target>/). Each input must read or be refused
/// with a CNBackupError: a trap would end the test process.
@Suite struct FuzzRegressionTests {
    // MARK: the fuzz targets' harnesses (keep in step with Fuzz/Sources/*)

    /// FuzzSupport's fixed keys: the golden vector's X25519 (0x11...) and symmetric (0x22...) keys,
    /// and the signing key 0x66... .
    static let x25519Secret = [UInt8](repeating: 0x11, count: 32)
    static let symmetricSecret = [UInt8](repeating: 0x22, count: 32)
    static let signingSecret = [UInt8](repeating: 0x66, count: 32)

    static func identities() throws -> [Identity] {
        [.x25519(secret: SecretBytes(x25519Secret), publicKey: try X25519.publicKey(privateKey: x25519Secret)),
         .symmetric(try SymmetricKey(symmetricSecret))]
    }

    static func signingKey() throws -> SigningKey {
        SigningKey(secret: SecretBytes(signingSecret), publicKey: SignerKey(bytes: try Ed25519.publicKey(privateKey: signingSecret)))
    }

    /// FuzzSealedReader: open the whole object, chunk size and key order picked by the length.
    static func readSealed(_ bytes: [UInt8]) throws -> [UInt8] {
        let chunkSizes = [1 << 20, 1, 7, 64, 4099]
        let all = try identities()
        let offered = bytes.count % 2 == 0 ? all : all.reversed()
        let opened = try OpeningStream(MemoryStream(bytes, chunkSize: chunkSizes[bytes.count % chunkSizes.count]), identities: offered)
        return try opened.readAll(limit: 1 << 26)
    }

    /// FuzzManifest: SIGNATURE 0x00 MANIFEST, or a bare manifest that the harness signs. Returns
    /// the catalog's entries (and runs the shallow verifier on trusted ones).
    static func readManifest(_ input: [UInt8]) throws -> [CatalogEntry] {
        let key = try signingKey()
        let signatureBytes: [UInt8]?
        let manifestBytes: [UInt8]
        if let split = input.firstIndex(of: 0) {
            signatureBytes = Array(input[..<split]); manifestBytes = Array(input[(split + 1)...])
        } else {
            signatureBytes = try ManifestSignature.sign(input, with: key, use: .manifest).encoded(); manifestBytes = input
        }
        var layout = SetLayout(node: "fuzz-node", epoch: Epoch(migrationId: 0, serial: 0), setId: "20260101T000000Z-00000000")
        if let decoded = try? Manifest.decode(manifestBytes) {
            #expect(try Manifest.decode(try decoded.encoded()) == decoded)
            let own = SetLayout(node: decoded.node.name, epoch: Epoch(migrationId: decoded.epoch.migrationId, serial: decoded.epoch.serial),
                                setId: decoded.setId)
            if let parsed = SetLayout.parse(key: own.key(relative: SetLayout.legacyManifestName)), parsed.layout == own { layout = own }
        }
        if let signatureBytes, let signature = try? ManifestSignature.decode(signatureBytes) {
            #expect(try ManifestSignature.decode(signature.encoded()) == signature)
        }
        let store = MemoryStore()
        store.plant(key: layout.key(relative: SetLayout.legacyManifestName), manifestBytes)
        if let signatureBytes, !signatureBytes.isEmpty { store.plant(key: layout.key(relative: SetLayout.signatureName(of: SetLayout.legacyManifestName)), signatureBytes) }
        let catalog = Catalog(store: store, signers: [key.publicKey])
        let entries = try catalog.entries()
        for entry in entries where entry.isTrusted {
            _ = try Verifier(catalog: catalog).verify(setId: entry.setId, node: entry.layout.node)
        }
        return entries
    }

    /// FuzzPipelineDefinition.
    static func readPipeline(_ bytes: [UInt8]) throws -> PipelineDefinition {
        let definition = try PipelineDefinition.parse(String(decoding: bytes, as: UTF8.self), file: "fuzz.yaml")
        _ = definition.captures.map(\.source.summary)
        try definition.checkDatabaseEpochs(file: "fuzz.yaml")
        return definition
    }

    /// Reads or refuses with a CNBackupError; any other error fails the test.
    static func readsOrRefuses(_ what: String, _ body: () throws -> Void) {
        do { try body() } catch is CNBackupError {} catch {
            Issue.record("\(what): threw \(type(of: error)), not a CNBackupError: \(error)")
        }
    }

    // MARK: inputs

    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The files of a folder, by name; none when it does not exist.
    static func files(_ dir: URL) throws -> [(name: String, bytes: [UInt8])] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir.path) else { return [] }
        return try names.sorted().filter { !$0.hasPrefix(".") }.map { ($0, Array(try Data(contentsOf: dir.appendingPathComponent($0)))) }
    }

    static func seeds(_ target: String) throws -> [(name: String, bytes: [UInt8])] {
        var all = try files(root.appendingPathComponent("Fuzz/corpus/\(target)"))
        if target == "pipeline" {
            all += try files(root.appendingPathComponent("pipelines")).filter { $0.name.hasSuffix(".yaml") }
        }
        return all
    }

    static func regressions(_ target: String) throws -> [(name: String, bytes: [UInt8])] {
        guard let url = Bundle.module.url(forResource: "fuzz-regressions", withExtension: nil, subdirectory: "Resources") else { return [] }
        return try files(url.appendingPathComponent(target))
    }

    /// Positions to cut or flip at: every one for small inputs, about `most` spread over larger ones.
    static func positions(_ count: Int, most: Int = 300) -> [Int] {
        Array(stride(from: 0, to: count, by: max(1, count / most)))
    }

    // MARK: tests

    @Test func sealedSeedsOpenAndDamagedCopiesAreRefused() throws {
        let seeds = try Self.seeds("sealed")
        #expect(seeds.count >= 3)
        for seed in seeds {
            #expect(throws: Never.self, "\(seed.name)") { _ = try Self.readSealed(seed.bytes) }
            for length in Self.positions(seed.bytes.count) {
                #expect(throws: CNBackupError.self, "\(seed.name) cut to \(length)") { _ = try Self.readSealed(Array(seed.bytes[0..<length])) }
            }
            // Every byte of a sealed object is authenticated: one flipped bit anywhere is refused.
            for position in Self.positions(seed.bytes.count) {
                var flipped = seed.bytes
                flipped[position] ^= 0x04
                #expect(throws: CNBackupError.self, "\(seed.name) flipped at \(position)") { _ = try Self.readSealed(flipped) }
            }
            #expect(throws: CNBackupError.self, "\(seed.name) with a byte appended") { _ = try Self.readSealed(seed.bytes + [0]) }
        }
    }

    @Test func manifestSeedsReadAndDamagedCopiesAreNotTrusted() throws {
        let seeds = try Self.seeds("manifest")
        #expect(seeds.count >= 2)
        for seed in seeds {
            let entries = try Self.readManifest(seed.bytes)
            #expect(entries.count == 1, "\(seed.name)")
            guard let split = seed.bytes.firstIndex(of: 0), split > 0 else { continue }
            // A signed pair: trusted as it is, and no longer once a bit of the manifest flips.
            #expect(entries.first?.isTrusted == true, "\(seed.name)")
            let original = try ManifestSignature.decode(Array(seed.bytes[..<split]))
            for position in Self.positions(seed.bytes.count) where position != split {
                var flipped = seed.bytes
                flipped[position] ^= 0x04
                Self.readsOrRefuses("\(seed.name) flipped at \(position)") {
                    let trusted = try Self.readManifest(flipped).contains(where: \.isTrusted)
                    if position > split {
                        #expect(!trusted, "\(seed.name): a manifest flipped at \(position) is still trusted")
                    } else if trusted {
                        // Only a signature file that still decodes to the same signature may pass
                        // (base64 has spare bits; the signature itself is what is checked).
                        #expect(try ManifestSignature.decode(Array(flipped[..<split])) == original)
                    }
                }
            }
        }
    }

    @Test func pipelineSeedsParseAndDamagedCopiesAreRefusedCleanly() throws {
        let seeds = try Self.seeds("pipeline")
        #expect(seeds.count >= 5)
        for seed in seeds {
            #expect(throws: Never.self, "\(seed.name)") { _ = try Self.readPipeline(seed.bytes) }
            for length in Self.positions(seed.bytes.count, most: 100) {
                Self.readsOrRefuses("\(seed.name) cut to \(length)") { _ = try Self.readPipeline(Array(seed.bytes[0..<length])) }
            }
            for position in Self.positions(seed.bytes.count, most: 100) {
                var flipped = seed.bytes
                flipped[position] ^= 0x04
                Self.readsOrRefuses("\(seed.name) flipped at \(position)") { _ = try Self.readPipeline(flipped) }
            }
        }
    }

    /// FuzzS3XML: S3's answers through XMLParser. Seeds parse, damaged copies never crash, no
    /// external entity is ever read, and nesting far deeper than S3's is refused.
    @Test func s3XMLSeedsParseAndDamagedCopiesAreRefusedCleanly() throws {
        let seeds = try Self.seeds("s3xml")
        #expect(seeds.count >= 3)
        for seed in seeds {
            for length in Self.positions(seed.bytes.count, most: 100) { FuzzEntryPoints.parseS3XML(Array(seed.bytes[0..<length])) }
            for position in Self.positions(seed.bytes.count, most: 100) {
                var flipped = seed.bytes
                flipped[position] ^= 0x04
                FuzzEntryPoints.parseS3XML(flipped)
            }
        }
        let list = try #require(seeds.first { $0.name == "list.xml" })
        let root = try #require(S3XMLElement.parse(list.bytes))
        #expect(root.all("Contents").compactMap { $0.value("Key") } == ["p/a&b", "p/c<d"])
        #expect(root.value("NextContinuationToken") == "abc==")
        let laughs = try #require(seeds.first { $0.name == "laughs.xml" })
        if let parsed = S3XMLElement.parse(laughs.bytes) {
            #expect(!(parsed.value("Message") ?? "").contains("root:"), "an external entity was resolved")
            #expect((parsed.value("Code") ?? "").count < 10_000)
        }
        let deep = String(repeating: "<a>", count: 200) + String(repeating: "</a>", count: 200)
        #expect(S3XMLElement.parse(Array(deep.utf8)) == nil)
    }

    @Test(arguments: ["sealed", "manifest", "pipeline"])
    func inputsThatFoundSomethingAreRefusedCleanly(target: String) throws {
        for input in try Self.regressions(target) {
            Self.readsOrRefuses("fuzz-regressions/\(target)/\(input.name)") {
                switch target {
                case "sealed": _ = try Self.readSealed(input.bytes)
                case "manifest": _ = try Self.readManifest(input.bytes)
                default: _ = try Self.readPipeline(input.bytes)
                }
            }
        }
    }

    /// A YAML alias bomb (found while fuzzing the pipeline parser: a few hundred bytes that Yams'
    /// duplicate-key check would hash for hours) is refused before composing; the scan for aliases
    /// leaves shell commands with `&&` and `*` alone.
    @Test func yamlAliasesAreRefused() throws {
        let bombs = try Self.regressions("pipeline").filter { $0.name.hasPrefix("alias-bomb") }
        #expect(bombs.count == 2)
        for bomb in bombs {
            let error = #expect(throws: CNBackupError.self, "\(bomb.name)") { _ = try Self.readPipeline(bomb.bytes) }
            #expect(error?.message.contains("YAML aliases are not allowed") == true, "\(bomb.name)")
        }
        let seed = try #require(try Self.seeds("pipeline").first { $0.name == "every-field.yaml" })
        let text = String(decoding: seed.bytes, as: UTF8.self)
        let aliased = text.replacingOccurrences(of: "env: { PGCONNECT_TIMEOUT: \"10\" }", with: "env: &pg { PGCONNECT_TIMEOUT: \"10\" }")
            .replacingOccurrences(of: "env: { LANG: C.UTF-8 }", with: "env: *pg")
        #expect(aliased != text)
        let error = #expect(throws: CNBackupError.self) { _ = try PipelineDefinition.parse(aliased) }
        #expect(error?.message.contains("(found *pg)") == true)
        for command in [#"[ sh, -c, "pg_dump db && ls *" ]"#, #"[ sh, -c, "a&b *c d*e &&x" ]"#, "[ 'rm', '/tmp/*.dump' ]"] {
            let shell = text.replacingOccurrences(of: #"[ /bin/sh, -c, "echo hi" ]"#, with: command)
            #expect(shell != text)
            #expect(throws: Never.self, "\(command)") { _ = try PipelineDefinition.parse(shell) }
        }
        #expect(firstYAMLAlias(in: "a: &x 1\nb: *x\n") == "x")
        #expect(firstYAMLAlias(in: "a: [&x-1_2 1, *x-1_2]") == "x-1_2")
        #expect(firstYAMLAlias(in: "a: &x 1\nb: a*x\n") == nil)
    }

    /// FuzzSupport spells the same keys as key-file lines.
    @Test func fuzzTargetsUseTheseKeys() throws {
        let support = try String(contentsOf: Self.root.appendingPathComponent("Fuzz/Sources/FuzzSupport/FuzzSupport.swift"), encoding: .utf8)
        #expect(support.contains(KeyText.encode(.x25519Secret, Self.x25519Secret)))
        #expect(support.contains(KeyText.encode(.symmetricSecret, Self.symmetricSecret)))
        #expect(support.contains(KeyText.encode(.ed25519Secret, Self.signingSecret)))
    }

    // MARK: seed corpus

    /// Writes the generated seeds into Fuzz/corpus when CNBACKUP_WRITE_FUZZ_SEEDS is set (their data
    /// keys are random, so each run writes other bytes; the committed ones are kept otherwise).
    @Test(.enabled(if: ProcessInfo.processInfo.environment["CNBACKUP_WRITE_FUZZ_SEEDS"] != nil))
    func writeSeeds() throws {
        let corpus = Self.root.appendingPathComponent("Fuzz/corpus")
        func write(_ target: String, _ name: String, _ bytes: [UInt8]) throws {
            let dir = corpus.appendingPathComponent(target)
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            try Data(bytes).write(to: dir.appendingPathComponent(name))
        }
        let ids = try Self.identities()
        let recipients = ids.map(\.recipient)
        let description = ObjectDescription(setId: "20260101T000000Z-00000000", node: "fuzz-node", migrationId: 0, serial: 0,
                                            component: "dump", role: "other", captureStart: "2026-01-01T00:00:00.000Z")
        try write("sealed", "golden-v1.cnb", try GoldenVector.object())
        try write("sealed", "multisegment.cnb", try SealingStream(MemoryStream(patternBytes(3000)), recipients: recipients,
                                                                 description: description, segmentSize: 1024).readAll(limit: 1 << 20))
        try write("sealed", "empty-symmetric.cnb", try SealingStream(MemoryStream([]), recipients: [recipients[1]],
                                                                    description: ObjectDescription()).readAll(limit: 1 << 20))

        // Real sets, from the backup runner: a complete validator set (signed pair, and its
        // identities object as a sealed seed) and a partial generic one (bare manifest).
        try withTemporaryDirectory { dir in
            try (KeyText.encode(.symmetricSecret, Self.symmetricSecret) + "\n").write(toFile: dir + "/symmetric", atomically: true, encoding: .utf8)
            try (KeyText.encode(.ed25519Secret, Self.signingSecret) + "\n").write(toFile: dir + "/signing", atomically: true, encoding: .utf8)
            try Data(patternBytes(4000)).write(to: URL(fileURLWithPath: dir + "/identities.json"))
            try Data("apps dump".utf8).write(to: URL(fileURLWithPath: dir + "/apps.dump"))
            try Data("participant dump".utf8).write(to: URL(fileURLWithPath: dir + "/participant.dump"))
            let recipient = KeyText.encode(.x25519Public, try X25519.publicKey(privateKey: Self.x25519Secret))
            let store = FileSystemStore(root: dir + "/store")
            var logger = Logger(label: "fuzz-seeds")
            logger.logLevel = .critical
            func run(_ yaml: String) throws -> RunResult {
                try BackupRunner(definition: try PipelineDefinition.parse(yaml), store: store, logger: logger).run()
            }
            let common = """
            epoch: { migrationId: 3, serial: 0, synchronizerId: "global-domain::1220abcd" }
            store: { url: "file://\(dir)/store" }
            encryption: { recipients: [ "\(recipient)" ], symmetricKeyFiles: [ "\(dir)/symmetric" ] }
            signing: { keyFile: "\(dir)/signing" }
            """
            let complete = try run("""
            version: 1
            node: { name: validator-1, kind: validator }
            \(common)
            captures:
              - { name: apps, role: apps, file: "\(dir)/apps.dump" }
              - { name: participant, role: participant, file: "\(dir)/participant.dump" }
              - { name: identities, role: identities, file: "\(dir)/identities.json" }
            """)
            let manifest = try store.getBytes(key: complete.layout.manifestKey(of: complete.manifest))
            try write("manifest", "validator-complete-signed.bin", try store.getBytes(key: complete.layout.signatureKey(of: complete.manifest)) + [0] + manifest)
            try write("sealed", "validator-identities.zst.cnb", try store.getBytes(key: complete.objectKey("identities")))
            let partial = try run("""
            version: 1
            node: { name: node-2, kind: generic }
            \(common)
            captures:
              - { name: echo, role: other, command: [ "printf", "hello" ] }
              - { name: broken, role: other, command: [ "sh", "-c", "echo 'pg_dump: connection refused' >&2; exit 3" ] }
            """)
            try write("manifest", "generic-partial.json", try store.getBytes(key: partial.layout.manifestKey(of: partial.manifest)))
        }
    }
}

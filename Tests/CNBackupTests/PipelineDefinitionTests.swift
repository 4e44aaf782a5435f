import Foundation
import Testing
@testable import CNBackup
import CNBackupCore
import CNBackupTestKit
import CNBackupHTTP
import CNBackupStorage
import CNBackupCatalog

@Suite struct PipelineDefinitionTests {
    let recipient = KeyText.encode(.x25519Public, patternBytes(32, seed: 5))
    let breakGlass = KeyText.encode(.x25519Public, patternBytes(32, seed: 6))

    func yaml(_ captures: String, kind: String = "generic", recipients: String? = nil, extra: String = "") -> String {
        """
        version: 1
        node: { name: sv-1, kind: \(kind) }
        epoch: { migrationId: 3, serial: 1 }
        store: { url: "file:///tmp/x" }
        encryption: { recipients: [\(recipients ?? "\"\(recipient)\", \"\(breakGlass)\"")] }
        signing: { keyFile: /secrets/signing/key }
        \(extra)
        captures:
        \(captures)
        """
    }

    @Test func orderCantonPutsTheSequencerAfterTheParticipantAndMediator() throws {
        let captures = """
          - { name: apps, role: apps, command: [ "true" ] }
          - { name: participant, role: participant, command: [ "true" ] }
          - { name: mediator, role: mediator, command: [ "true" ] }
          - { name: sequencer, role: sequencer, command: [ "true" ] }
        """
        let splice = try PipelineDefinition.parse(yaml(captures))
        #expect(splice.order == .splice)
        let splicePlan = BackupRunner.plan(for: splice).lines
        #expect(splicePlan.contains { $0.hasPrefix("phase 1") && $0.contains("sequencer [sequencer]") })
        #expect(!splicePlan.contains { $0.hasPrefix("phase 3") })

        let canton = try PipelineDefinition.parse(yaml(captures, extra: "order: canton"))
        #expect(canton.order == .canton)
        let plan = BackupRunner.plan(for: canton).lines
        #expect(plan.contains { $0.hasPrefix("phase 1") && $0.contains("mediator [mediator]") && !$0.contains("sequencer [sequencer]") })
        #expect(plan.contains { $0.hasPrefix("phase 3") && $0.contains("sequencer [sequencer]") })

        let wrong = #expect(throws: CNBackupError.self) { try PipelineDefinition.parse(yaml(captures, extra: "order: cantonese")) }
        #expect(wrong?.message.contains("splice") == true && wrong?.message.contains("canton") == true)
    }

    @Test func theSequencerRuleHoldsOnlyWhenEveryOneBeforeItEnded() throws {
        func record(_ name: String, _ role: ComponentRole, _ start: Int, _ end: Int) -> ComponentRecord {
            ComponentRecord(name: name, role: role, source: "test", objectKey: name, storedSize: 1, storedSHA256: "", plaintextSize: 1,
                            plaintextDigestHMAC: "", codec: CodecInfo(name: "zstd", level: 3), keyIds: [], segmentSize: 1,
                            started: "", ended: "", startOrder: start, endOrder: end, readBack: .full)
        }
        let held = BarrierRule.evaluateSequencer([record("p", .participant, 1, 4), record("m", .mediator, 2, 3), record("s", .sequencer, 5, 6)], before: ["p", "m"])
        #expect(held.holds && held.beforeCompletedOrder == 4 && held.sequencerStartedOrder == 5)
        let early = BarrierRule.evaluateSequencer([record("p", .participant, 1, 6), record("m", .mediator, 2, 3), record("s", .sequencer, 4, 5)], before: ["p", "m"])
        #expect(!early.holds)
        let missing = BarrierRule.evaluateSequencer([record("p", .participant, 1, 2), record("s", .sequencer, 4, 5)], before: ["p", "m"])
        #expect(!missing.holds)
    }

    @Test func aPasswordFileOpenToOthersIsAHostProblem() throws {
        try withTemporaryDirectory { dir in
            let file = dir + "/pw"
            FileManager.default.createFile(atPath: file, contents: Data("secret\n".utf8), attributes: [.posixPermissions: 0o600])
            let definition = try PipelineDefinition.parse(yaml("  - { name: apps, role: apps, postgres: { host: db, user: u, databases: [a], passwordFile: \"\(file)\" } }"))
            #expect(!definition.hostProblems().contains { $0.contains("passwordFile") })
            chmod(file, 0o644)
            let problem = definition.hostProblems().first { $0.contains("passwordFile") }
            #expect(problem?.contains("open to others") == true && problem?.contains("capture apps:") == true, "\(definition.hostProblems())")
        }
    }

    @Test func parsesAValidFile() throws {
        let definition = try PipelineDefinition.parse(yaml("""
          - { name: apps, role: apps, command: [ "echo", "hi" ], env: { PGHOST: apps-pg } }
          - { name: conf, role: other, directory: /etc/canton }
        """, extra: "compression: { level: 5, workers: 2 }"))
        #expect(definition.node == NodeInfo(name: "sv-1", kind: .generic))
        #expect(definition.epoch == Epoch(migrationId: 3, serial: 1))
        #expect(definition.compression == CompressionSettings(level: 5, workers: 2))
        #expect(definition.captures.map(\.role) == [.apps, .other])
        #expect(definition.captures[0].source == .command(arguments: ["echo", "hi"], environment: ["PGHOST": "apps-pg"]))
        #expect(definition.warnings.isEmpty)
    }

    @Test func unknownFieldGivesLineAndColumn() throws {
        let text = yaml("  - { name: apps, role: apps, comand: [ echo ] }")
        let error = #expect(throws: CNBackupError.self) { try PipelineDefinition.parse(text, file: "p.yaml") }
        #expect(error?.message.contains("p.yaml:9:") == true, "\(error?.message ?? "")")
        #expect(error?.message.contains("unknown field \"comand\"") == true)
    }

    @Test func badYAMLAndBadValues() {
        #expect(throws: CNBackupError.self) { try PipelineDefinition.parse("version: 1\nnode: [", file: "p") }
        #expect(throws: CNBackupError.self) { try PipelineDefinition.parse(yaml("  - { name: a, role: wizard, command: [x] }")) }
        #expect(throws: CNBackupError.self) { try PipelineDefinition.parse(yaml("  - { name: a, role: other }")) }
        #expect(throws: CNBackupError.self) { try PipelineDefinition.parse(yaml("  - { name: a, role: other, command: [x] }", extra: "compression: { level: 30 }")) }
        #expect(throws: CNBackupError.self) { try PipelineDefinition.parse(yaml("  - { name: a, role: other, command: [x] }", recipients: "\"cnb1-x25519-pub-garbage\"")) }
        #expect(throws: CNBackupError.self) {
            try PipelineDefinition.parse(yaml("  - { name: a, role: other, command: [x] }\n  - { name: a, role: other, file: /x }"))
        }
    }

    @Test func singleRecipientWarns() throws {
        let definition = try PipelineDefinition.parse(yaml("  - { name: a, role: other, command: [x] }", recipients: "\"\(recipient)\""))
        #expect(definition.warnings.count == 1)
        #expect(definition.warnings[0].contains("single recipient"))
    }

    @Test func nodeKindsNeedTheirRoles() {
        let error = #expect(throws: CNBackupError.self) {
            try PipelineDefinition.parse(yaml("  - { name: apps, role: apps, command: [x] }", kind: "validator"))
        }
        #expect(error?.message.contains("participant, identities") == true)
    }
}

/// Every pipeline file the project ships must validate.
@Suite struct ShippedPipelineTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func files() -> [String] {
        ["pipelines", "examples"].flatMap { folder -> [String] in
            let dir = root.appendingPathComponent(folder).path
            let names = (FileManager.default.enumerator(atPath: dir)?.allObjects as? [String]) ?? []
            // Kubernetes manifests, Prometheus rules and Google IAM roles are checked by their own tools (check-examples, check-alerts).
            return names.filter { $0.hasSuffix(".yaml") && !$0.contains("kubernetes") && !$0.hasPrefix("prometheus") && !$0.hasPrefix("gcp") }.map { dir + "/" + $0 }
        }
    }

    @Test func thereAreShippedPipelines() { #expect(!Self.files().isEmpty) }

    @Test(arguments: files())
    func validates(path: String) throws {
        _ = try PipelineDefinition.load(path: path)
    }
}

@Suite struct CantonSourceTests {
    let recipients = "\"\(KeyText.encode(.x25519Public, patternBytes(32, seed: 5)))\", \"\(KeyText.encode(.x25519Public, patternBytes(32, seed: 6)))\""

    func yaml(kind: String = "validator", migration: Int = 3, participantDB: String = "participant_3") -> String {
        """
        version: 1
        node: { name: v-1, kind: \(kind) }
        epoch: { migrationId: \(migration), serial: 0 }
        store: { url: "file:///tmp/x" }
        encryption: { recipients: [\(recipients)] }
        signing: { keyFile: /secrets/signing/key }
        captures:
          - name: apps
            role: apps
            postgres: { host: apps-pg, user: cnadmin, passwordFile: /secrets/pw, databases: [cantonnet_validator, cantonnet_scan], globals: true }
          - name: participant
            role: participant
            postgres: { host: participant-pg, port: 5433, user: cnadmin, databases: [\(participantDB)] }
          - name: identities
            role: identities
            http:
              url: https://wallet.validator.example.com/api/validator/v0/admin/participant/identities
              oauth: { tokenUrl: https://auth.example.com/oauth/token, clientId: backup, clientSecretFile: /secrets/oauth, audience: https://canton.network.global }
        """
    }

    @Test func postgresExpandsToOneComponentPerDatabaseAndGlobals() throws {
        let definition = try PipelineDefinition.parse(yaml())
        let jobs = definition.captures.flatMap(\.jobs)
        #expect(jobs.map(\.name) == ["apps-cantonnet_validator", "apps-cantonnet_scan", "apps-globals", "participant-participant_3", "identities"])
        #expect(jobs.map(\.role) == [.apps, .apps, .apps, .participant, .identities])
        guard case .postgres(let pg) = definition.captures[1].source else { Issue.record("not postgres"); return }
        #expect(pg.port == 5433 && pg.lockWaitTimeout == "60s")
        // The password never goes into pg_dump's arguments.
        #expect(!pg.dumpArguments(database: "participant_3", clientFolder: "/usr/lib/postgresql/15/bin").joined().contains("password="))
    }

    @Test func databaseOfAnotherMigrationIsRefused() {
        let error = #expect(throws: CNBackupError.self) { try PipelineDefinition.parse(yaml(migration: 4)) }
        #expect(error?.message.contains("participant_3") == true)
        #expect(error?.message.contains("migration 4") == true)
    }

    @Test func svNeedsEveryComponent() {
        let error = #expect(throws: CNBackupError.self) { try PipelineDefinition.parse(yaml(kind: "sv")) }
        #expect(error?.message.contains("sequencer, mediator, cometbft") == true, "\(error?.message ?? "")")
    }

    @Test func unreachablePostgresFailsWithItsOwnMessage() throws {
        try withTemporaryDirectory { dir in
            let f = try Fixture(dir: dir)
            let result = try f.run(try f.pipeline("""
              - { name: apps, role: apps, postgres: { host: 127.0.0.1, port: 1, user: nobody, databases: [cantonnet_sv] } }
              - { name: other, role: other, command: [ "printf", "x" ] }
            """))
            #expect(!result.isComplete)
            let reason = try #require(result.manifest.failures.first?.reason)
            #expect(reason.contains("psql exited"), "\(reason)")
            #expect(!reason.contains("Connection refused") && !reason.contains("connection to server"), "psql's own text must stay out of the manifest: \(reason)")
            #expect(result.manifest.components.map(\.name) == ["other"])
        }
    }
}

@Suite struct SecureURLTests {
    @Test(arguments: ["https://sv.sv.example.com/api/sv/v0/admin/domain/identities-dump", "http://127.0.0.1:8080/x", "http://localhost/x"])
    func accepted(url: String) throws { try HTTPSourceDefinition.requireSecureURL(url, what: "url") }

    @Test(arguments: ["http://example.com/x", "http://127.0.0.1.invalid:1/x", "http://localhost@evil.example/x",
                      "http://127.0.0.1@evil.example/x", "ftp://127.0.0.1/x", "not a url"])
    func refused(url: String) {
        #expect(throws: CNBackupError.self) { try HTTPSourceDefinition.requireSecureURL(url, what: "url") }
    }
}

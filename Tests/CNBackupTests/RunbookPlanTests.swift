import Foundation
import Testing
@testable import CNBackup
import CNBackupCore
import CNBackupCatalog

/// `restore --plan` is the one source of the restore steps: docs/RUNBOOK.md embeds what it prints
/// for an SV set and a validator set, logical and physical, and this test fails when the two
/// differ. After a change to the plan, regenerate the runbook's blocks with
/// `CNBACKUP_UPDATE_RUNBOOK=1 swift test --filter RunbookPlanTests`, and read the diff.
@Suite struct RunbookPlanTests {
    static let runbook = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("docs/RUNBOOK.md").path

    static let setId = "20261204T080000Z-4f1c2a9e"
    static let captured = "2026-12-04T08:00:00.000Z"
    /// Two hours after the capture: the plan's age line is stable.
    static let now = Date(timeIntervalSince1970: 1_796_378_400)   // 2026-12-04T10:00:00Z

    static func record(_ name: String, _ role: ComponentRole, source: String, physical: PhysicalEvidence? = nil) -> ComponentRecord {
        ComponentRecord(name: name, role: role, source: source, objectKey: "\(name)-0123456789abcdef.zst.cnb", storedSize: 1_000,
                        storedSHA256: "", plaintextSize: physical == nil ? 4_000 : 53_687_091_200, plaintextDigestHMAC: "",
                        codec: CodecInfo(name: "zstd", level: 3), keyIds: [], segmentSize: 1 << 20, started: captured, ended: captured,
                        startOrder: 1, endOrder: 2, readBack: .full, physical: physical)
    }

    static func physical(_ version: String) -> PhysicalEvidence {
        PhysicalEvidence(tool: "pg_basebackup (PostgreSQL) \(version)", serverVersion: version, systemIdentifier: "7449021544930371234",
                         timeline: 1, startTimeline: 1, startLSN: "0/5000028", stopLSN: "0/5000138", serverTimeBeforeStart: captured,
                         serverTimeAtStop: captured, isReplica: false, backupManifestSHA256: "", backupManifestSize: 1,
                         walRetention: "replication slot")
    }

    static func manifest(node: String, kind: NodeKind, _ components: [ComponentRecord]) -> Manifest {
        Manifest(formatVersion: Manifest.currentFormatVersion, setId: setId, node: NodeInfo(name: node, kind: kind),
                 epoch: Epoch(migrationId: 4, serial: 1), status: .complete, failures: [], toolVersion: cnbackupVersion,
                 captureStart: captured, captureEnd: captured, components: components)
    }

    /// The four example sets, named as the runbook's examples are (migration 4, serial 1).
    static let sets: [(key: String, title: String, manifest: Manifest)] = {
        let secrets = [record("sv-key", .other, source: "kubernetes secret sv/splice-app-sv-key"),
                       record("cometbft-keys", .other, source: "kubernetes secret sv/cometbft-keys")]
        let svLogical = manifest(node: "sv-1", kind: .sv, [
            record("apps-globals", .apps, source: "pg_dumpall --globals-only apps-pg:5432"),
            record("apps-cantonnet_sv", .apps, source: "pg_dump apps-pg:5432/cantonnet_sv"),
            record("apps-cantonnet_scan", .apps, source: "pg_dump apps-pg:5432/cantonnet_scan"),
            record("apps-cantonnet_validator", .apps, source: "pg_dump apps-pg:5432/cantonnet_validator"),
            record("participant-participant_4", .participant, source: "pg_dump participant-pg:5432/participant_4"),
            record("sequencer-sequencer_1", .sequencer, source: "pg_dump sequencer-pg:5432/sequencer_1"),
            record("mediator-mediator_1", .mediator, source: "pg_dump mediator-pg:5432/mediator_1"),
            record("cometbft", .cometbft, source: "volume snapshot global-domain-1-cometbft-data"),
            record("identities", .identities, source: "https://sv-app/api/sv/v0/admin/participant/identities"),
        ] + secrets)
        let validatorLogical = manifest(node: "validator-1", kind: .validator, [
            record("apps-globals", .apps, source: "pg_dumpall --globals-only postgres:5432"),
            record("apps-cantonnet_validator", .apps, source: "pg_dump postgres:5432/cantonnet_validator"),
            record("participant-participant_4", .participant, source: "pg_dump postgres:5432/participant_4"),
            record("identities", .identities, source: "https://validator-app/api/validator/v0/admin/participant/identities"),
        ])
        let svPhysical = manifest(node: "sv-1", kind: .sv, [
            record("apps", .apps, source: "pg_basebackup apps-pg:5432", physical: physical("17.6")),
            record("participant", .participant, source: "pg_basebackup participant-pg:5432", physical: physical("17.6")),
            record("sequencer", .sequencer, source: "pg_basebackup sequencer-pg:5432", physical: physical("17.6")),
            record("mediator", .mediator, source: "pg_basebackup mediator-pg:5432", physical: physical("17.6")),
            record("cometbft", .cometbft, source: "volume snapshot global-domain-1-cometbft-data"),
            record("identities", .identities, source: "https://sv-app/api/sv/v0/admin/participant/identities"),
        ] + secrets)
        let validatorPhysical = manifest(node: "validator-1", kind: .validator, [
            record("postgres", .apps, source: "pg_basebackup postgres:5432", physical: physical("17.6")),
            record("identities", .identities, source: "https://validator-app/api/validator/v0/admin/participant/identities"),
        ])
        return [("sv-logical", "An SV set of pg_dump captures", svLogical),
                ("validator-logical", "A validator set of pg_dump captures", validatorLogical),
                ("sv-physical", "An SV set of physical captures", svPhysical),
                ("validator-physical", "A validator set of one physical capture (apps and participant in one instance)", validatorPhysical)]
    }()

    static func block(_ manifest: Manifest) -> String {
        let steps = RestorePlan.steps(for: manifest, store: "s3://cnbackup-sv/backups", signer: "cnb1-ed25519-pub-SIGNER", now: now)
        return steps.enumerated().map { "\($0.offset + 1). \($0.element)" }.joined(separator: "\n")
    }

    static func begin(_ key: String) -> String { "<!-- restore --plan: \(key) (generated by RunbookPlanTests; do not edit) -->" }
    static let end = "<!-- end of restore --plan -->"

    /// The runbook's text with every block replaced by what the plan prints now.
    static func regenerated(_ text: String) throws -> String {
        var text = text
        for set in sets {
            let begin = begin(set.key)
            guard let start = text.range(of: begin), let stop = text.range(of: end, range: start.upperBound..<text.endIndex) else {
                throw CNBackupError(.invalidInput, "docs/RUNBOOK.md has no block \(begin) ... \(end)")
            }
            text.replaceSubrange(start.upperBound..<stop.lowerBound, with: "\n```text\n\(block(set.manifest))\n```\n")
        }
        return text
    }

    @Test func theRunbookEmbedsWhatRestorePlanPrints() throws {
        let text = try String(contentsOfFile: Self.runbook, encoding: .utf8)
        let expected = try Self.regenerated(text)
        if ProcessInfo.processInfo.environment["CNBACKUP_UPDATE_RUNBOOK"] == "1" {
            try expected.write(toFile: Self.runbook, atomically: true, encoding: .utf8)
            return
        }
        for set in Self.sets {
            let begin = Self.begin(set.key)
            let current = text.range(of: begin).flatMap { start in text.range(of: Self.end, range: start.upperBound..<text.endIndex).map { text[start.upperBound..<$0.lowerBound] } }
            #expect(current.map(String.init) == "\n```text\n\(Self.block(set.manifest))\n```\n",
                    "docs/RUNBOOK.md's block \(set.key) differs from what `restore --plan` prints: regenerate it (CNBACKUP_UPDATE_RUNBOOK=1 swift test --filter RunbookPlanTests) and read the diff")
        }
        #expect(text == expected)
        // The blocks say what an operator must see in them.
        for set in Self.sets {
            let steps = Self.block(set.manifest)
            #expect(steps.contains("--signer cnb1-ed25519-pub-SIGNER") && !steps.contains("--signer PUB"))
            #expect(steps.contains("Scale every deployment back up"))
        }
    }
}

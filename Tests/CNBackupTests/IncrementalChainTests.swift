import Foundation
import Testing
@testable import CNBackup
import CNBackupCore
import CNBackupTestKit
import CNBackupStorage
import CNBackupCatalog

private let epoch = Epoch(migrationId: 4, serial: 1)
private let base = Date(timeIntervalSince1970: 1_800_000_000)
private let server = PhysicalServerState(systemIdentifier: "7400000000000000001", timeline: 1, major: 18, summarizeWAL: true)
private let policy = IncrementalPolicy(fullEvery: 7 * 86_400, maxChain: 4)

private func setId(_ hours: Double, _ suffix: String = "0000000a") -> String {
    Timestamp.compact(base.addingTimeInterval(hours * 3_600)) + "-" + suffix
}

private func evidence(sha: String, link: IncrementalLink? = nil, system: String = server.systemIdentifier, timeline: Int = 1,
                      version: String = "18.1", clear: Bool = true) -> PhysicalEvidence {
    var e = PhysicalEvidence(tool: "pg_basebackup (PostgreSQL) 18.1", serverVersion: version, systemIdentifier: system,
                             timeline: timeline, startTimeline: timeline, startLSN: "0/2000028", stopLSN: "0/2000100",
                             serverTimeBeforeStart: "2027-01-15T08:00:00.000Z", backupStartTime: nil,
                             serverTimeAtStop: "2027-01-15T08:00:01.000Z", isReplica: false, replayTimestamp: nil,
                             backupManifestSHA256: sha, backupManifestSize: 100, walRetention: "none")
    e.incremental = link
    e.backupManifestObject = clear ? "apps.backup_manifest" : nil
    return e
}

private func chainSet(_ hours: Double, _ physical: PhysicalEvidence?, trusted: Bool = true, complete: Bool = true,
                      epoch setEpoch: Epoch = epoch, failures: [ComponentFailure] = [], suffix: String = "0000000a") -> ChainSet {
    let id = setId(hours, suffix)
    let start = Timestamp.format(base.addingTimeInterval(hours * 3_600))
    var components: [ComponentRecord] = []
    if let physical {
        components.append(ComponentRecord(name: "apps", role: .apps, source: "pg_basebackup", objectKey: "apps.zst.cnb", storedSize: 1,
                                          storedSHA256: "", etag: nil, plaintextSize: 1000, plaintextDigestHMAC: "", codec: CodecInfo(name: "zstd", level: 3),
                                          keyIds: [], segmentSize: 65536, started: start, ended: start, startOrder: 1, endOrder: 2,
                                          readBack: .full, postgres: nil, physical: physical))
    }
    let manifest = Manifest(formatVersion: 1, setId: id, node: NodeInfo(name: "n", kind: .generic), epoch: setEpoch,
                            status: complete ? .complete : .partial, failures: failures, toolVersion: "t", captureStart: start,
                            captureEnd: start, recovered: nil, components: components, barrier: nil)
    return ChainSet(layout: SetLayout(node: "n", epoch: setEpoch, setId: id), manifest: trusted ? manifest : nil,
                    trusted: trusted, complete: complete && trusted)
}

private func link(parent hours: Double, sha: String, position: Int, full: Double) -> IncrementalLink {
    IncrementalLink(parentSetId: setId(hours), parentComponent: "apps", parentBackupManifestSHA256: sha, position: position,
                    fullSetId: setId(full), fullCaptureStart: Timestamp.format(base.addingTimeInterval(full * 3_600)))
}

private func choose(_ sets: [ChainSet], now hours: Double, server: PhysicalServerState = server, policy: IncrementalPolicy = policy,
                    epoch: Epoch = epoch) -> ChainChoice {
    ChainChooser.choose(sets: sets, component: "apps", epoch: epoch, server: server, policy: policy, now: base.addingTimeInterval(hours * 3_600))
}

private func fullReason(_ choice: ChainChoice) -> (String, Bool)? {
    if case .full(let reason, let expected) = choice { return (reason, expected) }
    return nil
}

@Suite struct ChainChoiceTests {
    let chain = [
        chainSet(0, evidence(sha: "a0")),
        chainSet(4, evidence(sha: "a1", link: link(parent: 0, sha: "a0", position: 1, full: 0))),
    ]

    @Test func firstBackupIsAFullWithoutAWarning() {
        let (reason, expected) = fullReason(choose([], now: 1))!
        #expect(expected)
        #expect(reason.contains("no trusted, complete earlier backup"))
    }

    @Test func incrementalOnTheNewestTrustedCompleteSet() {
        guard case .incremental(let parent, _, let l) = choose(chain, now: 8) else { Issue.record("expected an incremental"); return }
        #expect(parent.setId == setId(4))
        #expect(l.position == 2 && l.fullSetId == setId(0) && l.parentBackupManifestSHA256 == "a1" && l.parentComponent == "apps")
    }

    @Test func newerUntrustedOrPartialSetsAreNotParents() {
        let sets = chain + [chainSet(6, evidence(sha: "x"), trusted: false), chainSet(7, evidence(sha: "y"), complete: false)]
        guard case .incremental(let parent, _, _) = choose(sets, now: 8) else { Issue.record("expected an incremental"); return }
        #expect(parent.setId == setId(4))
    }

    @Test func aNewerFailedCaptureOfTheComponentGivesAFull() {
        let failed = chainSet(6, nil, complete: false, failures: [ComponentFailure(component: "apps", role: "apps", reason: "pg_basebackup failed")])
        let (reason, expected) = fullReason(choose(chain + [failed], now: 8))!
        #expect(!expected && reason.contains("failed to capture apps"))
    }

    @Test func mismatchesGiveAFullWithAWarning() {
        var other = server; other.systemIdentifier = "1"
        #expect(fullReason(choose(chain, now: 8, server: other))?.0.contains("system") == true)
        other = server; other.timeline = 2
        #expect(fullReason(choose(chain, now: 8, server: other))?.0.contains("timeline") == true)
        #expect(fullReason(choose(chain, now: 8, epoch: Epoch(migrationId: 5, serial: 0)))?.0.contains("epoch") == true)
        other = server; other.summarizeWAL = false
        #expect(fullReason(choose(chain, now: 8, server: other))?.0.contains("summarize_wal") == true)
        other = server; other.major = 16
        #expect(fullReason(choose(chain, now: 8, server: other))?.0.contains("cannot take incremental") == true)
        let noClear = [chainSet(0, evidence(sha: "a0", clear: false))]
        #expect(fullReason(choose(noClear, now: 1))?.0.contains("no clear backup_manifest") == true)
        for choice in [choose(chain, now: 8, server: other), choose(noClear, now: 1)] { #expect(fullReason(choice)?.1 == false) }
    }

    @Test func aBrokenChainBelowTheParentGivesAFull() {
        // The full is gone: the first incremental's parent is missing.
        #expect(fullReason(choose([chain[1]], now: 8))?.0.contains("broken") == true)
        // The full is untrusted.
        let untrusted = [chainSet(0, evidence(sha: "a0"), trusted: false), chain[1]]
        #expect(fullReason(choose(untrusted, now: 8))?.0.contains("broken") == true)
        // The full's backup_manifest is not the one the incremental was taken against.
        let swapped = [chainSet(0, evidence(sha: "zz")), chain[1]]
        #expect(fullReason(choose(swapped, now: 8))?.0.contains("broken") == true)
    }

    @Test func fullEveryAndMaxChainRotate() {
        let (old, expected) = fullReason(choose(chain, now: 7 * 24 + 1))!
        #expect(expected && old.contains("fullEvery"))
        var sets = chain
        sets.append(chainSet(8, evidence(sha: "a2", link: link(parent: 4, sha: "a1", position: 2, full: 0))))
        sets.append(chainSet(12, evidence(sha: "a3", link: link(parent: 8, sha: "a2", position: 3, full: 0))))
        let (reason, rotation) = fullReason(choose(sets, now: 16))!
        #expect(rotation && reason.contains("maxChain 4"))
        guard case .incremental(_, _, let l) = choose(Array(sets.prefix(3)), now: 10) else { Issue.record("expected an incremental"); return }
        #expect(l.position == 3)
    }
}

@Suite struct RetentionChainTests {
    private let day: TimeInterval = 86_400
    private func candidate(_ id: String, days: Double, dependsOn: [String] = [], trusted: Bool = true) -> RetentionCandidate {
        RetentionCandidate(setId: id, migrationId: 0, serial: 0, captureTime: base.addingTimeInterval(days * day),
                           complete: true, trusted: trusted, dependsOn: dependsOn)
    }

    @Test func keptSetsKeepTheirWholeChain() {
        // Daily sets; only the newest is kept by the policy, and it is the 3rd incremental on a full.
        let sets = [candidate("full", days: 0), candidate("i1", days: 1, dependsOn: ["full"]),
                    candidate("i2", days: 2, dependsOn: ["i1"]), candidate("i3", days: 3, dependsOn: ["i2"])]
        let policy = RetentionPolicy(retentionPeriod: 30 * day, margin: day, keepWithin: 0, keepLast: 1)
        let plan = RetentionPlanner.plan(sets, policy: policy, now: base.addingTimeInterval(40 * day))
        #expect(plan.deletedSetIds.isEmpty)
        let i2 = plan.decisions.first { $0.setId == "i2" }!
        #expect(i2.reasons.first == "kept: base of incremental chain for i3")
        #expect(i2.reasons.contains { $0.hasPrefix("otherwise: delete:") })
        #expect(plan.decisions.first { $0.setId == "full" }!.reasons.contains("kept: base of incremental chain for i1"))
        #expect(plan.brokenChains.isEmpty)
    }

    @Test func unneededChainsStillGo() {
        // An old chain nothing kept depends on is deleted; the new full stands alone.
        let sets = [candidate("full", days: 0), candidate("i1", days: 1, dependsOn: ["full"]),
                    candidate("full2", days: 2), candidate("j1", days: 3, dependsOn: ["full2"])]
        let policy = RetentionPolicy(retentionPeriod: 30 * day, margin: day, keepWithin: 0, keepLast: 1)
        let plan = RetentionPlanner.plan(sets, policy: policy, now: base.addingTimeInterval(40 * day))
        #expect(plan.keptSetIds.contains("full2") && plan.keptSetIds.contains("j1"))
        #expect(plan.deletedSetIds == ["i1"])
    }

    @Test func chainsWhoseBaseIsGoneOrUntrustedAreReported() {
        let sets = [candidate("full", days: 0, trusted: false), candidate("i1", days: 1, dependsOn: ["full"]),
                    candidate("i9", days: 2, dependsOn: ["gone"])]
        let plan = RetentionPlanner.plan(sets, policy: RetentionPolicy(), now: base.addingTimeInterval(3 * day))
        #expect(plan.brokenChains.count == 2)
        #expect(plan.brokenChains.contains { $0.contains("i1") && $0.contains("untrusted") })
        #expect(plan.brokenChains.contains { $0.contains("i9") && $0.contains("gone") })
    }
}

@Suite struct IncrementalDefinitionTests {
    private func parse(_ postgres: String) throws -> PipelineDefinition {
        let yaml = """
        version: 1
        node: { name: n, kind: generic }
        epoch: { migrationId: 0, serial: 0 }
        store: { url: "file:///tmp/x" }
        encryption: { recipients: [ "\(KeyText.encode(.x25519Public, patternBytes(32, seed: 5)))" ] }
        signing: { keyFile: /tmp/k }
        captures:
          - name: apps
            role: apps
            postgres: \(postgres)
        """
        return try PipelineDefinition.parse(yaml, file: "t.yaml")
    }

    @Test func incrementalGoesWithPhysicalOnly() throws {
        let d = try parse("{ host: h, user: u, method: physical, incremental: { fullEvery: 2d, maxChain: 6 } }")
        guard case .postgres(let pg) = d.captures[0].source else { Issue.record("not postgres"); return }
        #expect(pg.incremental == IncrementalPolicy(fullEvery: 2 * 86_400, maxChain: 6))
        #expect(throws: CNBackupError.self) { try parse("{ host: h, user: u, databases: [a], incremental: { fullEvery: 2d } }") }
        #expect(throws: CNBackupError.self) { try parse("{ host: h, user: u, method: physical, incremental: { maxChain: 1 } }") }
        #expect(throws: CNBackupError.self) { try parse("{ host: h, user: u, method: physical, incremental: { every: 1 } }") }
    }
}

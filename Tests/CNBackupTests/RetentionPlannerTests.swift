import Foundation
import Testing
@testable import CNBackup
import CNBackupCore
import CNBackupTestKit
import CNBackupHTTP
import CNBackupStorage

private let day: TimeInterval = 86_400
private let hour: TimeInterval = 3_600
private let base = Date(timeIntervalSince1970: 1_700_000_000)

private func at(_ days: Double) -> Date { base.addingTimeInterval(days * day) }

private func set(_ id: String, _ days: Double, epoch: (Int, Int) = (0, 0), complete: Bool = true, trusted: Bool = true) -> RetentionCandidate {
    RetentionCandidate(setId: id, migrationId: epoch.0, serial: epoch.1, captureTime: at(days), complete: complete, trusted: trusted)
}

/// Daily complete sets "d000".."dNNN" of one epoch.
private func daily(_ range: ClosedRange<Int>, epoch: (Int, Int) = (0, 0)) -> [RetentionCandidate] {
    range.map { set(String(format: "d%03d", $0), Double($0), epoch: epoch) }
}

private extension RetentionPlan {
    func decision(_ id: String) -> RetentionDecision? { decisions.first { $0.setId == id } }
    func kept(_ id: String) -> Bool { decision(id)?.keep ?? false }
}

/// Only the history tier: nothing is recent.
private let historyOnly = RetentionPolicy(retentionPeriod: 30 * day, margin: day, keepWithin: 0, keepLast: 0)

@Suite("RetentionPlanner examples")
struct RetentionPlannerExampleTests {
    @Test func emptyInputGivesEmptyPlan() {
        let plan = RetentionPlanner.plan([], policy: RetentionPolicy(), now: base)
        #expect(plan.decisions.isEmpty && plan.gaps.isEmpty && plan.refusedToDelete == nil)
    }

    @Test func defaultPolicy() {
        let p = RetentionPolicy(retentionPeriod: 30 * day)
        #expect(p.margin == day && p.keepWithin == 7 * day && p.keepLast == 12 && p.maxGap == 29 * day)
        #expect(p.problem == nil)
    }

    @Test func chainKeepsLatestSetWithinTheAllowedGap() {
        // Daily sets over 100 days; max gap 29d: the chain is 0, 29, 58, 87 and the newest, 99.
        let plan = RetentionPlanner.plan(daily(0...99), policy: historyOnly, now: at(120))
        #expect(plan.refusedToDelete == nil)
        #expect(plan.keptSetIds == ["d000", "d029", "d058", "d087", "d099"])
        #expect(plan.gaps.isEmpty)
        #expect(plan.decision("d029")!.reasons.contains { $0.hasPrefix("history: chain link of epoch 0/0") })
        #expect(plan.decision("d010")!.reasons.allSatisfy { $0.hasPrefix("delete:") })
        #expect(plan.decisions.allSatisfy { !$0.reasons.isEmpty })
    }

    @Test func chainGapIsExactlyTheAllowedMaximum() {
        // 29 days apart exactly is allowed; 29 days and a second is not.
        var c = set("c", 58)
        c.captureTime = c.captureTime.addingTimeInterval(1)
        let sets = [set("a", 0), set("b", 29), c, set("d", 60)]
        let plan = RetentionPlanner.plan(sets, policy: historyOnly, now: at(90))
        #expect(plan.keptSetIds == ["a", "b", "c", "d"])
        #expect(plan.gaps.map(\.fromSetId) == ["b"])
        #expect(plan.gaps.first?.toSetId == "c")
        #expect(plan.gaps.first?.seconds == 29 * day + 1)
    }

    @Test func gapInTheHistoryIsRecordedAndBridgedByKeepingBothSides() {
        let sets = [set("a", 0), set("b", 10), set("c", 20), set("d", 50), set("e", 60)]
        let plan = RetentionPlanner.plan(sets, policy: historyOnly, now: at(80))
        #expect(plan.keptSetIds == ["a", "c", "d", "e"])
        #expect(plan.deletedSetIds == ["b"])
        #expect(plan.gaps == [HistoryGap(migrationId: 0, serial: 0, fromSetId: "c", fromTime: at(20), toSetId: "d", toTime: at(50), seconds: 30 * day)])
        #expect(plan.decision("d")!.reasons.contains { $0.contains("gap of 30d") })
    }

    @Test func recentTierKeepsWithinAndLast() {
        // Hourly-ish sets over 20 days, now = day 20: keepWithin 7d keeps days 13..19; keepLast 12
        // keeps the newest 12 regardless.
        let sets = (0..<40).map { set(String(format: "s%02d", $0), Double($0) * 0.5) }  // days 0 .. 19.5
        let policy = RetentionPolicy(retentionPeriod: 30 * day, keepWithin: 7 * day, keepLast: 30)
        let plan = RetentionPlanner.plan(sets, policy: policy, now: at(20))
        // newest 30 are s10..s39 (days 5..19.5); chain: s00 then the latest within 29d, i.e. the newest.
        #expect(plan.keptSetIds == ["s00"] + (10..<40).map { String(format: "s%02d", $0) })
        #expect(plan.decision("s30")!.reasons.contains("recent: captured within 7d of now"))
        #expect(plan.decision("s12")!.reasons.contains("recent: among the newest 30 complete sets"))
        #expect(!plan.decision("s12")!.reasons.contains("recent: captured within 7d of now"))

        let fewer = RetentionPlanner.plan(sets, policy: RetentionPolicy(retentionPeriod: 30 * day, keepWithin: 7 * day, keepLast: 2), now: at(20))
        // within 7d of day 20: days 13..19.5 = s26..s39; s00 is the chain's start.
        #expect(fewer.keptSetIds == ["s00"] + (26..<40).map { String(format: "s%02d", $0) })
    }

    @Test func recentSetsCountAsChainLinks() {
        // Chain 0 -> 29 -> newest; recent sets (days 53..59) in between need no extra link.
        let plan = RetentionPlanner.plan(daily(0...59), policy: RetentionPolicy(retentionPeriod: 30 * day, keepWithin: 7 * day, keepLast: 1), now: at(60))
        #expect(plan.keptSetIds == ["d000", "d029", "d053", "d054", "d055", "d056", "d057", "d058", "d059"])
    }

    @Test func untrustedSetsAreKeptAndNeverCount() {
        // An untrusted set in the middle of a 40-day hole neither bridges it nor is deleted.
        let sets = [set("a", 0), set("u", 20, trusted: false), set("old-u", -100, trusted: false), set("b", 40)]
        let plan = RetentionPlanner.plan(sets, policy: historyOnly, now: at(60))
        #expect(plan.decision("u")?.keep == true)
        #expect(plan.decision("u")?.reasons == [RetentionPlanner.untrustedReason])
        #expect(plan.decision("old-u")?.keep == true)
        #expect(plan.gaps.map { [$0.fromSetId, $0.toSetId] } == [["a", "b"]])
        // An untrusted incomplete set is also only "untrusted".
        let partialUntrusted = RetentionPlanner.plan([set("x", 0, complete: false, trusted: false), set("y", 1)], policy: historyOnly, now: at(60))
        #expect(partialUntrusted.decision("x")?.reasons == [RetentionPlanner.untrustedReason])
    }

    @Test func untrustedNewestSetsDoNotCountForKeepLast() {
        // keepLast 2 counts only complete trusted sets: b and c, not the untrusted u1 between them.
        let sets = [set("a", 0), set("b", 1), set("u1", 2, trusted: false), set("c", 3)]
        let plan = RetentionPlanner.plan(sets, policy: RetentionPolicy(retentionPeriod: 30 * day, keepWithin: 0, keepLast: 2), now: at(10))
        #expect(plan.decision("b")!.reasons.contains("recent: among the newest 2 complete sets"))
        #expect(!plan.decision("a")!.reasons.contains("recent: among the newest 2 complete sets"))
    }

    @Test func partialSetsAreDeletedOnlyWhenOldAndSuperseded() {
        let sets = [
            set("c0", 0),
            set("p-old", 1, complete: false),                    // old, superseded by c1: deleted
            set("c1", 2),
            set("p-recent", 25, complete: false),                // within 7d of now: kept
            set("p-alone", 3, epoch: (1, 0), complete: false),   // no complete set in its epoch: kept
            set("c-other", 4, epoch: (2, 0)),
            set("p-last", 10, epoch: (2, 0), complete: false),   // old but nothing complete newer in 2/0: kept
            set("c-newest", 26, epoch: (3, 0)),
        ]
        let plan = RetentionPlanner.plan(sets, policy: RetentionPolicy(retentionPeriod: 30 * day, keepWithin: 7 * day, keepLast: 0), now: at(30))
        #expect(plan.refusedToDelete == nil)
        #expect(plan.deletedSetIds == ["p-old"])
        #expect(plan.decision("p-old")!.reasons.first!.contains("superseded by the complete set c1"))
        #expect(plan.decision("p-recent")!.reasons == ["partial: kept, captured within 7d of now"])
        #expect(plan.decision("p-alone")!.reasons == ["partial: kept, no complete set of epoch 1/0 is newer"])
        #expect(plan.decision("p-last")!.reasons == ["partial: kept, no complete set of epoch 2/0 is newer"])
    }

    @Test func partialSetsNeverCountAsChainLinks() {
        // A partial set between two complete sets 40 days apart does not bridge the gap.
        let sets = [set("a", 0), set("p", 20, complete: false), set("b", 40)]
        let plan = RetentionPlanner.plan(sets, policy: historyOnly, now: at(60))
        #expect(plan.gaps.map(\.fromSetId) == ["a"])
        #expect(plan.deletedSetIds == ["p"])
    }

    @Test func pastEpochsKeepTheirChainAndLastSet() {
        let sets = daily(0...59, epoch: (0, 0)) + daily(60...100, epoch: (1, 0)).map { var s = $0; s.setId = "m1-" + s.setId; return s }
        let plan = RetentionPlanner.plan(sets, policy: historyOnly, now: at(101))
        #expect(plan.keptSetIds == ["d000", "d029", "d058", "d059", "m1-d060", "m1-d089", "m1-d100"])
        #expect(plan.decision("d059")!.reasons.contains("past epoch 0/0: its last complete set is always kept"))
        #expect(plan.decision("d029")!.reasons.contains("past epoch 0/0: its history chain is never thinned"))
        #expect(!plan.decision("m1-d100")!.reasons.contains { $0.hasPrefix("past epoch") })
    }

    @Test func logicalSynchronizerUpgradeIsItsOwnEpoch() {
        let sets = daily(0...40, epoch: (2, 0)) + daily(41...45, epoch: (2, 1)).map { var s = $0; s.setId = "lsu-" + s.setId; return s }
        let plan = RetentionPlanner.plan(sets, policy: historyOnly, now: at(46))
        #expect(plan.keptSetIds == ["d000", "d029", "d040", "lsu-d041", "lsu-d045"])
        #expect(plan.decision("d040")!.reasons.contains("past epoch 2/0: its last complete set is always kept"))
    }

    @Test func keepEveryPastEpochSetOption() {
        var policy = historyOnly
        policy.keepEveryPastEpochSet = true
        let sets = daily(0...59, epoch: (0, 0)) + daily(60...100, epoch: (1, 0)).map { var s = $0; s.setId = "m1-" + s.setId; return s }
        let plan = RetentionPlanner.plan(sets, policy: policy, now: at(101))
        #expect(plan.deletedSetIds == (61...99).filter { $0 != 89 }.map { String(format: "m1-d%03d", $0) })
    }

    @Test(arguments: [(false, true), (true, false), (false, false)])
    func newestSetNotCompleteAndTrustedDeletesNothing(complete: Bool, trusted: Bool) {
        let sets = daily(0...99) + [set("newest", 100, complete: complete, trusted: trusted)]
        let plan = RetentionPlanner.plan(sets, policy: historyOnly, now: at(120))
        #expect(plan.refusedToDelete == RetentionPlanner.newestNotVerifiedRefusal)
        #expect(plan.deletedSetIds.isEmpty)
        #expect(plan.decision("d010")!.reasons.first == "kept: " + RetentionPlanner.newestNotVerifiedRefusal)
        #expect(plan.decision("d010")!.reasons.dropFirst().allSatisfy { $0.hasPrefix("otherwise: delete:") })
        #expect(plan.decision("newest")!.reasons.contains { $0.hasPrefix("newest set overall") })
        // Gaps are still reported.
        #expect(plan.gaps.isEmpty)
    }

    @Test func tieForNewestWithAnUnverifiedSetRefuses() {
        let sets = daily(0...99) + [set("zzz-partial", 99, complete: false)]
        let plan = RetentionPlanner.plan(sets, policy: historyOnly, now: at(120))
        #expect(plan.refusedToDelete == RetentionPlanner.newestNotVerifiedRefusal)
        #expect(plan.deletedSetIds.isEmpty)
    }

    @Test func invalidPolicyDeletesNothing() {
        let policy = RetentionPolicy(retentionPeriod: day, margin: day)
        #expect(policy.problem != nil)
        let plan = RetentionPlanner.plan(daily(0...99), policy: policy, now: at(120))
        #expect(plan.deletedSetIds.isEmpty)
        #expect(plan.refusedToDelete?.hasPrefix("the retention policy is invalid") == true)
        #expect(RetentionPolicy(retentionPeriod: 30 * day, keepLast: -1).problem != nil)
        #expect(RetentionPolicy(retentionPeriod: 30 * day, keepWithin: -1).problem != nil)
    }

    @Test func decisionsAreOrderedByCaptureTimeThenSetIdWhateverTheInputOrder() {
        var sets = daily(0...30) + [set("d010-b", 10), set("d010-a", 10)]
        var rng = SplitMix64(seed: 7)
        let expected = RetentionPlanner.plan(sets, policy: historyOnly, now: at(40))
        let ids = expected.decisions.map(\.setId)
        #expect(ids.firstIndex(of: "d010")! < ids.firstIndex(of: "d010-a")!)
        #expect(ids.firstIndex(of: "d010-a")! < ids.firstIndex(of: "d010-b")!)
        for _ in 0..<5 {
            sets.shuffle(using: &rng)
            #expect(RetentionPlanner.plan(sets, policy: historyOnly, now: at(40)) == expected)
        }
    }

    @Test func planIsCodable() throws {
        let plan = RetentionPlanner.plan([set("a", 0), set("b", 40), set("c", 41)], policy: historyOnly, now: at(50))
        let data = try JSONEncoder().encode(plan)
        #expect(try JSONDecoder().decode(RetentionPlan.self, from: data) == plan)
    }

    @Test func durationsForHumans() {
        #expect(RetentionPlanner.describe(29 * day) == "29d")
        #expect(RetentionPlanner.describe(3 * day + 4 * hour + 5 * 60) == "3d 4h")
        #expect(RetentionPlanner.describe(2 * hour + 5 * 60) == "2h 5m")
        #expect(RetentionPlanner.describe(45 * 60) == "45m")
        #expect(RetentionPlanner.describe(12) == "12s")
        #expect(RetentionPlanner.describe(0) == "0s")
    }

    @Test func benchmarkInputIsDeterministicAndPlannable() {
        let a = RetentionPlanner.benchmarkInput(count: 2_000)
        #expect(a.count == 2_000)
        #expect(a == RetentionPlanner.benchmarkInput(count: 2_000))
        #expect(Set(a.map(\.setId)).count == a.count)
        #expect(a.last!.countsAsBackup)
        #expect(a.last!.captureTime < RetentionPlanner.benchmarkNow)
        let plan = RetentionPlanner.plan(a, policy: RetentionPolicy(), now: RetentionPlanner.benchmarkNow)
        #expect(plan.refusedToDelete == nil)
        #expect(!plan.deletedSetIds.isEmpty)
        #expect(RetentionPlanner.benchmarkInput(count: 0).isEmpty)
    }
}

// MARK: - Property tests over random histories

/// The library's own deterministic generator, under the name the tests use.
typealias SplitMix64 = RetentionSplitMix64

private struct History {
    var sets: [RetentionCandidate]
    var policy: RetentionPolicy
    var now: Date
}

/// A random history: intervals from 10 minutes to 40 days (mostly short), epochs advancing by
/// migration or logical upgrade, random partial and untrusted sets, a random policy.
private func randomHistory(seed: UInt64) -> History {
    var rng = SplitMix64(seed: seed)
    let count = Int.random(in: 1...250, using: &rng)
    let partialRate = Double.random(in: 0...0.3, using: &rng)
    let untrustedRate = Double.random(in: 0...0.15, using: &rng)
    let epochRate = Double.random(in: 0...0.05, using: &rng)
    let longRate = Double.random(in: 0...0.2, using: &rng)
    var time = base.addingTimeInterval(Double.random(in: 0...(365 * day), using: &rng))
    var migrationId = Int.random(in: 0...3, using: &rng), serial = 0
    var sets: [RetentionCandidate] = []
    for i in 0..<count {
        if i > 0 {
            let long = Double.random(in: 0..<1, using: &rng) < longRate
            time += long ? Double.random(in: (10 * 60)...(40 * day), using: &rng)
                         : Double.random(in: (10 * 60)...(2 * day), using: &rng)
            if Double.random(in: 0..<1, using: &rng) < epochRate {
                if Bool.random(using: &rng) { migrationId += 1; serial = 0 } else { serial += 1 }
            }
        }
        let untrusted = Double.random(in: 0..<1, using: &rng) < untrustedRate
        let partial = Double.random(in: 0..<1, using: &rng) < partialRate
        // Untrusted sets may claim anything, including an old epoch.
        let claimedMigration = untrusted && Bool.random(using: &rng) ? Int.random(in: 0...migrationId, using: &rng) : migrationId
        // Some duplicate capture times, to exercise the ordering.
        let t = (i > 0 && Int.random(in: 0..<50, using: &rng) == 0) ? sets[i - 1].captureTime : time
        sets.append(RetentionCandidate(setId: String(format: "%08x-%04d", UInt32(truncatingIfNeeded: rng.next()), i),
                                       migrationId: claimedMigration, serial: serial, captureTime: t,
                                       complete: !partial, trusted: !untrusted))
    }
    let retention = [30 * day, 30 * day, 10 * day, 60 * day][Int.random(in: 0...3, using: &rng)]
    let policy = RetentionPolicy(retentionPeriod: retention,
                                 margin: [day, day, 0.5 * day, 2 * hour][Int.random(in: 0...3, using: &rng)],
                                 keepWithin: [7 * day, 7 * day, 0, 2 * day, 30 * day][Int.random(in: 0...4, using: &rng)],
                                 keepLast: [12, 12, 0, 1, 3, 40][Int.random(in: 0...5, using: &rng)],
                                 keepEveryPastEpochSet: Int.random(in: 0..<8, using: &rng) == 0)
    let last = sets.map(\.captureTime).max()!
    let now = last.addingTimeInterval(Double.random(in: 0...(10 * day), using: &rng))
    return History(sets: sets.shuffled(using: &rng), policy: policy, now: now)
}

private struct EpochID: Hashable, Comparable {
    var m: Int, s: Int
    init(_ c: RetentionCandidate) { m = c.migrationId; s = c.serial }
    static func < (a: EpochID, b: EpochID) -> Bool { (a.m, a.s) < (b.m, b.s) }
}

private func ordered(_ a: RetentionCandidate, _ b: RetentionCandidate) -> Bool {
    (a.captureTime, a.setId) < (b.captureTime, b.setId)
}

@Suite("RetentionPlanner properties")
struct RetentionPlannerPropertyTests {
    static let seeds: [UInt64] = (1...400).map { UInt64($0) &* 0x9E37_79B9 }

    @Test func propertiesHoldOverRandomHistories() {
        var deletedSomething = 0, refused = 0, gapsSeen = 0
        for seed in Self.seeds {
            let h = randomHistory(seed: seed)
            let plan = RetentionPlanner.plan(h.sets, policy: h.policy, now: h.now)
            check(h, plan, seed: seed)
            if !plan.deletedSetIds.isEmpty { deletedSomething += 1 }
            if plan.refusedToDelete != nil { refused += 1 }
            gapsSeen += plan.gaps.count
        }
        // The generator exercises every path.
        #expect(deletedSomething > 100)
        #expect(refused > 10)
        #expect(gapsSeen > 100)
    }

    private func check(_ h: History, _ plan: RetentionPlan, seed: UInt64) {
        let sets = h.sets.sorted(by: ordered)
        let byId = Dictionary(sets.map { ($0.setId, $0) }, uniquingKeysWith: { a, _ in a })
        let maxGap = h.policy.maxGap

        // Shape: one decision per set, in capture-time order, each with a reason.
        #expect(plan.decisions.count == sets.count, "seed \(seed)")
        #expect(plan.decisions.map(\.setId) == sets.map(\.setId), "seed \(seed)")
        #expect(plan.decisions.allSatisfy { !$0.reasons.isEmpty }, "seed \(seed)")
        let kept = Dictionary(plan.decisions.map { ($0.setId, $0.keep) }, uniquingKeysWith: { a, _ in a })

        let complete = sets.filter(\.countsAsBackup)
        let epochs = Dictionary(grouping: complete, by: EpochID.init)

        // (1) Consecutive kept complete sets of an epoch are at most maxGap apart, unless a
        // recorded gap explains it; every recorded gap is a real gap between consecutive complete sets.
        let gapPairs = Set(plan.gaps.map { [$0.fromSetId, $0.toSetId] })
        for (_, list) in epochs {
            let keptList = list.filter { kept[$0.setId]! }
            #expect(keptList.first?.setId == list.first?.setId, "seed \(seed): oldest of an epoch kept")
            #expect(keptList.last?.setId == list.last?.setId, "seed \(seed): newest of an epoch kept")
            for (a, b) in zip(keptList, keptList.dropFirst()) {
                let d = b.captureTime.timeIntervalSince(a.captureTime)
                #expect(d <= maxGap || gapPairs.contains([a.setId, b.setId]), "seed \(seed): \(a.setId) -> \(b.setId) \(d / day)d")
            }
        }
        for gap in plan.gaps {
            guard let from = byId[gap.fromSetId], let to = byId[gap.toSetId] else {
                Issue.record("seed \(seed): gap names unknown sets"); continue
            }
            #expect(from.countsAsBackup && to.countsAsBackup, "seed \(seed)")
            #expect(EpochID(from) == EpochID(to) && gap.migrationId == from.migrationId && gap.serial == from.serial, "seed \(seed)")
            let list = epochs[EpochID(from)]!
            let i = list.firstIndex { $0.setId == from.setId }!
            #expect(i + 1 < list.count && list[i + 1].setId == to.setId, "seed \(seed): a gap is between consecutive complete sets")
            #expect(gap.seconds == to.captureTime.timeIntervalSince(from.captureTime) && gap.seconds > maxGap, "seed \(seed)")
            #expect(gap.fromTime == from.captureTime && gap.toTime == to.captureTime, "seed \(seed)")
            #expect(kept[from.setId]! && kept[to.setId]!, "seed \(seed)")
        }
        // Every real gap is recorded.
        var realGaps = 0
        for (_, list) in epochs {
            realGaps += zip(list, list.dropFirst()).filter { $1.captureTime.timeIntervalSince($0.captureTime) > maxGap }.count
        }
        #expect(realGaps == plan.gaps.count, "seed \(seed)")

        // (2) The newest keepLast complete sets and every complete set within keepWithin are kept.
        for c in complete.suffix(h.policy.keepLast) { #expect(kept[c.setId]!, "seed \(seed): keepLast") }
        for c in complete where h.now.timeIntervalSince(c.captureTime) <= h.policy.keepWithin {
            #expect(kept[c.setId]!, "seed \(seed): keepWithin")
        }

        // (3) Each past epoch's last complete set is kept (and all of it under keepEveryPastEpochSet).
        if let newestEpoch = epochs.keys.max() {
            for (epoch, list) in epochs where epoch != newestEpoch {
                #expect(kept[list.last!.setId]!, "seed \(seed): past epoch's last set")
                if h.policy.keepEveryPastEpochSet {
                    #expect(list.allSatisfy { kept[$0.setId]! }, "seed \(seed): every past-epoch set")
                }
            }
        }

        // (4) Untrusted sets are always kept.
        for u in sets where !u.trusted { #expect(kept[u.setId]!, "seed \(seed): untrusted kept") }

        // Partial sets go only when older than keepWithin and a newer complete set of their epoch exists.
        for p in sets where p.trusted && !p.complete && !kept[p.setId]! {
            #expect(h.now.timeIntervalSince(p.captureTime) > h.policy.keepWithin, "seed \(seed)")
            #expect(epochs[EpochID(p)]?.contains { $0.captureTime > p.captureTime } == true, "seed \(seed)")
        }

        // (5) Idempotent: planning again over what is kept deletes nothing more.
        let survivors = sets.filter { kept[$0.setId]! }
        let again = RetentionPlanner.plan(survivors, policy: h.policy, now: h.now)
        #expect(again.deletedSetIds.isEmpty, "seed \(seed): second plan deletes \(again.deletedSetIds)")
        #expect(again.gaps == plan.gaps, "seed \(seed): the same gaps")

        // (6) If the newest set is not trusted and complete, nothing is deleted; otherwise no refusal.
        let newestTime = sets.last!.captureTime
        let newestOK = sets.filter { $0.captureTime == newestTime }.allSatisfy(\.countsAsBackup)
        if !newestOK {
            #expect(plan.deletedSetIds.isEmpty, "seed \(seed): refused plan deletes nothing")
            #expect(plan.refusedToDelete == RetentionPlanner.newestNotVerifiedRefusal, "seed \(seed)")
        } else {
            #expect(plan.refusedToDelete == nil, "seed \(seed)")
        }

        // Deterministic: the same input in another order gives the same plan.
        var rng = SplitMix64(seed: seed ^ 0xABCDEF)
        #expect(RetentionPlanner.plan(h.sets.shuffled(using: &rng), policy: h.policy, now: h.now) == plan, "seed \(seed)")
    }
}

import Foundation
import CNBackupCore
import CNBackupStorage

// Retention planning for `cnbackup prune` (docs/CANTON.md, "Retention against pruning" and "Synchronizer epochs"). Pure logic: no I/O, no clock.
//
// Three tiers decide which sets are kept:
// - recent: every complete set captured within `keepWithin` of now, and the newest `keepLast`
//   complete sets overall;
// - historical: per synchronizer epoch (migrationId, serial), a chain of complete sets whose
//   consecutive members are at most `retentionPeriod - margin` apart, so that a kept backup is
//   always younger than the pruning retention of the next one (rule 3);
// - past epochs: every epoch but the newest keeps its chain and its last complete set (rule 4).
// Only trusted (signed by a pinned signer) and complete sets count toward a tier. Untrusted sets are
// never deleted; partial sets are deleted only when old and superseded within their epoch. When the
// newest set is not a trusted complete one, the plan deletes nothing.

/// One set as retention sees it: every field comes from the signed manifest, never from key names.
public struct RetentionCandidate: Sendable, Equatable {
    public var setId: String
    public var migrationId: Int
    public var serial: Int
    /// From the signed manifest (`captureStart`), never from key names.
    public var captureTime: Date
    /// The signed manifest says complete.
    public var complete: Bool
    /// The signature is valid and by a pinned signer.
    public var trusted: Bool
    /// The sets this one's incremental backups were taken against (from the signed manifest's
    /// chain links): they are kept as long as this one is.
    public var dependsOn: [String]

    public init(setId: String, migrationId: Int, serial: Int, captureTime: Date, complete: Bool, trusted: Bool, dependsOn: [String] = []) {
        self.dependsOn = dependsOn
        self.setId = setId
        self.migrationId = migrationId
        self.serial = serial
        self.captureTime = captureTime
        self.complete = complete
        self.trusted = trusted
    }

    /// Only a trusted, complete set counts as a backup.
    public var countsAsBackup: Bool { trusted && complete }
}

public struct RetentionPolicy: Sendable, Equatable {
    /// The pruning retention of the node (sequencer `retentionPeriod` / participant `retention`).
    public var retentionPeriod: TimeInterval
    /// Safety margin: kept sets are at most `retentionPeriod - margin` apart.
    public var margin: TimeInterval
    /// Every complete set captured within this of now is kept.
    public var keepWithin: TimeInterval
    /// The newest this many complete sets are kept.
    public var keepLast: Int
    /// Keep every complete set of a past epoch rather than only its chain and last set.
    /// (docs/CANTON.md, "Synchronizer epochs": every backup of a past epoch is kept; off by default.)
    public var keepEveryPastEpochSet: Bool

    public static let day: TimeInterval = 86_400

    public init(retentionPeriod: TimeInterval = 30 * RetentionPolicy.day,
                margin: TimeInterval = RetentionPolicy.day,
                keepWithin: TimeInterval = 7 * RetentionPolicy.day,
                keepLast: Int = 12,
                keepEveryPastEpochSet: Bool = false) {
        self.retentionPeriod = retentionPeriod
        self.margin = margin
        self.keepWithin = keepWithin
        self.keepLast = keepLast
        self.keepEveryPastEpochSet = keepEveryPastEpochSet
    }

    /// The largest allowed time between two consecutive kept sets of an epoch.
    public var maxGap: TimeInterval { retentionPeriod - margin }

    /// Why this policy cannot be used, or nil when it can. A plan under an invalid policy deletes nothing.
    public var problem: String? {
        if !retentionPeriod.isFinite || !margin.isFinite || !keepWithin.isFinite {
            return "the retention policy has a non-finite duration"
        }
        if margin < 0 { return "the retention margin (\(RetentionPlanner.describe(margin))) is negative" }
        if keepWithin < 0 { return "keepWithin (\(RetentionPlanner.describe(keepWithin))) is negative" }
        if keepLast < 0 { return "keepLast (\(keepLast)) is negative" }
        if maxGap <= 0 {
            return "the retention period (\(RetentionPlanner.describe(retentionPeriod))) must be longer than the margin (\(RetentionPlanner.describe(margin)))"
        }
        return nil
    }
}

public struct RetentionDecision: Sendable, Codable, Equatable {
    public var setId: String
    public var keep: Bool
    /// Why, for humans; never empty.
    public var reasons: [String]

    public init(setId: String, keep: Bool, reasons: [String]) {
        self.setId = setId
        self.keep = keep
        self.reasons = reasons
    }
}

/// Two consecutive complete sets of one epoch that are further apart than the policy allows:
/// the history itself has a gap, which no pruning caused and none can close.
public struct HistoryGap: Sendable, Codable, Equatable {
    public var migrationId: Int
    public var serial: Int
    public var fromSetId: String
    public var fromTime: Date
    public var toSetId: String
    public var toTime: Date
    public var seconds: TimeInterval

    public init(migrationId: Int, serial: Int, fromSetId: String, fromTime: Date, toSetId: String, toTime: Date, seconds: TimeInterval) {
        self.migrationId = migrationId
        self.serial = serial
        self.fromSetId = fromSetId
        self.fromTime = fromTime
        self.toSetId = toSetId
        self.toTime = toTime
        self.seconds = seconds
    }
}

public struct RetentionPlan: Sendable, Codable, Equatable {
    /// One decision per input set, ordered by capture time, then set id.
    public var decisions: [RetentionDecision]
    /// Gaps in the input's history, ordered by the time they start.
    public var gaps: [HistoryGap]
    /// Set when the plan deletes nothing on purpose, and why.
    public var refusedToDelete: String?
    /// Incremental chains that cannot be restored: a set depends on one that is gone or untrusted.
    public var brokenChains: [String]

    public init(decisions: [RetentionDecision], gaps: [HistoryGap], refusedToDelete: String?, brokenChains: [String] = []) {
        self.decisions = decisions
        self.gaps = gaps
        self.refusedToDelete = refusedToDelete
        self.brokenChains = brokenChains
    }

    public var keptSetIds: [String] { decisions.filter(\.keep).map(\.setId) }
    public var deletedSetIds: [String] { decisions.filter { !$0.keep }.map(\.setId) }
}

public enum RetentionPlanner {
    public static let newestNotVerifiedRefusal =
        "the newest set is unverified/partial: prune deletes nothing until a complete signed set is newest"
    public static let untrustedReason = "untrusted: not decided on"

    private struct EpochKey: Hashable, Comparable, CustomStringConvertible {
        var migrationId: Int
        var serial: Int
        static func < (a: EpochKey, b: EpochKey) -> Bool { (a.migrationId, a.serial) < (b.migrationId, b.serial) }
        var description: String { "\(migrationId)/\(serial)" }
    }

    public static func plan(_ sets: [RetentionCandidate], policy: RetentionPolicy, now: Date) -> RetentionPlan {
        guard !sets.isEmpty else { return RetentionPlan(decisions: [], gaps: [], refusedToDelete: nil) }
        var state = PlanState(sorting: sets, policy: policy, now: now)
        let n = state.n

        // Complete (trusted) sets by epoch, each list in capture-time order.
        var byEpoch: [EpochKey: [Int]] = [:]
        var completePositions: [Int] = []
        completePositions.reserveCapacity(n)
        for p in 0..<n where state.s[p].countsAsBackup {
            completePositions.append(p)
            byEpoch[EpochKey(migrationId: state.s[p].migrationId, serial: state.s[p].serial), default: []].append(p)
        }
        // Untrusted: never decided on.
        for p in 0..<n where !state.s[p].trusted {
            state.mark(p, untrustedReason)
        }
        state.markRecent(completePositions)
        var gaps = state.markHistory(byEpoch)
        state.markPartial(byEpoch)
        let brokenChains = state.keepChains()
        let refusal = state.refuseUnlessNewestCounts()

        let decisions = (0..<n).map { p in
            RetentionDecision(setId: state.s[p].setId, keep: state.keep[p], reasons: state.reasons[p].isEmpty ? ["kept"] : state.reasons[p])
        }
        gaps.sort { $0.position < $1.position }
        return RetentionPlan(decisions: decisions, gaps: gaps.map(\.gap), refusedToDelete: refusal, brokenChains: brokenChains)
    }

    /// The planner's working state: the sets in capture order with their times, and what has been
    /// decided for each so far. Each phase of `plan` is one method.
    private struct PlanState {
        let s: [RetentionCandidate]          // sorted sets; positions index into these
        let t: [TimeInterval]
        let policy: RetentionPolicy
        let nowT: TimeInterval
        var keep: [Bool]
        var reasons: [[String]]
        var n: Int { s.count }
        let maxGap: TimeInterval
        // Described once: reasons repeat them for every set.
        let keepWithinText: String
        let maxGapText: String

        init(sorting sets: [RetentionCandidate], policy: RetentionPolicy, now: Date) {
            let n = sets.count
            // Sort once: by capture time, then set id; the remaining keys only make duplicates deterministic.
            let rawTimes = sets.map { $0.captureTime.timeIntervalSinceReferenceDate }
            let order = (0..<n).sorted { a, b in
                if rawTimes[a] != rawTimes[b] { return rawTimes[a] < rawTimes[b] }
                let x = sets[a], y = sets[b]
                if x.setId != y.setId { return x.setId < y.setId }
                if x.migrationId != y.migrationId { return x.migrationId < y.migrationId }
                if x.serial != y.serial { return x.serial < y.serial }
                if x.trusted != y.trusted { return !x.trusted }
                if x.complete != y.complete { return !x.complete }
                return a < b
            }
            s = order.map { sets[$0] }
            t = order.map { rawTimes[$0] }
            nowT = now.timeIntervalSinceReferenceDate
            self.policy = policy
            maxGap = policy.maxGap
            keepWithinText = RetentionPlanner.describe(policy.keepWithin)
            maxGapText = RetentionPlanner.describe(policy.maxGap)
            keep = [Bool](repeating: false, count: n)
            reasons = [[String]](repeating: [], count: n)
        }

        mutating func mark(_ p: Int, _ reason: String) {
            keep[p] = true
            reasons[p].append(reason)
        }

        /// The recent tier: sets within `keepWithin` of now, and the newest `keepLast`.
        mutating func markRecent(_ completePositions: [Int]) {
            // Recent tier.
            for p in completePositions where nowT - t[p] <= policy.keepWithin {
                mark(p, "recent: captured within \(keepWithinText) of now")
            }
            if policy.keepLast > 0 {
                for p in completePositions.suffix(policy.keepLast) {
                    mark(p, "recent: among the newest \(policy.keepLast) complete sets")
                }
            }
        }

        /// The historical tier: a greedy chain per epoch, links at most `maxGap` apart; returns the
        /// gaps the history itself has.
        mutating func markHistory(_ byEpoch: [EpochKey: [Int]]) -> [(position: Int, gap: HistoryGap)] {
            let epochs = byEpoch.keys.sorted()
            let newestEpoch = epochs.last
            // Historical tier: a greedy chain per epoch.
            var gaps: [(position: Int, gap: HistoryGap)] = []
            for key in epochs {
                let list = byEpoch[key]!
                let isPast = key != newestEpoch
                let last = list.count - 1
                mark(list[0], "history: oldest complete set of epoch \(key)")
                var a = 0
                var j = 0
                while a < last {
                    if j < a { j = a }
                    while j < last && t[list[j + 1]] - t[list[a]] <= maxGap { j += 1 }
                    if j == a {
                        let from = list[a], to = list[a + 1]
                        let seconds = t[to] - t[from]
                        gaps.append((from, HistoryGap(migrationId: key.migrationId, serial: key.serial,
                                                      fromSetId: s[from].setId, fromTime: s[from].captureTime,
                                                      toSetId: s[to].setId, toTime: s[to].captureTime, seconds: seconds)))
                        mark(to, "history: first complete set after a gap of \(describe(seconds)) in epoch \(key) (more than \(maxGapText) with no complete set between: the history itself has a gap)")
                        a += 1
                    } else {
                        mark(list[j], "history: chain link of epoch \(key), \(describe(t[list[j]] - t[list[a]])) after the previous link \(s[list[a]].setId) (at most \(maxGapText))")
                        a = j
                    }
                }
                mark(list[last], "history: newest complete set of epoch \(key)")
                if isPast {
                    if policy.keepEveryPastEpochSet {
                        for p in list { mark(p, "past epoch \(key): every complete set of a past epoch is kept") }
                    } else {
                        for p in list where keep[p] && p != list[last] {
                            mark(p, "past epoch \(key): its history chain is never thinned")
                        }
                    }
                    mark(list[last], "past epoch \(key): its last complete set is always kept")
                }
                // Explain the complete sets that go: the kept neighbours around them are close enough.
                var previousKept = list[0]
                var i = 1
                while i <= last {
                    if keep[list[i]] { previousKept = list[i]; i += 1; continue }
                    var k = i
                    while !keep[list[k]] { k += 1 }      // the newest of the epoch is kept, so this ends
                    let nextKept = list[k]
                    let span = describe(t[nextKept] - t[previousKept])
                    for m in i..<k {
                        reasons[list[m]].append("delete: complete set of epoch \(key) not needed: the kept sets \(s[previousKept].setId) and \(s[nextKept].setId) around it are \(span) apart (at most \(maxGapText)); older than \(keepWithinText) and not among the newest \(policy.keepLast)")
                    }
                    i = k
                }
            }
            return gaps
        }

        /// Partial sets: deleted only when old and superseded by a complete set of their epoch.
        mutating func markPartial(_ byEpoch: [EpochKey: [Int]]) {
            for p in 0..<n where s[p].trusted && !s[p].complete {
                let key = EpochKey(migrationId: s[p].migrationId, serial: s[p].serial)
                let newestComplete = byEpoch[key]?.last
                if nowT - t[p] <= policy.keepWithin {
                    mark(p, "partial: kept, captured within \(keepWithinText) of now")
                } else if let c = newestComplete, t[c] > t[p] {
                    reasons[p].append("delete: partial set older than \(keepWithinText), superseded by the complete set \(s[c].setId) of epoch \(key)")
                } else {
                    mark(p, "partial: kept, no complete set of epoch \(key) is newer")
                }
            }
        }

        /// Incremental chains: a kept set keeps every set it depends on; returns the chains that are broken.
        mutating func keepChains() -> [String] {
            // Incremental chains: a kept set keeps every set it depends on, transitively (a closure,
            // so a chain of any length stays whole). A dependency that is gone or untrusted is reported.
            var position: [String: Int] = [:]
            for p in 0..<n where s[p].trusted { position[s[p].setId] = position[s[p].setId] ?? p }
            var brokenChains: [String] = []
            for p in 0..<n where s[p].trusted {
                for parent in s[p].dependsOn {
                    if position[parent] == nil {
                        let untrusted = s.contains { $0.setId == parent }
                        brokenChains.append("\(s[p].setId) is an incremental on \(parent), which is \(untrusted ? "untrusted" : "gone"): it cannot be restored")
                    } else {
                        reasons[p].append("chain: incremental on \(parent)")
                    }
                }
            }
            var work = (0..<n).filter { keep[$0] && s[$0].trusted }
            while let p = work.popLast() {
                for parent in s[p].dependsOn {
                    guard let q = position[parent] else { continue }
                    let reason = "kept: base of incremental chain for \(s[p].setId)"
                    if !keep[q] {
                        keep[q] = true
                        reasons[q] = [reason] + reasons[q].map { $0.hasPrefix("delete:") ? "otherwise: " + $0 : $0 }
                        work.append(q)
                    } else if !reasons[q].contains(reason) {
                        reasons[q].append(reason)
                    }
                }
            }
            return brokenChains
        }

        /// Safety: the newest set (all sets sharing the newest capture time) must be trusted and
        /// complete, and the policy valid; otherwise everything is kept, and the reason returned.
        mutating func refuseUnlessNewestCounts() -> String? {
            var refusal = policy.problem.map { "the retention policy is invalid: \($0): prune deletes nothing" }
            if refusal == nil {
                var p = n - 1
                let newestT = t[p]
                while p >= 0 && t[p] == newestT {
                    if !s[p].countsAsBackup {
                        refusal = newestNotVerifiedRefusal
                        reasons[p].append("newest set overall, but \(s[p].trusted ? "partial" : "untrusted"): prune deletes nothing")
                    }
                    p -= 1
                }
            }
            if let refusal {
                for p in 0..<n where !keep[p] {
                    keep[p] = true
                    reasons[p] = ["kept: \(refusal)"] + reasons[p].map { "otherwise: " + $0 }
                }
            }
            return refusal
        }
    }

    /// A duration for humans: "29d", "3d 4h", "2h 5m", "45m", "12s".
    public static func describe(_ seconds: TimeInterval) -> String {
        guard seconds.isFinite else { return "\(seconds)s" }
        let negative = seconds < 0
        let total = Int(abs(seconds).rounded())
        let d = total / 86_400, h = (total % 86_400) / 3_600, m = (total % 3_600) / 60, sec = total % 60
        var parts: [String] = []
        if d > 0 { parts.append("\(d)d") }
        if h > 0 { parts.append("\(h)h") }
        if m > 0 && d == 0 { parts.append("\(m)m") }
        if sec > 0 && d == 0 && h == 0 { parts.append("\(sec)s") }
        if parts.isEmpty { parts.append(total == 0 ? "0s" : "\(d)d") }
        return (negative ? "-" : "") + parts.joined(separator: " ")
    }

    /// The time the sets of `benchmarkInput` end near; use it as `now` when planning over them.
    public static let benchmarkNow = Date(timeIntervalSince1970: 1_800_000_000)

    /// A deterministic history of `count` sets for benchmarks: roughly 4-hourly sets (10 minutes to
    /// 8 hours apart, with an occasional multi-week outage), epochs advancing now and then, about
    /// 5% partial and 2% untrusted, the newest one complete and trusted, ending at `benchmarkNow`.
    public static func benchmarkInput(count: Int) -> [RetentionCandidate] {
        guard count > 0 else { return [] }
        var rng = RetentionSplitMix64(seed: 0x5EED_CB_0001)
        var offsets: [TimeInterval] = []
        offsets.reserveCapacity(count)
        var offset: TimeInterval = 0
        for _ in 0..<count {
            offsets.append(offset)
            if rng.next() % 1000 == 0 {
                offset += TimeInterval(20 * 86_400 + Int(rng.next() % UInt64(20 * 86_400)))
            } else {
                offset += TimeInterval(600 + Int(rng.next() % UInt64(8 * 3_600 - 600)))
            }
        }
        let end = offsets[count - 1]
        var result: [RetentionCandidate] = []
        result.reserveCapacity(count)
        var migrationId = 0, serial = 0
        for i in 0..<count {
            let roll = rng.next()
            if roll % 2_000 == 0 { migrationId += 1; serial = 0 } else if roll % 2_000 == 1 { serial += 1 }
            let quality = rng.next() % 100
            let isNewest = i == count - 1
            let time = benchmarkNow.addingTimeInterval(offsets[i] - end - 3_600)
            result.append(RetentionCandidate(
                setId: Self.benchmarkSetId(time: time, index: i),
                migrationId: migrationId, serial: serial, captureTime: time,
                complete: isNewest || quality >= 5, trusted: isNewest || !(5..<7).contains(quality)))
        }
        return result
    }

    private static func benchmarkSetId(time: Date, index: Int) -> String {
        let hex = String(UInt32(truncatingIfNeeded: index &* 2_654_435_761), radix: 16)
        return "bench-\(Int(time.timeIntervalSince1970))-" + String(repeating: "0", count: 8 - hex.count) + hex
    }
}

/// A small deterministic generator (SplitMix64) for `benchmarkInput`.
struct RetentionSplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

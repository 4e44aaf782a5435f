import Foundation
import CNBackupCore
import CNBackupStorage
import CNBackupCatalog

/// How fresh a node's backups are, from trusted manifests only.
public struct FreshnessReport: Sendable, Codable {
    public struct Component: Sendable, Codable {
        public var name: String
        public var storedBytes: Int64
        public var durationSeconds: Double
    }
    public var node: String
    public var newestCompleteSetId: String?
    public var newestCompleteCapture: Date?
    /// The synchronizer epoch of the newest complete set.
    public var newestCompleteEpoch: Epoch? = nil
    public var ageSeconds: Double?
    public var maxAgeSeconds: Double
    public var fresh: Bool
    public var untrustedSets: Int
    public var partialSets: Int
    public var components: [Component]
    /// Gaps in the history longer than the retention period allows, when a policy was given.
    public var gaps: [HistoryGap]?
}

public struct FreshnessCheck: Sendable {
    public let catalog: Catalog
    public init(catalog: Catalog) { self.catalog = catalog }

    /// - Parameter retention: when given, the history's gaps longer than its period less its margin
    ///   are reported too (the same rule prune applies).
    public func check(node: String, maxAge: TimeInterval, retention: RetentionPolicy? = nil, now: Date = Date()) throws -> FreshnessReport {
        let entries = try catalog.entries(node: node)
        // An outage is not an attack and not a stale backup: say the store failed, not STALE.
        let unreadable = entries.filter(\.isUnreadable)
        if !unreadable.isEmpty {
            throw CNBackupError(.storage, "the store did not answer for \(unreadable.count) set(s) of \(node) (\(unreadable.prefix(3).map(\.setId).joined(separator: ", "))): freshness cannot be judged until it does; check the store's health",
                                cause: unreadable.first?.problems.first, transient: true)
        }
        let complete = entries.filter(\.isCompleteBackup).compactMap { entry in
            entry.manifest.flatMap { m in m.captureStartDate.map { (entry, m, $0) } }
        }.max { $0.2 < $1.2 }
        let age = complete.map { now.timeIntervalSince($0.2) }
        let components = complete?.1.components.map { record in
            // A deduplicated component's own object is its index: what it stored is its new chunks too.
            FreshnessReport.Component(name: record.name, storedBytes: record.storedSize + (record.dedup?.newStoredBytes ?? 0),
                                      durationSeconds: max(0, (Timestamp.parse(record.ended) ?? now).timeIntervalSince(Timestamp.parse(record.started) ?? now)))
        } ?? []
        var report = FreshnessReport(node: node, newestCompleteSetId: complete?.0.setId, newestCompleteCapture: complete?.2,
                               ageSeconds: age, maxAgeSeconds: maxAge, fresh: age.map { $0 <= maxAge } ?? false,
                               untrustedSets: entries.filter { !$0.isTrusted }.count,
                               partialSets: entries.filter { $0.isTrusted && !$0.isCompleteBackup }.count,
                               components: components,
                               gaps: retention.map { RetentionPlanner.plan(Pruner.candidates(entries), policy: $0, now: now).gaps })
        report.newestCompleteEpoch = complete?.1.epoch
        return report
    }
}

extension FreshnessReport {
    /// Prometheus text exposition format, for node_exporter's textfile collector or a pushgateway.
    public var prometheusText: String {
        let n = "node=\"\(PrometheusText.label(node))\""
        func componentSamples(_ value: (Component) -> String) -> [(labels: String, value: String)] {
            components.map { ("\(n),component=\"\(PrometheusText.label($0.name))\"", value($0)) }
        }
        var lines: [String] = []
        lines += PrometheusText.gauge("cnbackup_backup_fresh", "1 when the newest complete, signed set is younger than the maximum age.",
                                      [(n, fresh ? "1" : "0")])
        lines += PrometheusText.gauge("cnbackup_last_success_timestamp_seconds", "Capture start of the newest complete, signed set.",
                                      [(n, newestCompleteCapture.map { String(format: "%.3f", $0.timeIntervalSince1970) } ?? "0")])
        lines += PrometheusText.gauge("cnbackup_last_success_age_seconds", "Age of the newest complete, signed set.",
                                      [(n, ageSeconds.map { String(format: "%.3f", $0) } ?? "+Inf")])
        if let epoch = newestCompleteEpoch {
            // The epoch as labels of a series of its own, so the series above keep their labels
            // across a migration (alerts and dashboards join on node).
            lines += PrometheusText.gauge("cnbackup_last_success_epoch", "1, labelled with the synchronizer epoch (migration id, physical synchronizer serial) of the newest complete set.",
                                          [("\(n),migration_id=\"\(epoch.migrationId)\",serial=\"\(epoch.serial)\"", "1")])
        }
        lines += PrometheusText.gauge("cnbackup_untrusted_sets", "Sets whose manifest signature is missing, invalid or by an unpinned key.",
                                      [(n, "\(untrustedSets)")])
        lines += PrometheusText.gauge("cnbackup_partial_sets", "Signed sets committed as partial.", [(n, "\(partialSets)")])
        lines += PrometheusText.gauge("cnbackup_last_success_component_bytes", "Stored bytes per component of the newest complete set.",
                                      componentSamples { "\($0.storedBytes)" })
        lines += PrometheusText.gauge("cnbackup_last_success_component_duration_seconds", "Capture duration per component of the newest complete set.",
                                      componentSamples { String(format: "%.3f", $0.durationSeconds) })
        if let gaps {
            lines += PrometheusText.gauge("cnbackup_history_gaps", "Gaps between consecutive complete sets of an epoch longer than the retention period allows.",
                                          [(n, "\(gaps.count)")])
            lines += PrometheusText.gauge("cnbackup_history_longest_gap_seconds", "The longest such gap.",
                                          [(n, String(format: "%.0f", gaps.map(\.seconds).max() ?? 0))])
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Writes the metrics atomically (temporary file, then rename), as the textfile collector expects.
    public func writeMetrics(to path: String) throws {
        try PrometheusText.write(prometheusText, to: path)
    }
}

/// Whether a node's restore drills are recent and passing, the verdict `check-freshness
/// --max-drill-age` gives beside the sets' own.
public struct DrillFreshness: Sendable, Equatable {
    /// The newest drill of a set that is itself recent enough to count.
    public var newest: DrillReceipt?
    public var ageSeconds: Double?
    /// The newest such drill passed and is at most `maxDrillAge` old.
    public var fresh: Bool

    /// Only drills of sets captured within `maxDrillAge + maxAge` count: a passing drill of a
    /// year-old set says nothing about whether today's sets restore. The newest counting drill
    /// decides, so a failed drill is not hidden by an older one that passed.
    public static func judge(receipts: [DrillReceipt], sets: [TrustedSet], maxDrillAge: TimeInterval, maxAge: TimeInterval,
                             now: Date = Date()) -> DrillFreshness {
        let recentSets = Set(sets.filter { set in
            set.manifest.captureStartDate.map { now.timeIntervalSince($0) <= maxDrillAge + maxAge } ?? false
        }.map(\.setId))
        let newest = receipts.filter { recentSets.contains($0.setId) }.max { $0.at < $1.at }
        let age = newest?.atDate.map { now.timeIntervalSince($0) }
        return DrillFreshness(newest: newest, ageSeconds: age, fresh: newest?.passed == true && (age.map { $0 <= maxDrillAge } ?? false))
    }
}

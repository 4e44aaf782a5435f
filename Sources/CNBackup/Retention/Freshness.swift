import Foundation

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
    public var ageSeconds: Double?
    public var maxAgeSeconds: Double
    public var fresh: Bool
    public var untrustedSets: Int
    public var partialSets: Int
    public var components: [Component]
}

public struct FreshnessCheck: Sendable {
    public let catalog: Catalog
    public init(catalog: Catalog) { self.catalog = catalog }

    public func check(node: String, maxAge: TimeInterval, now: Date = Date()) throws -> FreshnessReport {
        let entries = try catalog.entries(node: node)
        let complete = entries.filter(\.isCompleteBackup).compactMap { entry in
            entry.manifest.flatMap { m in m.captureStartDate.map { (entry, m, $0) } }
        }.max { $0.2 < $1.2 }
        let age = complete.map { now.timeIntervalSince($0.2) }
        let components = complete?.1.components.map { record in
            FreshnessReport.Component(name: record.name, storedBytes: record.storedSize,
                                      durationSeconds: max(0, (Timestamp.parse(record.ended) ?? now).timeIntervalSince(Timestamp.parse(record.started) ?? now)))
        } ?? []
        return FreshnessReport(node: node, newestCompleteSetId: complete?.0.setId, newestCompleteCapture: complete?.2,
                               ageSeconds: age, maxAgeSeconds: maxAge, fresh: age.map { $0 <= maxAge } ?? false,
                               untrustedSets: entries.filter { !$0.isTrusted }.count,
                               partialSets: entries.filter { $0.isTrusted && !$0.isCompleteBackup }.count,
                               components: components)
    }
}

extension FreshnessReport {
    /// Prometheus text exposition format, for node_exporter's textfile collector or a pushgateway.
    public var prometheusText: String {
        func label(_ s: String) -> String { s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") }
        let n = "node=\"\(label(node))\""
        var lines = [
            "# HELP cnbackup_backup_fresh 1 when the newest complete, signed set is younger than the maximum age.",
            "# TYPE cnbackup_backup_fresh gauge",
            "cnbackup_backup_fresh{\(n)} \(fresh ? 1 : 0)",
            "# HELP cnbackup_last_success_timestamp_seconds Capture start of the newest complete, signed set.",
            "# TYPE cnbackup_last_success_timestamp_seconds gauge",
            "cnbackup_last_success_timestamp_seconds{\(n)} \(newestCompleteCapture.map { String(format: "%.3f", $0.timeIntervalSince1970) } ?? "0")",
            "# HELP cnbackup_last_success_age_seconds Age of the newest complete, signed set.",
            "# TYPE cnbackup_last_success_age_seconds gauge",
            "cnbackup_last_success_age_seconds{\(n)} \(ageSeconds.map { String(format: "%.3f", $0) } ?? "+Inf")",
            "# HELP cnbackup_untrusted_sets Sets whose manifest signature is missing, invalid or by an unpinned key.",
            "# TYPE cnbackup_untrusted_sets gauge",
            "cnbackup_untrusted_sets{\(n)} \(untrustedSets)",
            "# HELP cnbackup_partial_sets Signed sets committed as partial.",
            "# TYPE cnbackup_partial_sets gauge",
            "cnbackup_partial_sets{\(n)} \(partialSets)",
            "# HELP cnbackup_last_success_component_bytes Stored bytes per component of the newest complete set.",
            "# TYPE cnbackup_last_success_component_bytes gauge",
        ]
        lines += components.map { "cnbackup_last_success_component_bytes{\(n),component=\"\(label($0.name))\"} \($0.storedBytes)" }
        lines += ["# HELP cnbackup_last_success_component_duration_seconds Capture duration per component of the newest complete set.",
                  "# TYPE cnbackup_last_success_component_duration_seconds gauge"]
        lines += components.map { "cnbackup_last_success_component_duration_seconds{\(n),component=\"\(label($0.name))\"} \(String(format: "%.3f", $0.durationSeconds))" }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Writes the metrics atomically (temporary file, then rename), as the textfile collector expects.
    public func writeMetrics(to path: String) throws {
        let temporary = path + ".tmp-\(getpid())"
        do {
            try Data(prometheusText.utf8).write(to: URL(fileURLWithPath: temporary))
            guard rename(temporary, path) == 0 else { throw CNBackupError(.io, "cannot move metrics into \(path)") }
        } catch let error as CNBackupError {
            unlink(temporary); throw error
        } catch {
            unlink(temporary); throw CNBackupError(.io, "cannot write metrics to \(path): \(error.localizedDescription)")
        }
    }
}

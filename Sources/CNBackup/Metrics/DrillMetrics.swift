import Foundation
import CNBackupCore
import CNBackupCatalog

/// The drill metrics (`cnbackup_drill_*`): the newest trusted drill's status and seconds per
/// component, and the age of the newest passing one; `failedToRun` when the drill could not run at all.
public func drillMetricsText(node: String, newest: DrillReceipt?, newestPassing: DrillReceipt?, failedToRun: Bool = false, now: Date = Date()) -> String {
    let n = "node=\"\(PrometheusText.label(node))\""
    var lines: [String] = []
    lines += PrometheusText.gauge("cnbackup_drill_status", "1 when the newest restore drill passed, 0 when it failed or could not run.",
                                  [(n, !failedToRun && newest?.passed == true ? "1" : "0")])
    lines += PrometheusText.gauge("cnbackup_drill_last_success_timestamp_seconds", "When the newest passing restore drill ended.",
                                  [(n, newestPassing?.atDate.map { String(format: "%.3f", $0.timeIntervalSince1970) } ?? "0")])
    lines += PrometheusText.gauge("cnbackup_drill_age_seconds", "Age of the newest passing restore drill.",
                                  [(n, newestPassing?.atDate.map { String(format: "%.3f", now.timeIntervalSince($0)) } ?? "+Inf")])
    if let newest {
        lines += PrometheusText.gauge("cnbackup_drill_restore_seconds", "The whole node's restore in the newest drill.",
                                      [(n, String(format: "%.3f", newest.restoreSeconds))])
        lines += PrometheusText.gauge("cnbackup_drill_component_seconds", "Seconds until each component was queryable in the newest drill.",
                                      newest.components.map { ("\(n),component=\"\(PrometheusText.label($0.name))\"", String(format: "%.3f", $0.seconds)) })
        lines += PrometheusText.gauge("cnbackup_drill_component_ok", "1 when the component restored and its rows matched in the newest drill.",
                                      newest.components.map { ("\(n),component=\"\(PrometheusText.label($0.name))\"", $0.status == .passed ? "1" : "0") })
    }
    return lines.joined(separator: "\n") + "\n"
}

import Foundation
import CNBackupCatalog

/// How far a disaster copy is behind its source, per node: the capture time of the newest complete,
/// trusted set in the source minus that in the copy (0 when the copy has it; +Inf when the copy has
/// no complete set of the node at all). Future-dated sets count on neither side.
public struct CopyLag: Sendable, Equatable {
    public var node: String
    public var seconds: Double

    public static func measure(source: Catalog, destination: Catalog, node: String? = nil) throws -> [CopyLag] {
        func newest(_ catalog: Catalog) throws -> [String: Date] {
            var newest: [String: Date] = [:]
            for entry in try catalog.entries(node: node) where entry.isCompleteBackup && !entry.isFutureDated {
                guard let date = entry.manifest?.captureStartDate else { continue }
                newest[entry.layout.node] = max(newest[entry.layout.node] ?? date, date)
            }
            return newest
        }
        let copied = try newest(destination)
        return try newest(source).sorted { $0.key < $1.key }.map { name, date in
            CopyLag(node: name, seconds: copied[name].map { max(0, date.timeIntervalSince($0)) } ?? .infinity)
        }
    }
}

/// `cnbackup_copy_lag_seconds`, one sample per node.
public func copyLagMetricsText(_ lags: [CopyLag]) -> String {
    let lines = PrometheusText.gauge("cnbackup_copy_lag_seconds",
                                     "How far the copy's newest complete set of the node is behind the source's (+Inf: the copy has none).",
                                     lags.map { ("node=\"\(PrometheusText.label($0.node))\"", $0.seconds.isFinite ? String(format: "%.0f", $0.seconds) : "+Inf") })
    return lines.joined(separator: "\n") + "\n"
}

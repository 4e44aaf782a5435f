import Foundation
import CNBackupCatalog

/// How far a disaster copy is behind its source, per node: the capture time of the newest complete,
/// trusted set in the source minus that in the copy (0 when the copy has it; +Inf when the copy has
/// no complete set of the node at all). Future-dated sets count on neither side.
public struct CopyLag: Sendable, Equatable {
    public var node: String
    public var seconds: Double
    /// The same per synchronizer epoch of the source (`cnbackup_copy_epoch_lag_seconds`): a copy
    /// that caught up with the new epoch but lacks the old one's last sets shows here.
    public var byEpoch: [Epoch: Double] = [:]

    public static func measure(source: Catalog, destination: Catalog, node: String? = nil) throws -> [CopyLag] {
        func newest(_ catalog: Catalog) throws -> [String: Date] {
            var newest: [String: Date] = [:]
            for entry in try catalog.entries(node: node) where entry.isCompleteBackup && !entry.isFutureDated {
                guard let date = entry.manifest?.captureStartDate else { continue }
                newest[entry.layout.node] = max(newest[entry.layout.node] ?? date, date)
            }
            return newest
        }
        func newestByEpoch(_ catalog: Catalog) throws -> [String: [Epoch: Date]] {
            var newest: [String: [Epoch: Date]] = [:]
            for entry in try catalog.entries(node: node) where entry.isCompleteBackup && !entry.isFutureDated {
                guard let manifest = entry.manifest, let date = manifest.captureStartDate else { continue }
                let epoch = Epoch(migrationId: manifest.epoch.migrationId, serial: manifest.epoch.serial)
                newest[entry.layout.node, default: [:]][epoch] = max(newest[entry.layout.node]?[epoch] ?? date, date)
            }
            return newest
        }
        let copied = try newest(destination)
        let copiedByEpoch = try newestByEpoch(destination)
        let sourceByEpoch = try newestByEpoch(source)
        return try newest(source).sorted { $0.key < $1.key }.map { name, date in
            var lag = CopyLag(node: name, seconds: copied[name].map { max(0, date.timeIntervalSince($0)) } ?? .infinity)
            for (epoch, newest) in sourceByEpoch[name] ?? [:] {
                lag.byEpoch[epoch] = copiedByEpoch[name]?[epoch].map { max(0, newest.timeIntervalSince($0)) } ?? .infinity
            }
            return lag
        }
    }
}

/// `cnbackup_copy_lag_seconds`, one sample per node.
public func copyLagMetricsText(_ lags: [CopyLag]) -> String {
    let lines = PrometheusText.gauge("cnbackup_copy_lag_seconds",
                                     "How far the copy's newest complete set of the node is behind the source's (+Inf: the copy has none).",
                                     lags.map { ("node=\"\(PrometheusText.label($0.node))\"", $0.seconds.isFinite ? String(format: "%.0f", $0.seconds) : "+Inf") })
    let byEpoch = lags.flatMap { lag in
        lag.byEpoch.sorted { ($0.key.migrationId, $0.key.serial) < ($1.key.migrationId, $1.key.serial) }.map { epoch, seconds in
            ("node=\"\(PrometheusText.label(lag.node))\",migration_id=\"\(epoch.migrationId)\",serial=\"\(epoch.serial)\"",
             seconds.isFinite ? String(format: "%.0f", seconds) : "+Inf")
        }
    }
    let epochLines = byEpoch.isEmpty ? [] : PrometheusText.gauge("cnbackup_copy_epoch_lag_seconds",
        "The same per synchronizer epoch (migration id, physical synchronizer serial) of the source.", byEpoch)
    return (lines + epochLines).joined(separator: "\n") + "\n"
}

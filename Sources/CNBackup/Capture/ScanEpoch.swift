import Foundation
import CNBackupCore
import CNBackupHTTP
import Logging

/// Scan (Splice's public read API) reports the active physical synchronizer serial at
/// `GET /api/scan/v0/active-synchronizer-serial` (`{"serial": N}`, no authentication; Splice's own
/// monitoring scripts read it). The migration id is not offered there as one number, and MainNet
/// keeps it fixed since logical synchronizer upgrades, so cnbackup uses Scan as a check on the
/// pipeline's serial, never as its source: a pipeline still naming the old serial after an upgrade
/// (and so the old sequencer and mediator databases) is refused before anything runs.
enum ScanEpoch {
    static let path = "/api/scan/v0/active-synchronizer-serial"

    static func activeSerial(scanURL: String, caFile: String? = nil, timeoutSeconds: Int = 30) throws -> Int {
        try SecureURL.require(scanURL, what: "epoch.scanUrl")
        var base = scanURL
        while base.hasSuffix("/") { base.removeLast() }
        let url = base + path
        let request = HTTPRequest(method: "GET", url: url, headers: [("Accept", "application/json")])
        let response = try RetryPolicy.capture(deadline: TimeInterval(timeoutSeconds)).fetch(
            { request }, caFile: caFile, limit: 64 << 10, what: "GET \(url)",
            timedOut: CNBackupError(.capture, "GET \(url) did not answer within \(timeoutSeconds)s"))
        guard response.status == 200,
              let json = try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any],
              let serial = (json["serial"] as? NSNumber)?.intValue, serial >= 0 else {
            throw CNBackupError(.capture, "Scan at \(scanURL) gave no active synchronizer serial (HTTP \(response.status)): check epoch.scanUrl")
        }
        return serial
    }

    /// Refuses a pipeline whose serial is not the one Scan reports as active. Scan being down or
    /// refusing is only a warning: a Scan outage must not stop every backup.
    static func check(_ definition: PipelineDefinition, logger: Logger) throws {
        guard let scanURL = definition.scanURL else { return }
        let active: Int
        do {
            active = try activeSerial(scanURL: scanURL)
        } catch let error as CNBackupError where error.code == .capture {
            logger.warning("Scan could not be asked for the active synchronizer serial: the epoch is not checked against it this run",
                           metadata: ["scan": "\(scanURL)", "error": "\(error.message)"])
            return
        }
        guard active == definition.epoch.serial else {
            throw CNBackupError(.invalidDefinition,
                "Scan at \(scanURL) reports active physical synchronizer serial \(active), but the pipeline's epoch is \(definition.epoch): after a logical synchronizer upgrade, set epoch.serial (or --epoch / CNBACKUP_EPOCH) to \(active) and rename the sequencer and mediator databases (sequencer_\(active), mediator_\(active)); keep the old synchronizer's captures with their own epoch while it runs")
        }
    }
}

import ArgumentParser
import CNBackup
import Foundation
import CNBackupCore
import CNBackupStorage

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write one self-contained HTML page of the store's sets, drawn from the signed catalog.",
        discussion: """
        Each node's sets on a time axis by epoch, sizes and durations, the retention chain's gaps (with --retention-period), \
        drills and their restore times (with --drill-signer), what Object Lock keeps until when, and what is untrusted and why. \
        Every name is HTML-escaped and the page forbids scripts and fetches nothing (Content-Security-Policy).
        """)

    @OptionGroup var storeOptions: StoreOptions
    @OptionGroup var signerOptions: SignerOptions
    @OptionGroup var drillSignerOptions: DrillSignerOptions
    @Option(help: "Only this node's sets.") var node: String?
    @Option(help: "The node's pruning retention period (e.g. 30d): show the chain's gaps against it.") var retentionPeriod: String?
    @Option(help: "Where to write the page.") var html: String
    @Flag(help: "Replace an existing file.") var force = false

    func run() throws {
        try reporting {
            let catalog = try signerOptions.catalog(try storeOptions.openForReading())
            let retention = try retentionPeriod.map { RetentionPolicy(retentionPeriod: try DurationText.parse($0), margin: 0) }
            let report = try HTMLReport.collect(catalog: catalog, node: node, drillSigners: try drillSignerOptions.load(), retention: retention)
            if !force && FileManager.default.fileExists(atPath: html) {
                throw CNBackupError(.alreadyExists, "\(html) already exists: choose another path or pass --force")
            }
            let temporary = html + ".tmp-\(getpid())"
            try Data(report.render().utf8).write(to: URL(fileURLWithPath: temporary))
            guard rename(temporary, html) == 0 else {
                try? FileManager.default.removeItem(atPath: temporary)
                throw CNBackupError(.io, "cannot write \(html): \(String(cString: strerror(errno)))")
            }
            printToStandardError("wrote \(html): \(report.sets.count) set(s), \(report.sets.filter { $0.status == "untrusted" }.count) untrusted")
        }
    }
}

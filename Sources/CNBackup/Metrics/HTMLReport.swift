import Foundation
import CNBackupCore
import CNBackupCatalog

/// `cnbackup report --html`: one self-contained page drawn from the signed catalog, what an operator
/// hands an auditor or the other Super Validators. Set ids, node names, component names and every
/// problem text come from whoever can write to the bucket, so every string is HTML-escaped (text
/// and attributes, inside SVG too), and the page carries a Content-Security-Policy of
/// `default-src 'none'; style-src 'unsafe-inline'`: inline SVG and styles only, no script, nothing
/// fetched.
public struct HTMLReport: Sendable {
    /// One set as the page shows it.
    public struct SetRow: Sendable {
        public var setId: String
        public var node: String
        public var epoch: String
        public var captured: Date?
        /// complete, partial, untrusted or recovered.
        public var status: String
        public var storedBytes: Int64
        public var durationSeconds: Double?
        public var components: [(name: String, bytes: Int64, seconds: Double)]
        public var problems: [String]
        public var lockedUntil: Date?
        public var drills: [(at: String, passed: Bool, restoreSeconds: Double)]
    }

    public var store: String
    public var generated: Date
    public var sets: [SetRow]
    /// Gaps of the retention chain, per node: "epoch M/S: FROM -> TO, N h".
    public var gaps: [String: [String]]
    public var retentionPeriod: TimeInterval?

    public init(store: String, generated: Date, sets: [SetRow], gaps: [String: [String]], retentionPeriod: TimeInterval?) {
        self.store = store; self.generated = generated; self.sets = sets; self.gaps = gaps; self.retentionPeriod = retentionPeriod
    }

    /// Reads what the page shows from the catalog: every set, the drill receipts signed by a pinned
    /// drill key, the retain-until of each manifest, and the chain's gaps against `retention`.
    public static func collect(catalog: Catalog, node: String?, drillSigners: [SignerKey], retention: RetentionPolicy?,
                               now: Date = Date()) throws -> HTMLReport {
        let entries = try catalog.entries(node: node, now: now)
        let trustedReceipts = drillSigners.isEmpty ? []
            : try DrillReceipts(store: catalog.store, signers: drillSigners).trusted(sets: entries.compactMap(\.trusted), prefix: node.map { $0 + "/" } ?? "").values.flatMap { $0 }
        let receipts = Dictionary(grouping: trustedReceipts, by: \.setId)
        var rows: [SetRow] = []
        for entry in entries {
            let manifest = entry.trusted?.manifest ?? entry.manifest
            let status: String
            if !entry.isTrusted { status = "untrusted" }
            else if manifest?.recovered == true { status = "recovered" }
            else { status = entry.isCompleteBackup ? "complete" : "partial" }
            let components = (manifest?.components ?? []).map { record in
                (name: record.name, bytes: record.storedSize + (record.dedup?.newStoredBytes ?? 0),
                 seconds: max(0, (Timestamp.parse(record.ended) ?? now).timeIntervalSince(Timestamp.parse(record.started) ?? now)))
            }
            let start = manifest.flatMap { Timestamp.parse($0.captureStart) }
            let end = manifest.flatMap { Timestamp.parse($0.captureEnd) }
            let locked = entry.isTrusted ? (try? catalog.store.head(key: entry.manifestKey))??.retainUntil : nil
            rows.append(SetRow(setId: entry.setId, node: entry.layout.node, epoch: "\(entry.layout.epoch.migrationId)/\(entry.layout.epoch.serial)",
                               captured: start ?? SetLayout.time(ofSetId: entry.setId), status: status,
                               storedBytes: components.reduce(0) { $0 + $1.bytes },
                               durationSeconds: start.flatMap { s in end.map { $0.timeIntervalSince(s) } },
                               components: components, problems: entry.problems, lockedUntil: locked,
                               drills: (receipts[entry.setId] ?? []).map { ($0.at, $0.passed, $0.restoreSeconds) }))
        }
        var gaps: [String: [String]] = [:]
        if let retention {
            for name in Set(entries.map(\.layout.node)).sorted() {
                let plan = RetentionPlanner.plan(Pruner.candidates(entries.filter { $0.layout.node == name }), policy: retention, now: now)
                gaps[name] = plan.gaps.map { "epoch \($0.migrationId)/\($0.serial): \($0.fromSetId) -> \($0.toSetId), \(RetentionPlanner.describe($0.seconds))" }
            }
        }
        return HTMLReport(store: catalog.store.displayName, generated: now, sets: rows, gaps: gaps, retentionPeriod: retention?.retentionPeriod)
    }

    /// Escapes text for HTML text and attribute values alike.
    public static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default:
                if scalar.value < 0x20 && scalar != "\n" && scalar != "\t" { out += "&#xFFFD;" } else { out.unicodeScalars.append(scalar) }
            }
        }
        return out
    }

    static func bytes(_ count: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(count), unit = 0
        while value >= 1024 && unit < units.count - 1 { value /= 1024; unit += 1 }
        return unit == 0 ? "\(count) B" : String(format: "%.1f %@", value, units[unit])
    }

    static let colours = ["complete": "#2e7d32", "partial": "#ef6c00", "untrusted": "#c62828", "recovered": "#6a1b9a"]

    /// The page.
    public func render() -> String {
        let e = Self.escape
        var html = """
        <!DOCTYPE html>
        <html lang="en"><head>
        <meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
        <meta charset="utf-8"><title>cnbackup report: \(e(store))</title>
        <style>
        body{font-family:system-ui,sans-serif;margin:24px;color:#222}h1{font-size:22px}h2{font-size:18px;margin-top:28px}
        table{border-collapse:collapse;font-size:13px;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}
        th{background:#f3f3f3}.s-complete{color:#2e7d32}.s-partial{color:#ef6c00}.s-untrusted{color:#c62828;font-weight:bold}.s-recovered{color:#6a1b9a}
        .problem{color:#c62828}.muted{color:#777}
        </style></head><body>
        <h1>cnbackup report</h1>
        <p>Store <code>\(e(store))</code>, generated \(e(Timestamp.format(generated))). Statuses come from signed manifests
        checked against the pinned signers; every name on this page was written by whoever can write to the bucket and is shown as text.</p>

        """
        let nodes = Set(sets.map(\.node)).sorted()
        for node in nodes {
            let rows = sets.filter { $0.node == node }.sorted { ($0.captured ?? .distantPast) < ($1.captured ?? .distantPast) }
            html += "<h2>Node \(e(node))</h2>\n" + timeline(rows)
            if let gaps = gaps[node] {
                let period = retentionPeriod.map { RetentionPlanner.describe($0) } ?? "?"
                html += gaps.isEmpty ? "<p>Retention chain: no gap longer than the retention period (\(e(period))).</p>\n"
                    : "<p class=\"problem\">Retention chain gaps longer than the retention period (\(e(period))):</p><ul>"
                        + gaps.map { "<li class=\"problem\">\(e($0))</li>" }.joined() + "</ul>\n"
            }
            html += "<table><tr><th>set</th><th>epoch</th><th>captured</th><th>status</th><th>stored</th><th>duration</th><th>components</th><th>locked until</th><th>drills</th><th>problems</th></tr>\n"
            for row in rows.reversed() {
                let components = row.components.map { "\(e($0.name)) \(Self.bytes($0.bytes)), \(String(format: "%.0f", $0.seconds)) s" }.joined(separator: "<br>")
                let drills = row.drills.isEmpty ? "<span class=\"muted\">none</span>"
                    : row.drills.map { "\($0.passed ? "passed" : "<span class=\"problem\">FAILED</span>") \(e($0.at)), restore \(String(format: "%.0f", $0.restoreSeconds)) s" }.joined(separator: "<br>")
                html += "<tr><td><code>\(e(row.setId))</code></td><td>\(e(row.epoch))</td><td>\(row.captured.map { e(Timestamp.format($0)) } ?? "")</td>"
                    + "<td class=\"s-\(e(row.status))\">\(e(row.status))</td><td>\(Self.bytes(row.storedBytes))</td>"
                    + "<td>\(row.durationSeconds.map { String(format: "%.0f s", $0) } ?? "")</td><td>\(components)</td>"
                    + "<td>\(row.lockedUntil.map { e(Timestamp.format($0)) } ?? "<span class=\"muted\">not locked</span>")</td><td>\(drills)</td>"
                    + "<td>\(row.problems.map { "<span class=\"problem\">\(e($0))</span>" }.joined(separator: "<br>"))</td></tr>\n"
            }
            html += "</table>\n"
        }
        if sets.isEmpty { html += "<p>No sets in this store.</p>\n" }
        return html + "</body></html>\n"
    }

    /// The node's sets on a time axis, one row per epoch, a mark per set coloured by status.
    func timeline(_ rows: [SetRow]) -> String {
        let dated = rows.filter { $0.captured != nil }
        guard let first = dated.first?.captured, let last = dated.last?.captured else { return "" }
        let epochs = Array(Set(rows.map(\.epoch))).sorted()
        let width = 960.0, left = 90.0, rowHeight = 28.0
        let span = max(last.timeIntervalSince(first), 1)
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width + left + 20))\" height=\"\(Int(Double(epochs.count) * rowHeight + 40))\" role=\"img\">"
        for (index, epoch) in epochs.enumerated() {
            let y = 20 + Double(index) * rowHeight
            svg += "<text x=\"4\" y=\"\(y + 4)\" font-size=\"12\">epoch \(Self.escape(epoch))</text>"
            svg += "<line x1=\"\(left)\" y1=\"\(y)\" x2=\"\(left + width)\" y2=\"\(y)\" stroke=\"#ddd\"/>"
            for row in dated where row.epoch == epoch {
                let x = left + width * row.captured!.timeIntervalSince(first) / span
                svg += "<circle cx=\(String(format: "\"%.1f\"", x)) cy=\"\(y)\" r=\"6\" fill=\"\(Self.colours[row.status] ?? "#555")\">"
                    + "<title>\(Self.escape(row.setId)) \(Self.escape(row.status))</title></circle>"
            }
        }
        let bottom = 20 + Double(epochs.count) * rowHeight
        svg += "<text x=\"\(left)\" y=\"\(bottom)\" font-size=\"11\" fill=\"#777\">\(Self.escape(Timestamp.format(first)))</text>"
        svg += "<text x=\"\(left + width)\" y=\"\(bottom)\" font-size=\"11\" fill=\"#777\" text-anchor=\"end\">\(Self.escape(Timestamp.format(last)))</text>"
        return svg + "</svg>\n"
    }
}

import Foundation
import CNBackupCore
import CNBackupHTTP
import CNBackupStorage
import CNBackupCatalog

/// Pushes Prometheus text to a Pushgateway: `PUT <gateway>/metrics/job/<job>/node/<node>`, which
/// replaces that group's metrics, so a series that stopped (a component removed) disappears.
/// Batch jobs such as a CronJob cannot be scraped; they push. Only https, or http to a loopback
/// host, is accepted, as for every other endpoint cnbackup talks to.
public struct Pushgateway: Sendable {
    public let url: String
    public let caFile: String?

    public init(url: String, caFile: String? = nil) throws {
        try HTTPSourceDefinition.requireSecureURL(url, what: "pushgateway")
        self.url = url.hasSuffix("/") ? String(url.dropLast()) : url
        self.caFile = caFile
    }

    public func push(_ text: String, job: String, node: String) throws {
        func segment(_ s: String) -> String {
            var allowed = CharacterSet.alphanumerics; allowed.insert(charactersIn: "-._~")
            return s.addingPercentEncoding(withAllowedCharacters: allowed) ?? s
        }
        let target = "\(url)/metrics/job/\(segment(job))/node/\(segment(node))"
        let body = Array(text.utf8)
        let client = HTTPClient(options: HTTPClientOptions(caFile: caFile))
        try RetryPolicy.metrics.run { (_, _) -> RetryPolicy.Attempt<Void> in
            var request = HTTPRequest(method: "PUT", url: target)
            request.headers = [("Content-Type", "text/plain; version=0.0.4")]
            request.body = MemoryStream(body)
            request.bodyLength = Int64(body.count)
            func failure(_ reason: String) -> CNBackupError {
                CNBackupError(.io, "cannot push metrics to \(url): \(reason); check the --pushgateway URL")
            }
            let response: HTTPResponse
            do {
                response = try client.perform(request, limit: 64 << 10)
            } catch {
                return .retry(failure("\(error)"))
            }
            if (200..<300).contains(response.status) { return .success(()) }
            let reason = failure("HTTP \(response.status): \(String(decoding: response.body.prefix(300), as: UTF8.self))")
            if response.status < 500 { throw reason }
            return .retry(reason)
        }
    }
}

/// Prometheus text exposition, escaped as the format asks.
enum PrometheusText {
    static func label(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
    }

    static func gauge(_ name: String, _ help: String, _ samples: [(labels: String, value: String)]) -> [String] {
        ["# HELP \(name) \(help)", "# TYPE \(name) gauge"] + samples.map { "\(name){\($0.labels)} \($0.value)" }
    }

    /// Writes metrics atomically (temporary file, then rename), as node_exporter's textfile collector expects.
    static func write(_ text: String, to path: String) throws {
        let temporary = path + ".tmp-\(getpid())"
        do {
            try Data(text.utf8).write(to: URL(fileURLWithPath: temporary))
            guard rename(temporary, path) == 0 else { throw CNBackupError(.io, "cannot move metrics into \(path)") }
        } catch let error as CNBackupError {
            unlink(temporary); throw error
        } catch {
            unlink(temporary); throw CNBackupError(.io, "cannot write metrics to \(path): \(error.localizedDescription)")
        }
    }
}

/// What a run reports: its outcome, its duration and each component's size and duration. A run
/// that committed nothing (`result` nil) reports failure and its duration only.
public func runMetricsText(node: String, result: RunResult?, duration: TimeInterval) -> String {
    let n = "node=\"\(PrometheusText.label(node))\""
    let components = result?.manifest.components ?? []
    func componentSamples(_ value: (ComponentRecord) -> String) -> [(labels: String, value: String)] {
        components.map { ("\(n),component=\"\(PrometheusText.label($0.name))\"", value($0)) }
    }
    func seconds(_ r: ComponentRecord) -> String {
        let d = (Timestamp.parse(r.ended) ?? Date()).timeIntervalSince(Timestamp.parse(r.started) ?? Date())
        return String(format: "%.3f", max(0, d))
    }
    var lines: [String] = []
    lines += PrometheusText.gauge("cnbackup_run_success", "1 when the last run committed a complete set.", [(n, result?.isComplete == true ? "1" : "0")])
    lines += PrometheusText.gauge("cnbackup_run_committed", "1 when the last run committed a set (complete or partial).", [(n, result == nil ? "0" : "1")])
    lines += PrometheusText.gauge("cnbackup_run_timestamp_seconds", "When the last run ended.",
                                  [(n, String(format: "%.3f", Date().timeIntervalSince1970))])
    lines += PrometheusText.gauge("cnbackup_run_duration_seconds", "How long the last run took.", [(n, String(format: "%.3f", duration))])
    if let result {
        lines += PrometheusText.gauge("cnbackup_run_failed_components", "Components the last run could not capture.",
                                      [(n, "\(result.manifest.failures.count)")])
        lines += PrometheusText.gauge("cnbackup_run_component_stored_bytes", "Stored bytes per component of the last run.",
                                      componentSamples { "\($0.storedSize)" })
        lines += PrometheusText.gauge("cnbackup_run_component_plaintext_bytes", "Captured bytes per component of the last run.",
                                      componentSamples { "\($0.plaintextSize)" })
        lines += PrometheusText.gauge("cnbackup_run_component_duration_seconds", "Capture duration per component of the last run.",
                                      componentSamples(seconds))
    }
    return lines.joined(separator: "\n") + "\n"
}

/// Writes metrics atomically, as node_exporter's textfile collector expects.
public func writeMetricsFile(_ text: String, to path: String) throws {
    try PrometheusText.write(text, to: path)
}

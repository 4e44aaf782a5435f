import CNBackup
import Foundation
import Logging
import CNBackupCore
import CNBackupStorage

/// Progress on a terminal: one line on standard error, redrawn four times a second, naming each
/// task with bytes done, rate and, when the size is known, percent and time left. Log lines
/// clear it first (see `ProgressAwareLogHandler`), so the two never run into each other.
final class TerminalProgress: ProgressObserver, @unchecked Sendable {
    // @unchecked: `meters` and `drawn` are only touched under `lock`.
    static let lock = NSLock()
    private var meters: [ProgressMeter] = []
    nonisolated(unsafe) static var drawn = false

    /// Installs progress when standard error is a terminal and the logs are text.
    static func installIfWanted(logFormat: String?, disabled: Bool) {
        let format = logFormat ?? ProcessInfo.processInfo.environment["CNBACKUP_LOG_FORMAT"]
        guard !disabled, isatty(STDERR_FILENO) == 1, format != "json" else { return }
        let progress = TerminalProgress()
        CNBackupCore.Progress.observer = progress
        Thread.detachNewThread { while true { Thread.sleep(forTimeInterval: 0.25); progress.draw() } }
    }

    func started(_ meter: ProgressMeter) { Self.lock.lock(); meters.append(meter); Self.lock.unlock() }

    func finished(_ meter: ProgressMeter) {
        Self.lock.lock(); defer { Self.lock.unlock() }
        meters.removeAll { $0 === meter }
        Self.clearLocked()
        let seconds = max(Date().timeIntervalSince(meter.started), 0.001)
        Self.write("\(meter.name): \(Self.size(meter.bytes)) in \(Self.duration(seconds)) (\(Self.size(Int64(Double(meter.bytes) / seconds)))/s)\n")
    }

    private func draw() {
        Self.lock.lock(); defer { Self.lock.unlock() }
        guard !meters.isEmpty else { return }
        var parts = meters.prefix(3).map { meter -> String in
            let bytes = meter.bytes
            let seconds = max(Date().timeIntervalSince(meter.started), 0.001)
            let rate = Double(bytes) / seconds
            var text = "\(meter.name) \(Self.size(bytes))"
            if let total = meter.total, total > 0 {
                text += "/\(Self.size(total)) \(min(100, bytes * 100 / total))%"
                if rate > 0 { text += " ETA \(Self.duration(Double(max(0, total - bytes)) / rate))" }
            }
            return text + " \(Self.size(Int64(rate)))/s"
        }
        if meters.count > 3 { parts.append("+\(meters.count - 3) more") }
        var line = parts.joined(separator: " | ")
        var size = winsize()
        let width = ioctl(STDERR_FILENO, UInt(TIOCGWINSZ), &size) == 0 && size.ws_col > 10 ? Int(size.ws_col) - 1 : 100
        if line.count > width { line = String(line.prefix(width)) }
        Self.write("\r\u{1B}[K" + line)
        Self.drawn = true
    }

    /// Clears the progress line; call with `lock` held.
    static func clearLocked() {
        if drawn { write("\r\u{1B}[K"); drawn = false }
    }

    static func write(_ text: String) { FileHandle.standardError.write(Data(text.utf8)) }

    static func size(_ bytes: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(bytes), unit = 0
        while value >= 1024 && unit < units.count - 1 { value /= 1024; unit += 1 }
        return unit == 0 ? "\(bytes) B" : String(format: "%.1f %@", value, units[unit])
    }

    static func duration(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }
}

/// A text log handler that clears the progress line before each log line.
struct ProgressAwareLogHandler: LogHandler {
    var inner: StreamLogHandler
    var logLevel: Logger.Level { get { inner.logLevel } set { inner.logLevel = newValue } }
    var metadata: Logger.Metadata { get { inner.metadata } set { inner.metadata = newValue } }
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { inner[metadataKey: key] } set { inner[metadataKey: key] = newValue }
    }

    func log(event: LogEvent) {
        TerminalProgress.lock.lock(); defer { TerminalProgress.lock.unlock() }
        TerminalProgress.clearLocked()
        // Known secrets leave no log line, whatever logged them (Redaction).
        var redacted = event
        redacted.message = Logger.Message(stringLiteral: Redaction.redact(event.message.description))
        redacted.metadata = event.metadata?.mapValues { .string(Redaction.redact("\($0)")) }
        inner.log(event: redacted)
    }
}

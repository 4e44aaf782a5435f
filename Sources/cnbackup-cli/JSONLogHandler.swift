import Foundation
import Logging
import CNBackupCore
import CNBackupStorage

/// One JSON object per line on standard error, for log collectors (a CronJob's logs). Fields:
/// `ts` (UTC, milliseconds), `level`, `msg`, then the metadata. Values are whatever the library
/// logged: never secrets (the library logs names, sizes, ids and errors, which carry no secrets).
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    private let label: String

    public init(label: String) { self.label = label }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields: [String: String] = ["ts": Timestamp.format(Date()), "level": event.level.rawValue,
                                        "msg": event.message.description, "logger": label]
        for (key, value) in metadata.merging(event.metadata ?? [:], uniquingKeysWith: { _, new in new }) { fields[key] = "\(value)" }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard var data = try? encoder.encode(fields) else { return }
        data.append(0x0A)
        FileHandle.standardError.write(data)
    }
}

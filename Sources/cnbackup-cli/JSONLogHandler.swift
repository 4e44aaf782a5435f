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
        var fields: [String: LogValue] = ["ts": .string(Timestamp.format(Date())), "level": .string(event.level.rawValue),
                                          "msg": .string(event.message.description), "logger": .string(label)]
        for (key, value) in metadata.merging(event.metadata ?? [:], uniquingKeysWith: { _, new in new }) {
            fields[key] = LogValue(key: key, value)
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Known secrets are taken out of every line that leaves (Redaction), whatever logged them.
        guard let data = try? encoder.encode(fields) else { return }
        FileHandle.standardError.write(Data(Redaction.redact(String(decoding: data, as: UTF8.self)).utf8) + [0x0A])
    }
}

/// A log field's value: numbers stay numbers (bytes, counts, seconds), names stay strings.
enum LogValue: Encodable {
    case string(String), integer(Int64), number(Double)

    /// Fields that are names even when they look like numbers (a node called "1").
    static let names: Set<String> = ["node", "set", "setId", "id", "component", "role", "store", "epoch", "key", "bucket", "database", "capture"]

    init(key: String, _ value: Logger.Metadata.Value) {
        switch value {
        case .stringConvertible(let convertible):
            if let integer = convertible as? any BinaryInteger, let exact = Int64(exactly: integer) { self = .integer(exact); return }
            if let double = convertible as? Double, double.isFinite { self = .number(double); return }
            self = LogValue(key: key, text: convertible.description)
        case .string(let text):
            self = LogValue(key: key, text: text)
        default:
            self = .string("\(value)")
        }
    }

    init(key: String, text: String) {
        if !Self.names.contains(key), let integer = Int64(text), String(integer) == text { self = .integer(integer); return }
        if !Self.names.contains(key), text.contains("."), let double = Double(text), double.isFinite,
           text.allSatisfy({ $0.isNumber || $0 == "." || $0 == "-" }) { self = .number(double); return }
        self = .string(text)
    }

    func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .string(let text): try container.encode(text)
        case .integer(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        }
    }
}

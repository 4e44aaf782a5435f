import Foundation

/// UTC timestamps as the manifest, logs and set ids write them (RFC 3339 with milliseconds).
package enum Timestamp {
    private static func formatter() -> ISO8601DateFormatter {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        f.timeZone = TimeZone(identifier: "UTC")
        return f
    }

    package static func format(_ date: Date) -> String { formatter().string(from: date) }
    package static func parse(_ text: String) -> Date? {
        formatter().date(from: text) ?? ISO8601DateFormatter().date(from: text)
    }

    /// `YYYYMMDDTHHMMSSZ`, as set ids start.
    package static func compact(_ date: Date) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        return f.string(from: date)
    }
}

import Foundation

/// Durations as operators write them: `90s`, `45m`, `4h`, `30d`, `2w`.
public enum DurationText {
    public static func parse(_ text: String) throws -> TimeInterval {
        let units: [Character: TimeInterval] = ["s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800]
        guard let unit = text.last, let seconds = units[unit], let value = Double(text.dropLast()), value >= 0 else {
            throw CNBackupError(.invalidInput, "\"\(text)\" is not a duration: write a number and a unit (s, m, h, d, w), e.g. 4h or 30d")
        }
        return value * seconds
    }

    /// The largest whole unit that fits, for messages: `3d 4h`, `5h 12m`, `40s`.
    public static func format(_ seconds: TimeInterval) -> String {
        let total = Int(seconds.rounded())
        let (d, h, m) = (total / 86400, total % 86400 / 3600, total % 3600 / 60)
        if d > 0 { return h > 0 ? "\(d)d \(h)h" : "\(d)d" }
        if h > 0 { return m > 0 ? "\(h)h \(m)m" : "\(h)h" }
        if m > 0 { return "\(m)m" }
        return "\(max(0, total))s"
    }
}

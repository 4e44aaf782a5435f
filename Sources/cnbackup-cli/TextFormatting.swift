import ArgumentParser
import CNBackup
import Foundation
import CNBackupCore
import CNBackupStorage
import CNBackupCatalog

/// Sizes for people: 1.5 GiB, 120 KiB, 42 B.
func byteText(_ bytes: Int64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var value = Double(bytes), unit = 0
    while value >= 1024 && unit < units.count - 1 { value /= 1024; unit += 1 }
    return unit == 0 ? "\(bytes) B" : String(format: "%.1f", value) + " " + units[unit]
}

/// An RFC 3339 instant, with or without fractional seconds.
func parseInstant(_ text: String) -> Date? {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    if let date = formatter.date(from: text) { return date }
    formatter.formatOptions = [.withInternetDateTime]
    return formatter.date(from: text)
}

/// Text that the bucket's writer may have chosen (keys, an untrusted manifest's fields, problems
/// quoting them), its control characters shown escaped: raw, they could move a terminal's cursor
/// or rewrite lines printed before.
func terminalSafe(_ text: String) -> String {
    String(text.unicodeScalars.map { scalar -> String in
        scalar.value < 0x20 || (0x7f...0x9f).contains(scalar.value) ? "\\u{\(String(scalar.value, radix: 16))}" : String(scalar)
    }.joined())
}

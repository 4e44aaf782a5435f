import Foundation
import Testing
import CNBackupCore
import CNBackupTestKit

/// Writes the golden vector when CNBACKUP_WRITE_GOLDEN names a path (used once, when the format
/// is defined; the committed file is what every later run is checked against).
@Suite struct GenerateGolden {
    @Test(.enabled(if: ProcessInfo.processInfo.environment["CNBACKUP_WRITE_GOLDEN"] != nil))
    func write() throws {
        let path = ProcessInfo.processInfo.environment["CNBACKUP_WRITE_GOLDEN"]!
        let hex = try GoldenVector.object().hex
        var lines: [String] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let end = hex.index(index, offsetBy: 64, limitedBy: hex.endIndex) ?? hex.endIndex
            lines.append(String(hex[index..<end])); index = end
        }
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
    }
}

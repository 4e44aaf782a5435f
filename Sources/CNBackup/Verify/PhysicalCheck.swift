import Foundation
import CNBackupCore
import CNBackupCatalog

/// Deep verify of a physical component without extracting it: as the tar streams past, each
/// member's size and checksum (CRC-32C, or SHA-256 for sets that recorded no `fileChecksums`) are
/// computed (the data itself is not kept), then the tar's own
/// `backup_manifest` (its last member), read line by line, must list exactly those files with
/// those sizes and checksums, and must itself be the one the signed manifest records
/// (`backupManifestSHA256`). The WAL segments the backup's WAL-Ranges need must be in `pg_wal/`.
/// Like pg_verifybackup, `pg_wal/`, `postgresql.auto.conf`, `recovery.signal` and `standby.signal`
/// are not compared with the manifest (pg_basebackup may write them itself).
final class PhysicalTarCheck: TarVisitor {
    private let evidence: PhysicalEvidence
    private let name: String
    private var computed: [String: (size: Int64, checksum: Checksum)] = [:]
    private var walSegments: [String: Int64] = [:]
    /// The algorithm backup_manifest lists, as the signed manifest records it.
    private let useCRC32C: Bool
    private var crc: CRC32C?
    private var hasher: SHA256Hasher?
    private var size: Int64 = 0
    private var scanner: BackupManifestScanner?
    private var summary: BackupManifestScanner.Summary?
    private var problems: [String] = []
    private var problemCount = 0
    private(set) var filesChecked = 0

    init(evidence: PhysicalEvidence, component: String) {
        self.evidence = evidence
        self.name = component
        useCRC32C = (evidence.fileChecksums ?? "SHA256").uppercased() == "CRC32C"
    }

    enum Checksum {
        case crc32c(CRC32C)
        case sha256([UInt8])
    }

    var algorithm: String { useCRC32C ? "CRC-32C" : "SHA-256" }

    static func ignored(_ path: String) -> Bool {
        path == "backup_manifest" || path == "pg_wal" || path.hasPrefix("pg_wal/") || path == "postgresql.auto.conf"
            || path == "recovery.signal" || path == "standby.signal"
    }

    private func problem(_ text: String) {
        problemCount += 1
        if problems.count < 10 { problems.append(text) }
    }

    func begin(_ entry: TarEntry) throws {
        guard entry.kind == .file else { return }
        if entry.path == "backup_manifest" {
            guard summary == nil, scanner == nil else { throw CNBackupError(.integrity, "\(name): the tar holds two backup_manifest members") }
            scanner = BackupManifestScanner { [unowned self] file in self.compare(file) }
            return
        }
        if summary != nil { problem("\(entry.path) comes after backup_manifest") }
        if entry.path.hasPrefix("pg_wal/"), !entry.path.dropFirst("pg_wal/".count).contains("/") {
            walSegments[String(entry.path.dropFirst("pg_wal/".count))] = entry.size
        }
        if !Self.ignored(entry.path) {
            if useCRC32C { crc = CRC32C() } else { hasher = SHA256Hasher() }
            size = 0
        }
    }

    func data(_ bytes: ArraySlice<UInt8>) throws {
        if let scanner { try scanner.consume(bytes); return }
        if crc != nil { bytes.withUnsafeBytes { crc!.update($0) }; size += Int64(bytes.count) }
        if let hasher { bytes.withUnsafeBytes { hasher.update($0) }; size += Int64(bytes.count) }
    }

    func end(_ entry: TarEntry) throws {
        if let scanner {
            summary = try scanner.finish()
            self.scanner = nil
            return
        }
        let checksum: Checksum?
        if let crc { checksum = .crc32c(crc) } else if let hasher { checksum = .sha256(hasher.finalize()) } else { checksum = nil }
        crc = nil; hasher = nil
        if let checksum {
            if computed[entry.path] != nil { problem("\(entry.path) is in the tar twice") }
            computed[entry.path] = (size, checksum)
        }
    }

    private func compare(_ file: BackupManifestScanner.FileEntry) {
        guard !Self.ignored(file.path) else { return }
        guard let seen = computed.removeValue(forKey: file.path) else {
            problem("\(file.path) is in backup_manifest but not in the tar"); return
        }
        filesChecked += 1
        if seen.size != file.size { problem("\(file.path) holds \(seen.size) bytes, backup_manifest says \(file.size)"); return }
        let listed = file.algorithm.uppercased()
        switch seen.checksum {
        case .crc32c(let crc) where listed == "CRC32C":
            if !crc.matches(manifestHex: file.checksum) { problem("\(file.path) has another CRC-32C than backup_manifest lists") }
        case .sha256(let digest) where listed == "SHA256":
            if digest.hex != file.checksum.lowercased() { problem("\(file.path) has another SHA-256 than backup_manifest lists") }
        default:
            // The signed manifest names the algorithm; a backup_manifest using another is not the one it vouches for.
            problem("\(file.path) is listed with \(listed) checksums, the signed manifest records \(algorithm)")
        }
    }

    /// The checks only the end can make; returns what was checked, for the report.
    func finish() throws -> [String] {
        guard let summary else {
            throw CNBackupError(.integrity, "\(name): the tar holds no backup_manifest")
        }
        for path in computed.keys.sorted() { problem("\(path) is in the tar but not in backup_manifest") }
        if summary.sha256 != evidence.backupManifestSHA256 || summary.size != evidence.backupManifestSize {
            problem("backup_manifest is not the one the signed manifest records (SHA-256 differs)")
        }
        if let id = summary.systemIdentifier, id != evidence.systemIdentifier {
            problem("backup_manifest names system \(id), the signed manifest \(evidence.systemIdentifier)")
        }
        if summary.walRanges.first?.start != evidence.startLSN || summary.walRanges.last?.end != evidence.stopLSN {
            problem("backup_manifest's WAL range is not the one the signed manifest records")
        }
        var segmentsChecked = 0
        if let segmentSize = walSegments.values.first, segmentSize > 0, walSegments.values.allSatisfy({ $0 == segmentSize }) {
            for range in summary.walRanges {
                guard let start = Self.lsn(range.start), let end = Self.lsn(range.end) else {
                    problem("backup_manifest has an unreadable LSN in its WAL-Ranges"); continue
                }
                // The end LSN points just past the last record; a record ending at a segment's start lives in the one before.
                let last = end > start ? (end - 1) / UInt64(segmentSize) : start / UInt64(segmentSize)
                for segment in (start / UInt64(segmentSize))...max(last, start / UInt64(segmentSize)) {
                    let name = Self.walFileName(timeline: range.timeline, segment: segment, segmentSize: UInt64(segmentSize))
                    if walSegments[name] == nil { problem("the WAL segment \(name) the backup needs is not in pg_wal/") }
                    segmentsChecked += 1
                }
            }
        } else {
            problem("pg_wal/ in the tar holds no WAL segments of one size: the backup cannot be restored without WAL from elsewhere")
        }
        if problemCount > 0 {
            throw CNBackupError(.integrity, "\(name): the base backup does not match its backup_manifest (\(problemCount) problem(s))",
                                cause: problems.joined(separator: "; "))
        }
        return ["tar well formed", "\(filesChecked) files match backup_manifest (size, \(algorithm))", "backup_manifest bound",
                "\(segmentsChecked) WAL segment(s) present"]
    }

    /// `X/Y` hexadecimal.
    static func lsn(_ text: String) -> UInt64? {
        let parts = text.split(separator: "/")
        guard parts.count == 2, let high = UInt64(parts[0], radix: 16), let low = UInt64(parts[1], radix: 16) else { return nil }
        return high << 32 | low
    }

    static func walFileName(timeline: Int, segment: UInt64, segmentSize: UInt64) -> String {
        let perId = 0x1_0000_0000 / segmentSize
        return String(format: "%08X%08X%08X", timeline, UInt32(segment / perId), UInt32(segment % perId))
    }
}

import Foundation
import Testing
import CNBackupCore
@testable import CNBackup
import CNBackupCatalog
import CNBackupTestKit

/// Collects every member and the SHA-256 of its data.
private final class Collector: TarVisitor {
    var entries: [(entry: TarEntry, size: Int, sha256: String)] = []
    private var hasher: SHA256Hasher?
    private var count = 0
    func begin(_ entry: TarEntry) throws { hasher = SHA256Hasher(); count = 0 }
    func data(_ bytes: ArraySlice<UInt8>) throws { hasher!.update(Array(bytes)); count += bytes.count }
    func end(_ entry: TarEntry) throws { entries.append((entry, count, hasher!.finalize().hex)); hasher = nil }
}

/// Tars made by the system's `tar` in a temporary folder.
private struct TarFixture {
    let dir: String
    var files: [String: [UInt8]] = [:]

    init() throws {
        dir = NSTemporaryDirectory() + "cnbackup-tar-test-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir + "/src/sub", withIntermediateDirectories: true)
        let long = String(repeating: "d", count: 60) + "/" + String(repeating: "f", count: 70)   // 131 characters
        try FileManager.default.createDirectory(atPath: dir + "/src/" + String(repeating: "d", count: 60), withIntermediateDirectories: true)
        var generator = SystemRandomNumberGenerator()
        for (name, size) in [("empty", 0), ("one", 1), ("block", 512), ("block-and-one", 513), ("sub/big", 300_001), (long, 1000)] {
            let bytes = (0..<size).map { _ in UInt8.random(in: 0...255, using: &generator) }
            FileManager.default.createFile(atPath: dir + "/src/" + name, contents: Data(bytes))
            files[name] = bytes
        }
        try FileManager.default.createSymbolicLink(atPath: dir + "/src/link", withDestinationPath: "sub/big")
    }

    func make(format: String) throws -> [UInt8] {
        let out = dir + "/\(format).tar"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["tar", "--format=\(format)", "-C", dir + "/src", "-cf", out, "."]
        try process.run(); process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw CNBackupError(.io, "tar --format=\(format) failed") }
        return Array(FileManager.default.contents(atPath: out)!)
    }

    func remove() { try? FileManager.default.removeItem(atPath: dir) }
}

private func read(_ tar: [UInt8], chunk: Int) throws -> Collector {
    let collector = Collector()
    let reader = TarReader(visitor: collector)
    var offset = 0
    while offset < tar.count {
        let end = min(tar.count, offset + chunk)
        try reader.consume(Array(tar[offset..<end]))
        offset = end
    }
    try reader.finish()
    return collector
}

@Suite struct TarReaderTests {
    @Test(arguments: ["ustar", "gnu", "pax"])
    func readsWhatTarWrites(format: String) throws {
        let fixture = try TarFixture()
        defer { fixture.remove() }
        let tar = try fixture.make(format: format)
        for chunk in [1, 7, 511, 512, 4096, 1 << 20] where chunk > 1 || tar.count < 2_000_000 {
            let collector = try read(tar, chunk: chunk)
            var seen: [String: (Int, String)] = [:]
            for (entry, size, digest) in collector.entries where entry.kind == .file {
                let path = entry.path.hasPrefix("./") ? String(entry.path.dropFirst(2)) : entry.path
                #expect(Int64(size) == entry.size)
                seen[path] = (size, digest)
            }
            for (name, bytes) in fixture.files {
                // ustar cannot hold the 131-character name without its prefix field: tar splits it there.
                #expect(seen[name]?.0 == bytes.count, "\(format) chunk \(chunk): \(name)")
                #expect(seen[name]?.1 == SHA256Hasher.hash(bytes).hex, "\(format) chunk \(chunk): \(name)")
            }
            let link = collector.entries.first { $0.entry.path.hasSuffix("link") }
            #expect(link?.entry.kind == .symlink)
            #expect(link?.entry.linkTarget == "sub/big")
            #expect(collector.entries.contains { $0.entry.kind == .directory && $0.entry.path.hasSuffix("sub/") })
        }
    }

    @Test func passesBytesThroughUnchanged() throws {
        let fixture = try TarFixture()
        defer { fixture.remove() }
        let tar = try fixture.make(format: "gnu")
        let stream = TarInspectingStream(MemoryStream(tar, chunkSize: 1000), visitor: nil)
        #expect(try stream.readAll(limit: 10 << 20) == tar)
        #expect(stream.reader.isComplete)
    }

    @Test func refusesACutTar() throws {
        let fixture = try TarFixture()
        defer { fixture.remove() }
        let tar = try fixture.make(format: "ustar")
        // Everything up to (not including) the end marker, and a cut in the middle of a member.
        let collector = try read(tar, chunk: 4096)
        #expect(collector.entries.count > 5)
        let endMarker = tar.count - (tar.reversed().firstIndex { $0 != 0 } ?? 0)
        let lastData = (endMarker + 511) / 512 * 512
        for cut in [lastData, tar.count / 2, 100] {
            #expect(throws: CNBackupError.self, "cut at \(cut)") { _ = try read(Array(tar[0..<cut]), chunk: 4096) }
        }
    }

    @Test func refusesADamagedHeaderAndTrailingData() throws {
        let fixture = try TarFixture()
        defer { fixture.remove() }
        var tar = try fixture.make(format: "ustar")
        var damaged = tar
        damaged[10] ^= 0x01   // inside the first header's name: its checksum no longer holds
        #expect(throws: CNBackupError.self) { _ = try read(damaged, chunk: 512) }
        tar += Array("trailing garbage".utf8)
        #expect(throws: CNBackupError.self) { _ = try read(tar, chunk: 512) }
        #expect(throws: CNBackupError.self) { _ = try read(Array(repeating: 0x41, count: 2048), chunk: 512) }
    }

    @Test func readsBase256Sizes() throws {
        let field: [UInt8] = [0x80, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 1]
        #expect(try TarReader.number(field[...], what: "size", at: 0) == (2 << 32) + 1)
        #expect(try TarReader.number(Array("00000001000\0".utf8)[...], what: "size", at: 0) == 512)
    }
}

@Suite struct BackupManifestScannerTests {
    func manifest(files: [(String, Int64, String)], damage: Bool = false, algorithm: String = "SHA256") -> [UInt8] {
        var body = "{ \"PostgreSQL-Backup-Manifest-Version\": 2,\n\"System-Identifier\": 7713544280439765404,\n\"Files\": [\n"
        body += files.map { "{ \"Path\": \"\($0.0)\", \"Size\": \($0.1), \"Last-Modified\": \"2026-11-29 10:51:29 GMT\", \"Checksum-Algorithm\": \"\(algorithm)\", \"Checksum\": \"\($0.2)\" }" }
            .joined(separator: ",\n")
        body += "\n],\n\"WAL-Ranges\": [\n{ \"Timeline\": 1, \"Start-LSN\": \"0/2000028\", \"End-LSN\": \"0/2000120\" }\n],\n"
        let checksum = SHA256Hasher.hash(Array(body.utf8)).hex
        if damage { body = body.replacingOccurrences(of: "\"Size\": 3", with: "\"Size\": 4") }
        return Array((body + "\"Manifest-Checksum\": \"\(checksum)\"}\n").utf8)
    }

    @Test func readsFilesRangesAndChecksItsOwnChecksum() throws {
        let files: [(String, Int64, String)] = [("backup_label", 225, String(repeating: "a", count: 64)), ("base/1/1234", 3, String(repeating: "b", count: 64))]
        let bytes = manifest(files: files)
        for chunk in [1, 13, 4096] {
            var seen: [String] = []
            let scanner = BackupManifestScanner { seen.append("\($0.path):\($0.size)") }
            var offset = 0
            while offset < bytes.count { try scanner.consume(bytes[offset..<min(bytes.count, offset + chunk)]); offset += chunk }
            let summary = try scanner.finish()
            #expect(seen == ["backup_label:225", "base/1/1234:3"])
            #expect(summary.systemIdentifier == "7713544280439765404")
            #expect(summary.walRanges == [.init(timeline: 1, start: "0/2000028", end: "0/2000120")])
            #expect(summary.sha256 == SHA256Hasher.hash(bytes).hex)
            #expect(summary.version == 2)
        }
        let damaged = manifest(files: files, damage: true)
        let scanner = BackupManifestScanner(onFile: nil)
        try scanner.consume(damaged[...])
        #expect(throws: CNBackupError.self) { _ = try scanner.finish() }
        let cut = BackupManifestScanner(onFile: nil)
        try cut.consume(bytes[0..<(bytes.count - 90)])
        #expect(throws: CNBackupError.self) { _ = try cut.finish() }
    }

    /// A tar as pg_basebackup writes it (backup_manifest last), checked by verify --deep's visitor.
    func deepCheck(algorithm: String, recorded: String?, damageChecksum: Bool = false) throws -> String {
        let dir = NSTemporaryDirectory() + "cnbackup-physical-check-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/base/1", withIntermediateDirectories: true)
        let data = Array("relation bytes".utf8), label = Array("START TIME: 2026-11-29 10:51:29 GMT\n".utf8)
        FileManager.default.createFile(atPath: dir + "/base/1/1234", contents: Data(data))
        FileManager.default.createFile(atPath: dir + "/backup_label", contents: Data(label))
        func checksum(_ bytes: [UInt8]) -> String {
            if algorithm == "SHA256" { return SHA256Hasher.hash(bytes).hex }
            var crc = CRC32C(); bytes.withUnsafeBytes { crc.update($0) }
            let v = crc.value ^ (damageChecksum ? 1 : 0)
            return [UInt8(v & 0xFF), UInt8((v >> 8) & 0xFF), UInt8((v >> 16) & 0xFF), UInt8(v >> 24)].hex
        }
        let manifestBytes = manifest(files: [("base/1/1234", Int64(data.count), checksum(data)), ("backup_label", Int64(label.count), checksum(label))],
                                     algorithm: algorithm)
        FileManager.default.createFile(atPath: dir + "/backup_manifest", contents: Data(manifestBytes))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["tar", "-C", dir, "-cf", dir + "/out.tar", "base/1/1234", "backup_label", "backup_manifest"]
        try process.run(); process.waitUntilExit()
        let evidence = PhysicalEvidence(tool: "pg_basebackup (PostgreSQL) 18.1", serverVersion: "18.1", systemIdentifier: "7713544280439765404",
                                        timeline: 1, startTimeline: 1, startLSN: "0/2000028", stopLSN: "0/2000120",
                                        serverTimeBeforeStart: "2026-11-29T10:51:29.000Z", backupStartTime: nil, serverTimeAtStop: "2026-11-29T10:51:30.000Z",
                                        isReplica: false, replayTimestamp: nil, backupManifestSHA256: SHA256Hasher.hash(manifestBytes).hex,
                                        backupManifestSize: Int64(manifestBytes.count), walRetention: "none", fileChecksums: recorded)
        let check = PhysicalTarCheck(evidence: evidence, component: "apps")
        let reader = TarReader(visitor: check)
        try reader.consume(Array(FileManager.default.contents(atPath: dir + "/out.tar")!))
        try reader.finish()
        // This tar holds no WAL, so finish() always finds that problem; the test reads what else it found.
        do { _ = try check.finish(); return "" } catch let error as CNBackupError { return error.cause ?? "" }
    }

    @Test func deepVerifyChecksEveryFileAgainstTheListedChecksum() throws {
        let crcGood = try deepCheck(algorithm: "CRC32C", recorded: "CRC32C")
        #expect(crcGood.contains("WAL") && !crcGood.contains("CRC-32C") && !crcGood.contains("backup_label"))
        let crcBad = try deepCheck(algorithm: "CRC32C", recorded: "CRC32C", damageChecksum: true)
        #expect(crcBad.contains("base/1/1234 has another CRC-32C than backup_manifest lists"))
        // A set recorded before `fileChecksums` existed used SHA-256.
        let shaGood = try deepCheck(algorithm: "SHA256", recorded: nil)
        #expect(!shaGood.contains("SHA-256") && !shaGood.contains("base/1/1234"))
        // A backup_manifest with another algorithm than the signed manifest records is not the one it vouches for.
        let swapped = try deepCheck(algorithm: "SHA256", recorded: "CRC32C")
        #expect(swapped.contains("is listed with SHA256 checksums, the signed manifest records CRC-32C"))
    }

    @Test func walFileNames() {
        #expect(PhysicalTarCheck.lsn("0/2000120") == 0x2000120)
        #expect(PhysicalTarCheck.lsn("1/0") == 1 << 32)
        #expect(PhysicalTarCheck.walFileName(timeline: 1, segment: 2, segmentSize: 16 << 20) == "000000010000000000000002")
        #expect(PhysicalTarCheck.walFileName(timeline: 3, segment: 256, segmentSize: 16 << 20) == "000000030000000100000000")
    }
}

@Suite struct PhysicalDefinitionTests {
    let recipient = KeyText.encode(.x25519Public, patternBytes(32, seed: 5))
    func yaml(_ postgres: String) -> String {
        """
        version: 1
        node: { name: sv-1, kind: generic }
        epoch: { migrationId: 3, serial: 1 }
        store: { url: "file:///tmp/x" }
        encryption: { recipients: ["\(recipient)"] }
        signing: { keyFile: /secrets/signing/key }
        captures:
          - { name: apps, role: apps, postgres: \(postgres) }
        """
    }

    @Test func physicalNeedsNoDatabasesAndRefusesThem() throws {
        let definition = try PipelineDefinition.parse(yaml("{ host: pg, user: cnadmin, method: physical }"))
        guard case .postgres(let pg) = definition.captures[0].source else { Issue.record("not postgres"); return }
        #expect(pg.method == .physical)
        #expect(definition.captures[0].jobs.map(\.name) == ["apps"])
        #expect(definition.captures[0].jobs[0].summary == "pg_basebackup cnadmin@pg:5432")
        for bad in ["{ host: pg, user: cnadmin, method: physical, databases: [a] }", "{ host: pg, user: cnadmin, method: physical, globals: true }",
                    "{ host: pg, user: cnadmin, method: logical }", "{ host: pg, user: cnadmin }"] {
            #expect(throws: CNBackupError.self, "\(bad)") { _ = try PipelineDefinition.parse(yaml(bad)) }
        }
        let dump = try PipelineDefinition.parse(yaml("{ host: pg, user: cnadmin, databases: [a, b] }"))
        guard case .postgres(let d) = dump.captures[0].source else { return }
        #expect(d.method == .dump)
        #expect(dump.captures[0].jobs.map(\.name) == ["apps-a", "apps-b"])
    }
}

/// What a restore running as root must never extract.
@Suite struct TarReaderRefusalTests {
    func tar(_ arguments: [String], in dir: String) throws -> [UInt8] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["tar"] + arguments + ["-C", dir + "/src", "-cf", dir + "/out.tar", "."]
        try process.run(); process.waitUntilExit()
        return Array(FileManager.default.contents(atPath: dir + "/out.tar") ?? Data())
    }

    @Test func aSetuidMemberAndAPaxGlobalHeaderAreRefused() throws {
        try withTemporaryDirectory { dir in
            try FileManager.default.createDirectory(atPath: dir + "/src", withIntermediateDirectories: true)
            FileManager.default.createFile(atPath: dir + "/src/plain", contents: Data("x".utf8))
            // The same tree reads, without either.
            #expect(try read(try tar(["--format=pax"], in: dir), chunk: 512).entries.count >= 2)
            let global = #expect(throws: CNBackupError.self) { try read(try tar(["--format=pax", "--pax-option=comment=from-a-backup"], in: dir), chunk: 700) }
            #expect(global?.message.contains("global header") == true)
            FileManager.default.createFile(atPath: dir + "/src/door", contents: Data("#!/bin/sh\n".utf8))
            chmod(dir + "/src/door", 0o4755)
            let setuid = #expect(throws: CNBackupError.self) { try read(try tar(["--format=ustar"], in: dir), chunk: 100) }
            #expect(setuid?.message.contains("setuid") == true)
        }
    }
}

import Foundation
import Testing
import CNBackupCore
@testable import CNBackup
import CNBackupTestKit

/// One ustar member: header block, data, padding.
private func member(_ name: String, type: Character = "0", data: [UInt8] = [], link: String = "", mode: Int = 0o600,
                    modified: Int = 1_700_000_000) -> [UInt8] {
    var header = [UInt8](repeating: 0, count: 512)
    func put(_ text: String, at offset: Int, width: Int) {
        for (i, byte) in Array(text.utf8).prefix(width).enumerated() { header[offset + i] = byte }
    }
    func octal(_ value: Int, at offset: Int, width: Int) {
        put(String(format: "%0\(width - 1)o", value), at: offset, width: width - 1)
    }
    put(name, at: 0, width: 100)
    octal(mode, at: 100, width: 8); octal(0, at: 108, width: 8); octal(0, at: 116, width: 8)
    octal(type == "0" ? data.count : 0, at: 124, width: 12); octal(modified, at: 136, width: 12)
    header[156] = UInt8(ascii: type.unicodeScalars.first!)
    put(link, at: 157, width: 100)
    put("ustar", at: 257, width: 6); put("00", at: 263, width: 2)
    for i in 148..<156 { header[i] = 0x20 }
    let sum = header.reduce(0) { $0 + Int($1) }
    put(String(format: "%06o", sum), at: 148, width: 6)
    header[154] = 0; header[155] = 0x20
    let padding = (512 - data.count % 512) % 512
    return header + data + [UInt8](repeating: 0, count: type == "0" ? padding : 0)
}

private func extract(_ members: [[UInt8]], into directory: String, chunk: Int = 1000) throws {
    let tar = members.flatMap { $0 } + [UInt8](repeating: 0, count: 1024)
    let writer = try DataDirectoryWriter(directory: directory)
    let reader = TarReader(visitor: writer)
    var offset = 0
    while offset < tar.count {
        try reader.consume(Array(tar[offset..<min(tar.count, offset + chunk)]))
        offset += chunk
    }
    try reader.finish()
    try writer.finish()
}

@Suite struct DataDirectoryWriterTests {
    @Test func writesFilesFoldersAndLinksWithTheirModesAndTimes() throws {
        try withTemporaryDirectory { dir in
            let target = dir + "/data"
            mkdir(target, 0o700)
            let big = patternBytes(3 * 1000 + 17)
            try extract([member("./", type: "5", mode: 0o700),
                         member("./base/", type: "5", mode: 0o700, modified: 1_600_000_000),
                         member("./base/1/16384", data: big, mode: 0o600, modified: 1_650_000_000),
                         member("./PG_VERSION", data: Array("15\n".utf8), mode: 0o640),
                         member("./pg_wal/000000010000000000000002", data: patternBytes(600)),   // folder not listed first
                         member("./empty", data: []),
                         member("./current", type: "2", link: "base/1/16384")], into: target, chunk: 333)
            #expect(FileManager.default.contents(atPath: target + "/base/1/16384") == Data(big))
            #expect(FileManager.default.contents(atPath: target + "/current") == Data(big))
            #expect(FileManager.default.contents(atPath: target + "/PG_VERSION") == Data("15\n".utf8))
            #expect(FileManager.default.contents(atPath: target + "/empty") == Data())
            var info = stat()
            #expect(lstat(target + "/PG_VERSION", &info) == 0 && info.st_mode & 0o777 == 0o640)
            #expect(lstat(target + "/base/1/16384", &info) == 0 && info.st_mtim.tv_sec == 1_650_000_000)
            #expect(lstat(target + "/base", &info) == 0 && info.st_mtim.tv_sec == 1_600_000_000)
            #expect(lstat(target + "/pg_wal", &info) == 0 && info.st_mode & 0o777 == 0o700)
        }
    }

    @Test func refusesWhatWouldLeaveTheFolderOrOverwrite() throws {
        let refused: [(String, [[UInt8]], String)] = [
            ("dot-dot", [member("../escape", data: [1])], "outside its folder"),
            ("absolute", [member("/tmp/escape", data: [1])], "outside its folder"),
            ("link out", [member("l", type: "2", link: "../../etc")], "leaving its folder"),
            ("absolute link", [member("l", type: "2", link: "/etc")], "leaving its folder"),
            // A link made by an earlier member is never written through, even one inside the folder.
            ("through a link", [member("real/", type: "5", mode: 0o700), member("l", type: "2", link: "real"),
                                member("l/file", data: [1])], "not a folder"),
            ("hard link", [member("f", data: [1]), member("h", type: "1", link: "f")], "unexpected type"),
            ("device", [member("dev", type: "3")], "unexpected type"),
            ("twice", [member("f", data: [1]), member("f", data: [2])], "cannot create"),
        ]
        for (what, members, message) in refused {
            try withTemporaryDirectory { dir in
                let target = dir + "/data"
                mkdir(target, 0o700)
                let error = #expect(throws: CNBackupError.self, "\(what)") { try extract(members, into: target) }
                #expect(error?.message.contains(message) == true, "\(what): \(error?.message ?? "")")
                #expect(!FileManager.default.fileExists(atPath: dir + "/escape"))
                #expect(!FileManager.default.fileExists(atPath: dir + "/real/file") && !FileManager.default.fileExists(atPath: target + "/real/file"))
            }
        }
    }
}

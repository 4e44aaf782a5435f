import Foundation
import Testing
@testable import CNBackup
import CNBackupCore
import CNBackupHTTP
import CNBackupStorage

/// The guarantees of `ObjectStore`, checked against any store. Every implementation runs this.
enum ObjectStoreConformance {
    static func run(_ store: any ObjectStore, prefix: String = "conformance-\(UUID().uuidString.prefix(8))") throws {
        let key = "\(prefix)/a/object.bin"
        let bytes = patternBytes(3 << 20 + 123)

        // Put, then read after write.
        let info = try store.put(key: key, from: MemoryStream(bytes, chunkSize: 100_000),
                                 options: PutOptions(tags: ["cnb-node": "n1", "cnb-component": "apps"]))
        #expect(info.size == Int64(bytes.count))
        #expect(try store.head(key: key)?.size == Int64(bytes.count))
        #expect(try store.getBytes(key: key, limit: 1 << 30) == bytes)
        #expect(try store.tags(key: key) == ["cnb-node": "n1", "cnb-component": "apps"])

        // Ranged get, inclusive bounds.
        #expect(try store.get(key: key, range: 10...19).readAll(limit: 100) == Array(bytes[10...19]))
        let tail = Int64(bytes.count - 5)...Int64(bytes.count - 1)
        #expect(try store.get(key: key, range: tail).readAll(limit: 100) == Array(bytes[(bytes.count - 5)...]))

        // Missing objects.
        #expect(try store.head(key: "\(prefix)/missing") == nil)
        let missing = #expect(throws: CNBackupError.self) { try store.getBytes(key: "\(prefix)/missing") }
        #expect(missing?.code == .notFound)

        // Atomic put: a source that fails leaves nothing.
        let broken = "\(prefix)/a/broken.bin"
        #expect(throws: CNBackupError.self) {
            try store.put(key: broken, from: FailingStream(after: patternBytes(1 << 20)), options: PutOptions())
        }
        #expect(try store.head(key: broken) == nil)

        // Put if absent: same bytes succeed, other bytes are refused and change nothing.
        let once = "\(prefix)/b/manifest.json"
        try store.putBytes(key: once, Array("one".utf8), options: PutOptions(ifAbsent: true))
        try store.putBytes(key: once, Array("one".utf8), options: PutOptions(ifAbsent: true))
        let exists = #expect(throws: CNBackupError.self) {
            try store.putBytes(key: once, Array("two".utf8), options: PutOptions(ifAbsent: true))
        }
        #expect(exists?.code == .alreadyExists)
        #expect(try store.getBytes(key: once) == Array("one".utf8))

        // List: sorted, complete, by prefix.
        try store.putBytes(key: "\(prefix)/a/0.bin", [1])
        let listed = try store.list(prefix: "\(prefix)/a/").map(\.key)
        #expect(listed == ["\(prefix)/a/0.bin", key])
        #expect(try store.list(prefix: "\(prefix)/").count == 3)

        // Delete, missing keys included.
        try store.delete(keys: [key, "\(prefix)/a/0.bin", once, "\(prefix)/never-was"])
        #expect(try store.list(prefix: "\(prefix)/").isEmpty)

        // Keys that escape the store are refused.
        #expect(throws: CNBackupError.self) { try store.putBytes(key: "../escape", [1]) }
    }
}

@Suite struct FileSystemStoreTests {
    @Test func conformance() throws {
        try withTemporaryDirectory { dir in
            try ObjectStoreConformance.run(FileSystemStore(root: dir + "/store"))
        }
    }

    @Test func unwritableStoreGivesAClearError() throws {
        guard getuid() != 0 else { return }  // root writes anywhere; the message is checked as non-root in CI images too
        let error = #expect(throws: CNBackupError.self) { try FileSystemStore(root: "/proc/cnbackup").putBytes(key: "x", [1]) }
        #expect(error?.code == .storage)
    }

    @Test func storeURLs() throws {
        #expect(try StoreSettings(parsing: "file:///var/backups").open().displayName == "file:///var/backups")
        #expect(throws: CNBackupError.self) { try StoreSettings(parsing: "file://relative/path").open() }
        #expect(throws: CNBackupError.self) { try StoreSettings(parsing: "ftp://x/y") }
        #expect(throws: CNBackupError.self) { try StoreSettings(parsing: "s3://b/p?colour=red") }
        let s3 = try StoreSettings(parsing: "s3://bucket/prefix?endpoint=https://s3.example&region=eu-1&pathStyle=true")
        #expect(s3.url == "s3://bucket/prefix")
        #expect(s3.endpoint == "https://s3.example" && s3.region == "eu-1" && s3.pathStyle == true)
        let tuned = try StoreSettings(parsing: "s3://bucket/p?partSizeMiB=16&parallelParts=2&maxBytesPerSecond=1000000")
        #expect(tuned.partSizeMiB == 16 && tuned.parallelParts == 2 && tuned.maxBytesPerSecond == 1_000_000)
    }
}

import Foundation
import Testing
import CNBackupCore
import CNBackupHTTP
import CNBackupStorage
import CNBackupTesting

/// Every store the project has, for the conformance suite: each guarantee of `ObjectStore` is one
/// test, run against each of them.
package enum StoreUnderTest: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case memory, file, s3HTTP = "s3-http", s3TLS = "s3-tls"
    /// A memory store behind `FaultyStore`, which fails the first call of every read operation
    /// with a transient error, behind `RetryingStore`, which must absorb them.
    case faultyRetried = "faulty+retrying"
    /// GCS's JSON API: fake-gcs-server behind the Google stand-ins (TLS, bearer tokens from a
    /// service-account key's RS256 assertion).
    case gcs

    package var testDescription: String { rawValue }

    /// A fresh store and the prefix to use in it; `cleanup` removes what the test made locally.
    package func make() throws -> (store: any ObjectStore, prefix: String, cleanup: () -> Void) {
        let prefix = "conformance-\(UUID().uuidString.prefix(8))"
        switch self {
        case .memory:
            return (MemoryStore(), prefix, {})
        case .file:
            let dir = NSTemporaryDirectory() + "cnbackup-conformance-\(UUID().uuidString)"
            return (FileSystemStore(root: dir), prefix, { try? FileManager.default.removeItem(atPath: dir) })
        case .s3HTTP:
            return (try SeaweedFSServer.shared.get().store(prefix: "conformance"), prefix, {})
        case .s3TLS:
            let server = try SeaweedFSServer.shared.get()
            return (try SeaweedFSServer.store(endpoint: server.httpsEndpoint, prefix: "conformance-tls") { $0.caFile = server.caFile },
                    prefix, {})
        case .faultyRetried:
            let faulty = FaultyStore(MemoryStore())
            for operation in [FaultyStore.Operation.get, .head, .list, .delete, .tags] {
                faulty.inject(.transientError, into: operation)
            }
            return (RetryingStore(faulty, policy: RetryPolicy(maxAttempts: 3, baseDelay: 0.001, maxDelay: 0.01)), prefix, {})
        case .gcs:
            return (try GoogleStandIns.shared.get().store(prefix: "conformance"), prefix, {})
        }
    }

    package static var available: [StoreUnderTest] {
        var stores: [StoreUnderTest] = [.memory, .file, .faultyRetried]
        if SeaweedFSServer.executable != nil { stores += [.s3HTTP, .s3TLS] }
        // In CI (which installs them) a missing stand-in fails the GCS cases instead of hiding them.
        if GoogleStandIns.available || ProcessInfo.processInfo.environment["CI"] != nil { stores.append(.gcs) }
        return stores
    }
}

/// The guarantees written on `ObjectStore`, one test each, for every store.
@Suite package struct ObjectStoreConformance {
    package func with(_ kind: StoreUnderTest, _ body: (any ObjectStore, String) throws -> Void) throws {
        let (store, prefix, cleanup) = try kind.make()
        defer { cleanup() }
        try body(store, prefix)
    }

    @Test(arguments: StoreUnderTest.available)
    package func readAfterWrite(_ kind: StoreUnderTest) throws {
        try with(kind) { (store, prefix) throws in
            let key = "\(prefix)/a/object.bin"
            let bytes = patternBytes(3 << 20 + 123)
            let info = try store.put(key: key, from: MemoryStream(bytes, chunkSize: 100_000),
                                     options: PutOptions(tags: ["cnb-node": "n1", "cnb-component": "apps"]))
            #expect(info.size == Int64(bytes.count))
            #expect(try store.head(key: key)?.size == Int64(bytes.count))
            #expect(try store.getBytes(key: key, limit: 1 << 30) == bytes)
            #expect(try store.tags(key: key) == ["cnb-node": "n1", "cnb-component": "apps"])
        }
    }

    @Test(arguments: StoreUnderTest.available)
    package func rangedGetHasInclusiveBounds(_ kind: StoreUnderTest) throws {
        try with(kind) { (store, prefix) throws in
            let key = "\(prefix)/ranged.bin"
            let bytes = patternBytes(70_000)
            try store.putBytes(key: key, bytes)
            #expect(try store.get(key: key, range: 10...19).readAll(limit: 100) == Array(bytes[10...19]))
            let tail = Int64(bytes.count - 5)...Int64(bytes.count - 1)
            #expect(try store.get(key: key, range: tail).readAll(limit: 100) == Array(bytes[(bytes.count - 5)...]))
        }
    }

    @Test(arguments: StoreUnderTest.available)
    package func missingObjectsAreNotFound(_ kind: StoreUnderTest) throws {
        try with(kind) { (store, prefix) throws in
            #expect(try store.head(key: "\(prefix)/missing") == nil)
            let missing = #expect(throws: CNBackupError.self) { try store.getBytes(key: "\(prefix)/missing") }
            #expect(missing?.code == .notFound)
            #expect(missing.map { !$0.message.contains(SeaweedFSServer.secretKey) } ?? false)
        }
    }

    @Test(arguments: StoreUnderTest.available)
    package func aFailingSourceLeavesNothing(_ kind: StoreUnderTest) throws {
        try with(kind) { (store, prefix) throws in
            let broken = "\(prefix)/a/broken.bin"
            #expect(throws: CNBackupError.self) {
                try store.put(key: broken, from: FailingStream(after: patternBytes(1 << 20)), options: PutOptions())
            }
            #expect(try store.head(key: broken) == nil)
            // A large one too (a multipart upload on S3, which must be aborted).
            #expect(throws: CNBackupError.self) {
                try store.put(key: broken, from: FailingStream(after: patternBytes(20 << 20)), options: PutOptions())
            }
            #expect(try store.head(key: broken) == nil)
            if let s3 = store as? S3Store {
                let open = try s3.listMultipartUploads().filter { $0.key.hasPrefix(prefix) }
                #expect(open.isEmpty)
            }
        }
    }

    @Test(arguments: StoreUnderTest.available)
    package func putIfAbsentNeverReplaces(_ kind: StoreUnderTest) throws {
        try with(kind) { (store, prefix) throws in
            let once = "\(prefix)/b/manifest.json"
            try store.putBytes(key: once, Array("one".utf8), options: PutOptions(ifAbsent: true))
            try store.putBytes(key: once, Array("one".utf8), options: PutOptions(ifAbsent: true))
            let exists = #expect(throws: CNBackupError.self) {
                try store.putBytes(key: once, Array("two".utf8), options: PutOptions(ifAbsent: true))
            }
            #expect(exists?.code == .alreadyExists)
            #expect(try store.getBytes(key: once) == Array("one".utf8))
        }
    }

    @Test(arguments: StoreUnderTest.available)
    package func listIsSortedCompleteAndByPrefix(_ kind: StoreUnderTest) throws {
        try with(kind) { (store, prefix) throws in
            for name in ["a/2.bin", "a/0.bin", "a/1.bin", "b/0.bin"] { try store.putBytes(key: "\(prefix)/\(name)", [1]) }
            #expect(try store.list(prefix: "\(prefix)/a/").map(\.key) == ["0.bin", "1.bin", "2.bin"].map { "\(prefix)/a/\($0)" })
            #expect(try store.list(prefix: "\(prefix)/").count == 4)
        }
    }

    @Test(arguments: StoreUnderTest.available)
    package func deleteIgnoresMissingKeys(_ kind: StoreUnderTest) throws {
        try with(kind) { (store, prefix) throws in
            try store.putBytes(key: "\(prefix)/x", [1])
            try store.delete(keys: ["\(prefix)/x", "\(prefix)/never-was"])
            #expect(try store.list(prefix: "\(prefix)/").isEmpty)
        }
    }

    @Test(arguments: StoreUnderTest.available)
    package func keysThatEscapeAreRefused(_ kind: StoreUnderTest) throws {
        try with(kind) { (store, _) throws in
            for key in ["../escape", "/absolute", "a//b", "a/./b", "a/\u{1}b"] {
                #expect(throws: CNBackupError.self, "\(key)") { try store.putBytes(key: key, [1]) }
            }
        }
    }
}

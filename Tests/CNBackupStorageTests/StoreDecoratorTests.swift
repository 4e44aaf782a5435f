import Foundation
import Testing
import CNBackupCore
import CNBackupHTTP
import CNBackupStorage
import CNBackupTesting
import CNBackupTestKit

/// The decorator and the fault injector themselves.
@Suite struct RetryingAndFaultyStoreTests {
    @Test func transientFaultsAreRetriedPermanentOnesAreNot() throws {
        let faulty = FaultyStore(MemoryStore())
        let store = RetryingStore(faulty, policy: RetryPolicy(maxAttempts: 3, baseDelay: 0.001, maxDelay: 0.01))
        try store.putBytes(key: "k", [1, 2, 3])
        faulty.inject(.transientError, into: .head, times: 2)
        #expect(try store.head(key: "k")?.size == 3)
        #expect(faulty.callCount(.head) == 3)
        faulty.inject(.transientError, into: .list, times: 3)
        let exhausted = #expect(throws: CNBackupError.self) { try store.list(prefix: "") }
        #expect(exhausted?.isTransient == true)
        faulty.inject(.permanentError, into: .get)
        let before = faulty.callCount(.get)
        #expect(throws: CNBackupError.self) { try store.getBytes(key: "k") }
        #expect(faulty.callCount(.get) == before + 1)
    }

    @Test func aPutWhoseSourceDiesLeavesNothingAndIsNotRetried() throws {
        let faulty = FaultyStore(MemoryStore())
        let store = RetryingStore(faulty, policy: RetryPolicy(maxAttempts: 3, baseDelay: 0.001, maxDelay: 0.01))
        faulty.inject(.sourceFailsAfter(bytes: 1000), into: .put)
        #expect(throws: CNBackupError.self) { try store.putBytes(key: "k", patternBytes(5000)) }
        #expect(faulty.callCount(.put) == 1)
        #expect(try store.head(key: "k") == nil)
    }
}

@Suite struct FileSystemStoreTests {
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

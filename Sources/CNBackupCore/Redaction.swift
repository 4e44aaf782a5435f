import Foundation

/// Secrets this process knows (a database password, a bearer token, an OAuth client secret) and
/// takes out of any text bound for a log: a child's standard error may repeat its connection
/// string or a token it was given. Redacted by a list, not by care (pgBackRest's `headerRedactList`).
public enum Redaction {
    // @unchecked: `secrets` is only touched under `lock`.
    private final class Registry: @unchecked Sendable {
        let lock = NSLock()
        var secrets: Set<String> = []
    }
    private static let registry = Registry()

    /// Remembers `secret` (ignored when shorter than 6 characters: too likely to match words).
    package static func register(_ secret: String) {
        let trimmed = secret.trimmingCharacters(in: .whitespacesAndNewlines)
        guard trimmed.count >= 6 else { return }
        registry.lock.withLock { _ = registry.secrets.insert(trimmed) }
    }

    /// `text` with every known secret replaced by `[redacted]`.
    public static func redact(_ text: String) -> String {
        let secrets = registry.lock.withLock { registry.secrets }
        var result = text
        for secret in secrets.sorted(by: { $0.count > $1.count }) {
            result = result.replacingOccurrences(of: secret, with: "[redacted]")
        }
        return result
    }
}

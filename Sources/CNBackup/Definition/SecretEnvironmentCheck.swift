import Foundation
import CNBackupCore

extension PipelineDefinition {
    /// Variables that carry a secret by name: a pipeline file's `env:` is read by whoever reads the
    /// ConfigMap or the file, lands in every child's environment (readable by the same user through
    /// /proc) and in `ps e` output; secrets go in files (`passwordFile`, key files, `PGPASSFILE`).
    static let secretVariableNames: Set<String> = [
        "PGPASSWORD", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "GOOGLE_APPLICATION_CREDENTIALS_JSON",
        "CLIENT_SECRET", "OAUTH_CLIENT_SECRET", "MC_SECRET_KEY",
    ]

    /// `validate`'s warnings for `env:` entries of captures that carry a secret.
    public var secretEnvironmentWarnings: [String] {
        captures.flatMap { capture -> [String] in
            let environment: [String: String]
            switch capture.source {
            case .command(_, let env): environment = env
            case .postgres(let pg): environment = pg.environment
            default: environment = [:]
            }
            return environment.keys.sorted().compactMap { name in
                let upper = name.uppercased()
                guard Self.secretVariableNames.contains(upper) || upper.hasSuffix("_PASSWORD") || upper.hasSuffix("_SECRET")
                        || upper.hasSuffix("_TOKEN") else { return nil }
                return "capture \(capture.name): env \(name) looks like a secret: a pipeline's env is readable with the file and in every child's environment; put it in a file (passwordFile, a key file, PGPASSFILE) instead"
            }
        }
    }
}

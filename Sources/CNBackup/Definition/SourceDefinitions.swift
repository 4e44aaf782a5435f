import Foundation
import CNBackupCore
import CNBackupCatalog

// The capture sources a pipeline file names, as values; Capture/ gives each its behaviour.

/// A Postgres instance to dump, one component per database (pg_dump custom format, no
/// compression of its own: zstd does that), plus optionally its roles (`pg_dumpall --globals-only
/// --no-role-passwords`) so a fresh instance can take the restore.
public struct PostgresSourceDefinition: Sendable, Equatable {
    public var host: String
    public var port: Int
    public var user: String
    /// A file holding only the password (a Kubernetes secret); nil uses `PGPASSFILE` from `env`.
    public var passwordFile: String?
    public var databases: [String]
    public var globals: Bool
    public var lockWaitTimeout: String
    public var sslMode: String?
    /// Where pg_dump, pg_dumpall and psql are; nil looks them up on PATH.
    public var binDirectory: String?
    public var environment: [String: String]
    /// `dump` (pg_dump per database) or `physical` (one pg_basebackup of the whole instance).
    public var method: PostgresMethod = .dump
    /// With `method: physical`: take incrementals against the previous backup (PostgreSQL 17+ with
    /// `summarize_wal = on`); nil takes a full backup every run.
    public var incremental: IncrementalPolicy? = nil
    /// With `method: dump`: pg_dump workers per database sharing one exported snapshot (1: one
    /// plain pg_dump per database). See `ParallelDump`.
    public var jobs: Int = 1

    public var summary: String {
        method == .physical ? "postgres: pg_basebackup \(user)@\(host):\(port)" : "postgres: \(user)@\(host):\(port)/\(databases.joined(separator: ","))"
    }
}

/// When a physical capture takes an incremental rather than a full backup.
public struct IncrementalPolicy: Sendable, Equatable {
    /// A new full backup once the chain's full is this old (default 7 days).
    public var fullEvery: TimeInterval
    /// The most links a chain holds, the full included (default: no limit beyond `fullEvery`).
    public var maxChain: Int?

    public init(fullEvery: TimeInterval = 7 * 86_400, maxChain: Int? = nil) {
        self.fullEvery = fullEvery; self.maxChain = maxChain
    }
}

/// How a postgres capture reads the instance.
public enum PostgresMethod: String, Sendable, Equatable, CaseIterable {
    /// pg_dump per database (plus the roles with `globals`): logical, restorable into any newer server.
    case dump
    /// pg_basebackup of the whole instance, with its WAL: restores to a data directory of the same major version.
    case physical
}

/// The identities dump over HTTPS with a bearer token (docs/CANTON.md, "Node identities": the SV endpoint
/// `/api/sv/v0/admin/domain/identities-dump`, the validator one
/// `/api/validator/v0/admin/participant/identities`).
public struct HTTPSourceDefinition: Sendable, Equatable {
    public struct OAuth: Sendable, Equatable {
        public var tokenURL: String
        public var clientId: String
        public var clientSecretFile: String
        public var audience: String?
        public var scope: String?
    }
    public var url: String
    public var caFile: String?
    public var tokenFile: String?
    public var oauth: OAuth?
    /// Check the body against the documented identities shapes before the set is committed.
    public var expectIdentities: Bool
    /// The whole fetch (token, dump and their retries) takes at most this long: a server that
    /// trickles or stalls fails the capture instead of holding the run.
    public var timeoutSeconds: Int = 300

    public var summary: String { "https: \(url)" + (oauth != nil ? " (oauth2 client credentials)" : tokenFile != nil ? " (token file)" : "") }
}

/// A Kubernetes Secret read through the API server with the pod's service account (Splice tells
/// SVs to keep `splice-app-sv-key` and `cometbft-keys` off the cluster). What is stored is the
/// Secret as `kubectl apply -f` takes it back: apiVersion, kind, name, namespace, labels, type and
/// data; never the server's bookkeeping (uid, resourceVersion, managedFields) nor the
/// last-applied annotation, which repeats the data. The values stay in memory, never on disk.
public struct KubernetesSecretDefinition: Sendable, Equatable {
    public var namespace: String
    public var name: String
    /// `https://HOST:PORT`; default from KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT.
    public var apiServer: String?
    /// Default: the service account's token and CA in its mounted folder.
    public var tokenFile: String?
    public var caFile: String?

    public static let serviceAccountFolder = "/var/run/secrets/kubernetes.io/serviceaccount"

    public init(namespace: String, name: String, apiServer: String? = nil, tokenFile: String? = nil, caFile: String? = nil) {
        self.namespace = namespace; self.name = name; self.apiServer = apiServer; self.tokenFile = tokenFile; self.caFile = caFile
    }

    public var summary: String { "kubernetes secret \(namespace)/\(name)" }
}

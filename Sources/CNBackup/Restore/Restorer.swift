import Foundation
import CNBackupCore
import CNBackupStorage
import CNBackupCatalog

/// Restores one component of a set to a file or to standard output.
///
/// To a file: the plaintext goes to a temporary file (mode 0600) beside the target, and is
/// fsynced and renamed into place only after the last segment authenticated, the zstd checksum
/// held and the plaintext matched the manifest; a failure removes the temporary file, so no
/// unauthenticated plaintext ever reaches the final path. To standard output: bytes flow as each
/// segment authenticates, and only exit code 0 says the output is whole.
public struct Restorer: Sendable {
    public let catalog: Catalog
    public init(catalog: Catalog) { self.catalog = catalog }

    public enum Destination: Sendable {
        case file(path: String, overwrite: Bool)
        case standardOutput
        /// The identities dump as the Kubernetes Secret that Splice's `participantIdentitiesDumpImport`
        /// reads (key `content`), written like a file: only once the dump authenticated whole.
        case kubernetesSecret(path: String, overwrite: Bool, secret: IdentitiesSecret)
    }

    @discardableResult
    public func restore(_ set: TrustedSet, component: String, identities: [Identity],
                        to destination: Destination) throws -> Int64 {
        let record = try set.component(component)
        let reader = try ComponentReader(store: catalog.store, key: set.layout.key(relative: record.objectKey),
                                         expect: .record(record, manifest: set.manifest, layout: set.layout), keys: .identities(identities))

        switch destination {
        case .standardOutput:
            let written = try writeAll(reader.plaintext, to: STDOUT_FILENO, what: "standard output")
            try reader.finish()
            return written
        case .file(let path, let overwrite):
            return try Self.writeAtomically(path: path, overwrite: overwrite) { fd, temporary in
                let written = try writeAll(reader.plaintext, to: fd, what: temporary)
                try reader.finish()
                return written
            }
        case .kubernetesSecret(let path, let overwrite, let secret):
            // An identities dump is small: it is read whole (bounded), authenticated, then rendered.
            let dump = SecretText(try reader.plaintext.readAll(limit: 64 << 20))
            try reader.finish()
            let manifest = SecretText(try secret.render(dump: dump.bytes))
            return try Self.writeAtomically(path: path, overwrite: overwrite) { fd, temporary in
                try writeFully(fd: fd, manifest.bytes, what: temporary)
                return Int64(manifest.bytes.count)
            }
        }
    }

    /// Writes through a temporary file (mode 0600) beside `path`, fsyncs it and renames it into
    /// place only when `body` returned; a failure, or a signal that ends the process, removes it.
    static func writeAtomically(path: String, overwrite: Bool, _ body: (Int32, String) throws -> Int64) throws -> Int64 {
        if !overwrite && FileManager.default.fileExists(atPath: path) {
            throw CNBackupError(.alreadyExists, "\(path) already exists: choose another path or pass --force")
        }
        let directory = (path as NSString).deletingLastPathComponent
        let temporary = (directory.isEmpty ? "." : directory) + "/.\((path as NSString).lastPathComponent).cnbackup-\(UUID().uuidString).part"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw CNBackupError(.io, "cannot create a file in \(directory.isEmpty ? "." : directory): \(String(cString: strerror(errno)))")
        }
        LastResort.register(file: temporary)
        var done = false
        defer { if !done { unlink(temporary) }; LastResort.unregister(file: temporary) }
        let written: Int64
        do {
            defer { close(fd) }
            written = try body(fd, temporary)
            guard fsync(fd) == 0 else { throw CNBackupError(.io, "cannot sync \(temporary)") }
        }
        guard rename(temporary, path) == 0 else {
            throw CNBackupError(.io, "cannot move the restored file to \(path): \(String(cString: strerror(errno)))")
        }
        done = true
        return written
    }
}

/// How `restore --as-kubernetes-secret` renders an identities dump: a v1 Secret named `name`
/// whose key `content` holds the dump's exact bytes (base64 in `data`), as Splice's
/// `participantIdentitiesDumpImport: { secretName, newParticipantIdentifier }` reads it. For an
/// SV dump, `participantOnly` takes `.identities.participant` alone (what Splice's SV recovery
/// gets with `jq '.identities.participant'`); that part is re-serialised, every value kept.
public struct IdentitiesSecret: Sendable {
    public var name: String
    public var namespace: String?
    public var participantOnly: Bool

    public init(name: String, namespace: String?, participantOnly: Bool) {
        self.name = name; self.namespace = namespace; self.participantOnly = participantOnly
    }

    func render(dump: [UInt8]) throws -> [UInt8] {
        var content = SecretText(dump)
        if participantOnly {
            guard let root = try? JSONSerialization.jsonObject(with: Data(dump)) as? [String: Any],
                  let identities = root["identities"] as? [String: Any], let participant = identities["participant"] else {
                throw CNBackupError(.invalidInput, "--participant-only needs an SV identities dump ({\"identities\": {\"participant\": ...}}); this one is a validator's: leave the flag out")
            }
            content = SecretText(Array(try JSONSerialization.data(withJSONObject: participant, options: [.sortedKeys, .withoutEscapingSlashes])))
        }
        var metadata: [String: Any] = ["name": name, "labels": ["app.kubernetes.io/created-by": "cnbackup-restore"]]
        if let namespace { metadata["namespace"] = namespace }
        let secret: [String: Any] = ["apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": metadata,
                                     "data": ["content": Data(content.bytes).base64EncodedString()]]
        return Array(try JSONSerialization.data(withJSONObject: secret, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])) + [0x0A]
    }
}

import Foundation

/// The text encoding of every key cnbackup reads or writes (docs/FORMAT.md, "Keys"):
/// `PREFIX` + base64url(key || checksum), where checksum = SHA-256(PREFIX || key)[0..<4].
/// Public prefixes are lower case (`cnb1-x25519-pub-`), private ones upper case and say SECRET
/// (`CNB1-X25519-SECRET-`), so a private key is told from a public one at a glance, and a typo or a
/// key pasted into the wrong place fails its checksum.
public enum KeyKind: String, CaseIterable, Sendable {
    case x25519Public = "cnb1-x25519-pub-"
    case x25519Secret = "CNB1-X25519-SECRET-"
    case ed25519Public = "cnb1-ed25519-pub-"
    case ed25519Secret = "CNB1-ED25519-SECRET-"
    case symmetricSecret = "CNB1-SYMMETRIC-SECRET-"
    /// The secret of write-only deduplication: it keys chunk ids and the chunker's gear table, and
    /// opens nothing (docs/FORMAT.md, "Deduplicated components").
    case dedupSecret = "CNB1-DEDUP-SECRET-"

    package var isSecret: Bool { rawValue.contains("SECRET") }
}

package enum KeyText {
    package static func encode(_ kind: KeyKind, _ key: [UInt8]) -> String {
        let prefix = Array(kind.rawValue.utf8)
        let checksum = Array(SHA256Hasher.hash(prefix + key)[0..<4])
        return kind.rawValue + Base64URL.encode(key + checksum)
    }

    /// Decodes a key string, checking its kind and checksum. Errors never repeat the text (it may
    /// be a secret key pasted where a public one belongs).
    package static func decode(_ text: String, expecting kinds: [KeyKind], what: String) throws -> (KeyKind, [UInt8]) {
        let text = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard let kind = KeyKind.allCases.first(where: { text.hasPrefix($0.rawValue) }) else {
            throw CNBackupError(.invalidInput,
                "\(what) is not a cnbackup key: expected one starting with \(kinds.map(\.rawValue).joined(separator: " or "))")
        }
        guard kinds.contains(kind) else {
            let hint: String
            if kind == .ed25519Secret, kinds.contains(where: { $0.isSecret }) {
                // A signing key where an identity (a key that opens objects) is asked for.
                hint = " (it is a signing key: it signs manifests and opens nothing; give the private key of a recipient, the file `cnbackup keys generate` wrote without --signing)"
            } else if kind.isSecret, !kinds.contains(where: { $0.isSecret }) {
                hint = " (it is a private key: never pass one where a public key is asked for)"
            } else {
                hint = ""
            }
            throw CNBackupError(.invalidInput,
                "\(what) is a \(kind.rawValue)... key, expected \(kinds.map(\.rawValue).joined(separator: " or "))...\(hint)")
        }
        guard var payload = Base64URL.decode(String(text.dropFirst(kind.rawValue.count))), payload.count == 36 else {
            throw CNBackupError(.invalidInput, "\(what) is damaged: its body is not 36 bytes of base64url")
        }
        defer { wipe(&payload) }
        let key = Array(payload[0..<32])
        let checksum = Array(SHA256Hasher.hash(Array(kind.rawValue.utf8) + key)[0..<4])
        guard checksum == Array(payload[32..<36]) else {
            throw CNBackupError(.invalidInput, "\(what) is damaged: its checksum does not match (a typo or a cut copy?)")
        }
        return (kind, key)
    }
}

/// A short id for a key, safe to print: it names a key without revealing it.
public struct KeyID: Hashable, Sendable, CustomStringConvertible, Codable {
    public let bytes: [UInt8]
    public var description: String { bytes.hex }
    package init(_ bytes: [UInt8]) { self.bytes = bytes }

    public init(from decoder: Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let bytes = [UInt8](hex: text), bytes.count == 8 else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "key id is not 16 hex digits"))
        }
        self.bytes = bytes
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }

    /// A key id as printed (16 hex digits), or the id of a recipient public key
    /// (`cnb1-x25519-pub-...`); what an operator names a key they still hold by.
    public init(parsing text: String) throws {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if let bytes = [UInt8](hex: trimmed), bytes.count == 8 {
            self.init(bytes)
        } else if trimmed.hasPrefix("cnb1-") || trimmed.hasPrefix("CNB1-") {
            self = try Recipient(parsing: trimmed).keyID
        } else {
            // Never repeat the text: it may be a secret pasted in the wrong place.
            throw CNBackupError(.invalidInput, "a held key is neither a key id (16 hex digits, as `verify` and `list` print them) nor a public key (cnb1-x25519-pub-...)")
        }
    }

    /// X25519 and Ed25519 ids: the first 8 bytes of SHA-256 of the public key.
    package static func ofPublicKey(_ key: [UInt8]) -> KeyID { KeyID(Array(SHA256Hasher.hash(key)[0..<8])) }

    /// Symmetric ids come from HKDF, never a plain hash of the key, so an id is no test of a guess.
    package static func ofSymmetricKey(_ key: [UInt8]) throws -> KeyID {
        KeyID(try hkdfSHA256(ikm: key, salt: [], info: Array("cnbackup v1 symmetric key id".utf8), count: 8))
    }
}

/// Someone the job seals to: an X25519 public key, or a symmetric key file's key.
public enum Recipient: Sendable {
    case x25519(publicKey: [UInt8])
    case symmetric(SymmetricKey)

    /// Parses a `cnb1-x25519-pub-...` recipient string.
    public init(parsing text: String) throws {
        let (_, key) = try KeyText.decode(text, expecting: [.x25519Public], what: "recipient")
        self = .x25519(publicKey: key)
    }

    public var keyID: KeyID {
        switch self {
        case .x25519(let key): return KeyID.ofPublicKey(key)
        case .symmetric(let key): return key.keyID
        }
    }
}

/// 32 secret bytes, wiped when the last reference goes.
public final class SecretBytes: @unchecked Sendable {
    // @unchecked: the bytes are set once in init and only read afterwards.
    package private(set) var bytes: [UInt8]
    package init(_ bytes: [UInt8]) { self.bytes = bytes }
    deinit { wipe(&bytes) }
}

/// A symmetric key file's key.
public struct SymmetricKey: Sendable {
    package let secret: SecretBytes
    public let keyID: KeyID
    package init(_ key: [UInt8]) throws {
        secret = SecretBytes(key)
        keyID = try KeyID.ofSymmetricKey(key)
    }
}

/// What opens sealed objects: an X25519 private key or a symmetric key.
public enum Identity: Sendable {
    case x25519(secret: SecretBytes, publicKey: [UInt8])
    case symmetric(SymmetricKey)

    public var keyID: KeyID {
        switch self {
        case .x25519(_, let publicKey): return KeyID.ofPublicKey(publicKey)
        case .symmetric(let key): return key.keyID
        }
    }

    public var recipient: Recipient {
        switch self {
        case .x25519(_, let publicKey): return .x25519(publicKey: publicKey)
        case .symmetric(let key): return .symmetric(key)
        }
    }
}

/// The node's Ed25519 signing key.
public struct SigningKey: Sendable {
    package let secret: SecretBytes
    public let publicKey: SignerKey

    package init(secret: SecretBytes, publicKey: SignerKey) { self.secret = secret; self.publicKey = publicKey }
}

/// A pinned signer: the Ed25519 public key readers trust manifests from.
public struct SignerKey: Sendable, Hashable, CustomStringConvertible {
    public let bytes: [UInt8]
    public var keyID: KeyID { KeyID.ofPublicKey(bytes) }
    public var description: String { KeyText.encode(.ed25519Public, bytes) }

    public init(parsing text: String) throws {
        let (_, key) = try KeyText.decode(text, expecting: [.ed25519Public], what: "signer public key")
        bytes = key
    }
    package init(bytes: [UInt8]) { self.bytes = bytes }
}

/// Key files: comment lines starting with `#` and one key line. Private key files are created
/// with mode 0600 and never overwritten.
public enum KeyFile {
    public enum Kind: Sendable { case x25519, ed25519, symmetric, dedup }

    /// Creates a new key file and returns the public string to print (the key id for symmetric keys).
    public static func generate(kind: Kind, at path: String) throws -> String {
        var secret = try randomBytes(32)
        defer { wipe(&secret) }
        let secretLine: String
        let publicLine: String
        switch kind {
        case .x25519:
            secretLine = KeyText.encode(.x25519Secret, secret)
            publicLine = KeyText.encode(.x25519Public, try X25519.publicKey(privateKey: secret))
        case .ed25519:
            secretLine = KeyText.encode(.ed25519Secret, secret)
            publicLine = KeyText.encode(.ed25519Public, try Ed25519.publicKey(privateKey: secret))
        case .symmetric:
            secretLine = KeyText.encode(.symmetricSecret, secret)
            publicLine = try KeyID.ofSymmetricKey(secret).description
        case .dedup:
            secretLine = KeyText.encode(.dedupSecret, secret)
            publicLine = try KeyID.ofSymmetricKey(secret).description
        }
        let label = kind == .symmetric || kind == .dedup ? "key id" : "public key"
        let text = "# created: \(ISO8601DateFormatter().string(from: Date()))\n# \(label): \(publicLine)\n\(secretLine)\n"
        try writeSecretFile(path: path, contents: Array(text.utf8))
        return publicLine
    }

    /// What a key file holds, safe to print: its kind, its public half (none for a symmetric key)
    /// and its key id. Reads private and public key files alike.
    public struct Summary: Sendable, Encodable {
        /// x25519-private, x25519-public, ed25519-private, ed25519-public, symmetric.
        public var kind: String
        public var isPrivate: Bool
        public var publicKey: String?
        public var keyId: String
    }

    public static func summary(path: String) throws -> Summary {
        let line = try readKeyLine(path: path)
        let (kind, key) = try KeyText.decode(line, expecting: KeyKind.allCases, what: "key file \(path)")
        var secret = key
        defer { wipe(&secret) }
        switch kind {
        case .x25519Secret:
            let publicKey = try X25519.publicKey(privateKey: secret)
            return Summary(kind: "x25519-private", isPrivate: true, publicKey: KeyText.encode(.x25519Public, publicKey),
                           keyId: KeyID.ofPublicKey(publicKey).description)
        case .x25519Public:
            return Summary(kind: "x25519-public", isPrivate: false, publicKey: KeyText.encode(.x25519Public, key),
                           keyId: KeyID.ofPublicKey(key).description)
        case .ed25519Secret:
            let publicKey = try Ed25519.publicKey(privateKey: secret)
            return Summary(kind: "ed25519-private", isPrivate: true, publicKey: KeyText.encode(.ed25519Public, publicKey),
                           keyId: KeyID.ofPublicKey(publicKey).description)
        case .ed25519Public:
            return Summary(kind: "ed25519-public", isPrivate: false, publicKey: KeyText.encode(.ed25519Public, key),
                           keyId: KeyID.ofPublicKey(key).description)
        case .symmetricSecret:
            return Summary(kind: "symmetric", isPrivate: true, publicKey: nil, keyId: try KeyID.ofSymmetricKey(secret).description)
        case .dedupSecret:
            return Summary(kind: "dedup", isPrivate: true, publicKey: nil, keyId: try KeyID.ofSymmetricKey(secret).description)
        }
    }

    /// Writes `contents` to a new file with mode 0600, refusing to replace an existing file.
    /// `what` names the file in errors ("key file", "pgpass file", ...).
    package static func writeSecretFile(path: String, contents: [UInt8], what: String = "key file") throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            let reason = errno == EEXIST ? "it already exists (cnbackup never overwrites a secret file)" : String(cString: strerror(errno))
            throw CNBackupError(.io, "cannot create \(what) \(path): \(reason)")
        }
        defer { close(fd) }
        try writeFully(fd: fd, contents, what: "\(what) \(path)")
        guard fsync(fd) == 0 else { throw CNBackupError(.io, "cannot sync \(what) \(path)") }
    }

    package static func readKeyLine(path: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CNBackupError(.invalidInput, "cannot read key file \(path): it does not exist or is not readable")
        }
        var bytes = Array(data)
        defer { wipe(&bytes) }
        let text = String(decoding: bytes, as: UTF8.self)
        let lines = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty && !$0.hasPrefix("#") }
        guard lines.count == 1, let line = lines.first else {
            throw CNBackupError(.invalidInput, "key file \(path) must hold exactly one key line (found \(lines.count))")
        }
        return line
    }

    /// Loads an identity (X25519 or symmetric private key) to open objects with.
    public static func loadIdentity(path: String) throws -> Identity {
        let line = try readKeyLine(path: path)
        try requirePrivateMode(path: path, what: "identity file")
        let (kind, key) = try KeyText.decode(line, expecting: [.x25519Secret, .symmetricSecret], what: "identity file \(path)")
        if kind == .symmetricSecret { return .symmetric(try SymmetricKey(key)) }
        return .x25519(secret: SecretBytes(key), publicKey: try X25519.publicKey(privateKey: key))
    }

    /// A private key file must not be open to others, as ssh refuses: readable by others is
    /// refused always; readable by the group (or writable by anyone else) when the file is this
    /// user's own. A Secret mounted with `defaultMode: 0400` and the pod's `fsGroup` is root's,
    /// mode 0440, readable by the pod's group only: accepted.
    package static func requirePrivateMode(path: String, what: String) throws {
        var status = stat()
        guard stat(path, &status) == 0 else {
            throw CNBackupError(.invalidInput, "cannot read \(what) \(path): it does not exist or is not readable")
        }
        let mode = status.st_mode & 0o777
        if mode & 0o004 != 0 || (status.st_uid == geteuid() && mode & 0o077 != 0) {
            throw CNBackupError(.invalidInput, "\(what) \(path) is open to others (mode \(String(mode, radix: 8))): a secret must be readable by its owner only (or by its group, when another user owns it); run chmod 600 \(path)")
        }
    }

    /// Loads a symmetric key file to seal to.
    public static func loadSymmetricRecipient(path: String) throws -> Recipient {
        try requirePrivateMode(path: path, what: "symmetric key file")
        let line = try readKeyLine(path: path)
        let (_, key) = try KeyText.decode(line, expecting: [.symmetricSecret], what: "symmetric key file \(path)")
        return .symmetric(try SymmetricKey(key))
    }

    /// Loads the dedup secret (`dedup.keyFile`): chunk ids and chunk boundaries come from it.
    public static func loadDedupSecret(path: String) throws -> DedupSecret {
        try requirePrivateMode(path: path, what: "dedup key file")
        let line = try readKeyLine(path: path)
        let (_, key) = try KeyText.decode(line, expecting: [.dedupSecret], what: "dedup key file \(path)")
        return try DedupSecret(key)
    }

    /// Loads the node's Ed25519 signing key.
    public static func loadSigningKey(path: String) throws -> SigningKey {
        try requirePrivateMode(path: path, what: "signing key file")
        let line = try readKeyLine(path: path)
        let (_, key) = try KeyText.decode(line, expecting: [.ed25519Secret], what: "signing key file \(path)")
        return SigningKey(secret: SecretBytes(key), publicKey: SignerKey(bytes: try Ed25519.publicKey(privateKey: key)))
    }
}

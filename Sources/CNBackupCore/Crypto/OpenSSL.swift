import COpenSSL
import Foundation

// The one door to libcrypto: every OpenSSL call of cnbackup is in this file. Each handle has one
// owner that frees it in deinit, pointers never leave the closure that lends them, and every
// return code is checked where the call is made.

/// Drains OpenSSL's thread-local error queue into one line for an error's cause.
private func openSSLErrors() -> String {
    var parts: [String] = []
    while true {
        let code = ERR_get_error()
        if code == 0 { break }
        var buffer = [UInt8](repeating: 0, count: 256)
        buffer.withUnsafeMutableBufferPointer { ERR_error_string_n(code, $0.baseAddress.map { UnsafeMutableRawPointer($0).assumingMemoryBound(to: CChar.self) }, $0.count) }
        parts.append(String(decoding: buffer.prefix { $0 != 0 }, as: UTF8.self))
    }
    return parts.joined(separator: "; ")
}

private func cryptoFailure(_ what: String) -> CNBackupError {
    CNBackupError(.crypto, "\(what) failed in OpenSSL", cause: openSSLErrors())
}

/// Random bytes from OpenSSL's CSPRNG.
package func randomBytes(_ count: Int) throws -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: count)
    guard count == 0 || RAND_bytes(&bytes, Int32(count)) == 1 else { throw cryptoFailure("RAND_bytes") }
    return bytes
}

/// Overwrites `bytes` with zeros in a way the optimiser keeps.
package func wipe(_ bytes: inout [UInt8]) {
    bytes.withUnsafeMutableBytes { buffer in
        if let base = buffer.baseAddress { OPENSSL_cleanse(base, buffer.count) }
    }
}

/// HKDF-SHA256 (RFC 5869).
package func hkdfSHA256(ikm: [UInt8], salt: [UInt8], info: [UInt8], count: Int) throws -> [UInt8] {
    var out = [UInt8](repeating: 0, count: count)
    // OpenSSL rejects a NULL salt pointer even when its length is 0: lend a real one.
    let saltBytes = salt.isEmpty ? [UInt8](repeating: 0, count: 1) : salt
    let ok = ikm.withUnsafeBufferPointer { k in
        saltBytes.withUnsafeBufferPointer { s in
            info.withUnsafeBufferPointer { i in
                cnb_hkdf_sha256(k.baseAddress, k.count, s.baseAddress, salt.count,
                                i.baseAddress, i.count, &out, count)
            }
        }
    }
    guard ok == 1 else { throw cryptoFailure("HKDF-SHA256") }
    return out
}

/// HMAC-SHA256.
package func hmacSHA256(key: [UInt8], data: [UInt8]) throws -> [UInt8] {
    var out = [UInt8](repeating: 0, count: 32)
    let ok = key.withUnsafeBufferPointer { k in
        data.withUnsafeBufferPointer { d in
            cnb_hmac_sha256(k.baseAddress, k.count, d.baseAddress, d.count, &out)
        }
    }
    guard ok == 1 else { throw cryptoFailure("HMAC-SHA256") }
    return out
}

/// Incremental SHA-256.
public final class SHA256Hasher {
    private let context: OpaquePointer

    public init() {
        // Allocation failure here means the process is out of memory; nothing sensible remains.
        guard let context = EVP_MD_CTX_new(), EVP_DigestInit_ex(context, EVP_sha256(), nil) == 1 else {
            fatalError("OpenSSL could not set up SHA-256: \(openSSLErrors())")
        }
        self.context = context
    }

    deinit { EVP_MD_CTX_free(context) }

    public func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    public func update(_ buffer: UnsafeRawBufferPointer) {
        guard buffer.count > 0 else { return }
        _ = EVP_DigestUpdate(context, buffer.baseAddress, buffer.count)
    }

    public func finalize() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        _ = EVP_DigestFinal_ex(context, &out, &length)
        return out
    }

    public static func hash(_ bytes: [UInt8]) -> [UInt8] {
        let hasher = SHA256Hasher()
        hasher.update(bytes)
        return hasher.finalize()
    }
}

/// AES-256-GCM with a 12-byte nonce and a 16-byte tag, one key per instance; the cipher context
/// is kept between calls so each segment costs no set-up.
package final class AES256GCM {
    package static let tagSize = 16
    private let context: OpaquePointer

    package init(key: [UInt8]) throws {
        precondition(key.count == 32, "AES-256 takes a 32-byte key")
        guard let context = EVP_CIPHER_CTX_new() else { throw cryptoFailure("EVP_CIPHER_CTX_new") }
        self.context = context
        // The same context serves sealing and opening: EVP_CipherInit_ex with enc = -1 keeps the
        // direction, so each call below sets it.
        guard EVP_CipherInit_ex(context, EVP_aes_256_gcm(), nil, key, nil, 1) == 1 else {
            throw cryptoFailure("AES-256-GCM key set-up")
        }
    }

    deinit { EVP_CIPHER_CTX_free(context) }

    /// Seals `plaintext`, appending ciphertext and tag to `output`.
    package func seal(nonce: [UInt8], plaintext: UnsafeRawBufferPointer, aad: [UInt8] = [], into output: inout [UInt8]) throws {
        precondition(nonce.count == 12)
        guard EVP_CipherInit_ex(context, nil, nil, nil, nonce, 1) == 1 else { throw cryptoFailure("AES-GCM nonce") }
        var length: Int32 = 0
        if !aad.isEmpty {
            guard EVP_CipherUpdate(context, nil, &length, aad, Int32(aad.count)) == 1 else { throw cryptoFailure("AES-GCM AAD") }
        }
        let start = output.count
        output.append(contentsOf: repeatElement(0, count: plaintext.count + Self.tagSize))
        try output.withUnsafeMutableBufferPointer { out in
            let base = out.baseAddress! + start
            if plaintext.count > 0 {
                guard EVP_CipherUpdate(context, base, &length,
                                       plaintext.baseAddress!.assumingMemoryBound(to: UInt8.self),
                                       Int32(plaintext.count)) == 1 else { throw cryptoFailure("AES-GCM encrypt") }
            }
            var finalLength: Int32 = 0
            guard EVP_CipherFinal_ex(context, base + plaintext.count, &finalLength) == 1,
                  cnb_gcm_get_tag(context, base + plaintext.count) == 1 else {
                throw cryptoFailure("AES-GCM finish")
            }
        }
    }

    /// Opens `sealed` (ciphertext followed by its tag), appending the plaintext to `output`.
    /// Returns false, appending nothing, when the tag does not authenticate.
    package func open(nonce: [UInt8], sealed: UnsafeRawBufferPointer, aad: [UInt8] = [], into output: inout [UInt8]) throws -> Bool {
        precondition(nonce.count == 12)
        guard sealed.count >= Self.tagSize else { return false }
        let textCount = sealed.count - Self.tagSize
        let base = sealed.baseAddress!.assumingMemoryBound(to: UInt8.self)
        guard EVP_CipherInit_ex(context, nil, nil, nil, nonce, 0) == 1 else { throw cryptoFailure("AES-GCM nonce") }
        var length: Int32 = 0
        if !aad.isEmpty {
            guard EVP_CipherUpdate(context, nil, &length, aad, Int32(aad.count)) == 1 else { throw cryptoFailure("AES-GCM AAD") }
        }
        let start = output.count
        output.append(contentsOf: repeatElement(0, count: textCount))
        let ok = output.withUnsafeMutableBufferPointer { out -> Bool in
            if textCount > 0 {
                guard EVP_CipherUpdate(context, out.baseAddress! + start, &length, base, Int32(textCount)) == 1 else { return false }
            }
            guard cnb_gcm_set_tag(context, base + textCount) == 1 else { return false }
            var finalLength: Int32 = 0
            return EVP_CipherFinal_ex(context, out.baseAddress! + start + textCount, &finalLength) == 1
        }
        if !ok {
            // Unauthenticated plaintext never leaves this function.
            output.withUnsafeMutableBytes { OPENSSL_cleanse($0.baseAddress! + start, textCount) }
            output.removeSubrange(start...)
            _ = openSSLErrors()
        }
        return ok
    }

    // Piecewise sealing and opening: a segment whose bytes lie in several chunks is processed
    // slice by slice, straight into its output buffer, instead of being concatenated first.

    /// Starts a segment: `encrypt` seals, otherwise opens.
    package func begin(nonce: [UInt8], encrypt: Bool) throws {
        precondition(nonce.count == 12)
        guard EVP_CipherInit_ex(context, nil, nil, nil, nonce, encrypt ? 1 : 0) == 1 else { throw cryptoFailure("AES-GCM nonce") }
    }

    /// Encrypts or decrypts `input` to `output` (which must have room for `input.count` bytes).
    package func update(_ input: UnsafeRawBufferPointer, into output: UnsafeMutablePointer<UInt8>) throws {
        guard input.count > 0 else { return }
        var length: Int32 = 0
        guard EVP_CipherUpdate(context, output, &length, input.baseAddress!.assumingMemoryBound(to: UInt8.self),
                               Int32(input.count)) == 1, Int(length) == input.count else { throw cryptoFailure("AES-GCM update") }
    }

    /// Ends a sealed segment, writing its 16-byte tag to `tag`.
    package func finishSeal(tag: UnsafeMutablePointer<UInt8>) throws {
        var finalLength: Int32 = 0
        // GCM's final step writes no bytes; the tag's room serves as its output buffer.
        guard EVP_CipherFinal_ex(context, tag, &finalLength) == 1, finalLength == 0, cnb_gcm_get_tag(context, tag) == 1 else {
            throw cryptoFailure("AES-GCM finish")
        }
    }

    /// Ends an opened segment: true only when `tag` authenticates everything passed to `update`.
    /// On false the caller must wipe and drop what `update` wrote.
    package func finishOpen(tag: [UInt8]) -> Bool {
        precondition(tag.count == Self.tagSize)
        var finalLength: Int32 = 0
        var none: UInt8 = 0   // GCM's final step writes no bytes
        let ok = tag.withUnsafeBytes { cnb_gcm_set_tag(context, $0.baseAddress!.assumingMemoryBound(to: UInt8.self)) == 1 }
            && EVP_CipherFinal_ex(context, &none, &finalLength) == 1 && finalLength == 0
        if !ok { _ = openSSLErrors() }
        return ok
    }

    package static func seal(key: [UInt8], nonce: [UInt8], plaintext: [UInt8], aad: [UInt8] = []) throws -> [UInt8] {
        var out: [UInt8] = []
        try plaintext.withUnsafeBytes { try AES256GCM(key: key).seal(nonce: nonce, plaintext: $0, aad: aad, into: &out) }
        return out
    }

    package static func open(key: [UInt8], nonce: [UInt8], sealed: [UInt8], aad: [UInt8] = []) throws -> [UInt8]? {
        var out: [UInt8] = []
        let ok = try sealed.withUnsafeBytes { try AES256GCM(key: key).open(nonce: nonce, sealed: $0, aad: aad, into: &out) }
        return ok ? out : nil
    }
}

/// An EVP_PKEY made from raw key bytes, freed with its owner.
private final class RawKey {
    let pointer: OpaquePointer

    init(type: Int32, privateKey: [UInt8]) throws {
        guard let key = EVP_PKEY_new_raw_private_key(type, nil, privateKey, privateKey.count) else {
            throw cryptoFailure("loading a private key")
        }
        pointer = key
    }

    init(type: Int32, publicKey: [UInt8]) throws {
        guard let key = EVP_PKEY_new_raw_public_key(type, nil, publicKey, publicKey.count) else {
            throw cryptoFailure("loading a public key")
        }
        pointer = key
    }

    deinit { EVP_PKEY_free(pointer) }

    func rawPublicKey() throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        var length = 32
        guard EVP_PKEY_get_raw_public_key(pointer, &out, &length) == 1, length == 32 else {
            throw cryptoFailure("deriving a public key")
        }
        return out
    }
}

/// X25519 (RFC 7748): private keys are 32 random bytes, clamped by OpenSSL when used.
package enum X25519 {
    package static func publicKey(privateKey: [UInt8]) throws -> [UInt8] {
        try RawKey(type: EVP_PKEY_X25519, privateKey: privateKey).rawPublicKey()
    }

    /// The shared secret; throws when it is all zeros (a low-order public key), as RFC 7748 §6.1
    /// allows and age requires.
    package static func sharedSecret(privateKey: [UInt8], peerPublicKey: [UInt8]) throws -> [UInt8] {
        let mine = try RawKey(type: EVP_PKEY_X25519, privateKey: privateKey)
        let peer = try RawKey(type: EVP_PKEY_X25519, publicKey: peerPublicKey)
        guard let context = EVP_PKEY_CTX_new(mine.pointer, nil) else { throw cryptoFailure("X25519 set-up") }
        defer { EVP_PKEY_CTX_free(context) }
        var out = [UInt8](repeating: 0, count: 32)
        var length = 32
        guard EVP_PKEY_derive_init(context) == 1,
              EVP_PKEY_derive_set_peer(context, peer.pointer) == 1,
              EVP_PKEY_derive(context, &out, &length) == 1, length == 32 else {
            throw CNBackupError(.crypto, "X25519 key agreement failed: the public key is invalid or of low order",
                                cause: openSSLErrors())
        }
        guard out.contains(where: { $0 != 0 }) else {
            throw CNBackupError(.crypto, "X25519 gave an all-zero shared secret: the public key is of low order")
        }
        return out
    }
}

/// Ed25519 (RFC 8032), pure (no pre-hash), through EVP_DigestSign.
package enum Ed25519 {
    package static func publicKey(privateKey: [UInt8]) throws -> [UInt8] {
        try RawKey(type: EVP_PKEY_ED25519, privateKey: privateKey).rawPublicKey()
    }

    package static func sign(privateKey: [UInt8], message: [UInt8]) throws -> [UInt8] {
        let key = try RawKey(type: EVP_PKEY_ED25519, privateKey: privateKey)
        guard let context = EVP_MD_CTX_new() else { throw cryptoFailure("EVP_MD_CTX_new") }
        defer { EVP_MD_CTX_free(context) }
        var signature = [UInt8](repeating: 0, count: 64)
        var length = 64
        guard EVP_DigestSignInit(context, nil, nil, nil, key.pointer) == 1,
              EVP_DigestSign(context, &signature, &length, message, message.count) == 1, length == 64 else {
            throw cryptoFailure("Ed25519 signing")
        }
        return signature
    }

    package static func verify(publicKey: [UInt8], message: [UInt8], signature: [UInt8]) -> Bool {
        guard signature.count == 64, let key = try? RawKey(type: EVP_PKEY_ED25519, publicKey: publicKey),
              let context = EVP_MD_CTX_new() else { _ = openSSLErrors(); return false }
        defer { EVP_MD_CTX_free(context) }
        let ok = EVP_DigestVerifyInit(context, nil, nil, nil, key.pointer) == 1
            && EVP_DigestVerify(context, signature, 64, message, message.count) == 1
        _ = openSSLErrors()
        return ok
    }
}

/// RSASSA-PKCS1-v1_5 with SHA-256 (JWS "RS256"), for the assertion a Google service-account key
/// signs to get an access token. Deterministic, so known answers test it.
package enum RS256 {
    /// Signs `message` with the RSA private key in `pem` (PKCS#8 or PKCS#1 PEM text).
    package static func sign(pemPrivateKey pem: [UInt8], message: [UInt8]) throws -> [UInt8] {
        let key = pem.withUnsafeBufferPointer { buffer in
            buffer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: buffer.count) {
                cnb_private_key_from_pem($0, Int32(buffer.count))
            }
        }
        guard let key else {
            _ = openSSLErrors()  // says nothing a message should carry about the key's bytes
            throw CNBackupError(.invalidInput, "the private key is not a PEM private key")
        }
        defer { EVP_PKEY_free(key) }
        guard EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA else {
            throw CNBackupError(.invalidInput, "the private key is not an RSA key (RS256 needs one)")
        }
        guard let context = EVP_MD_CTX_new() else { throw cryptoFailure("EVP_MD_CTX_new") }
        defer { EVP_MD_CTX_free(context) }
        var length = 0
        guard EVP_DigestSignInit(context, nil, EVP_sha256(), nil, key) == 1,
              EVP_DigestSign(context, nil, &length, message, message.count) == 1 else {
            throw cryptoFailure("RS256 signing")
        }
        var signature = [UInt8](repeating: 0, count: length)
        guard EVP_DigestSign(context, &signature, &length, message, message.count) == 1 else {
            throw cryptoFailure("RS256 signing")
        }
        return Array(signature.prefix(length))
    }
}

/// Compares two byte strings in time that depends only on their length.
package func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    if a.isEmpty { return true }
    return CRYPTO_memcmp(a, b, a.count) == 0
}

/// MD5, only for the `Content-MD5` header object stores check uploads against; never for security.
package func md5(_ bytes: [UInt8]) throws -> [UInt8] {
    var out = [UInt8](repeating: 0, count: 16)
    var length: UInt32 = 0
    let ok = bytes.withUnsafeBytes { EVP_Digest($0.baseAddress, $0.count, &out, &length, EVP_md5(), nil) }
    guard ok == 1, length == 16 else { throw cryptoFailure("MD5") }
    return out
}

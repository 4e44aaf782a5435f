import Foundation
import CNBackupCore
import CNBackupStorage

/// The detached signature beside each manifest (`manifest-<16 hex>.json.sig`) and drill receipt:
/// Ed25519, by the node's signing key or a drill key. A text file:
///
///     cnbackup-signature-v2
///     use: manifest
///     signer: cnb1-ed25519-pub-...
///     signature: <base64 of 64 bytes>
///
/// A version 2 signature covers `cnbackup-signature-v2 <use>`, a zero byte, then the exact bytes
/// signed, so a signature made for one use (a drill receipt, a journal) never verifies as another
/// (a manifest). Version 1 (no `use:` line, the bytes alone) is what sets and receipts written
/// before carry; it is read, never written.
public struct ManifestSignature: Sendable, Equatable {
    /// What a signature vouches for.
    public enum Use: String, Sendable {
        case manifest
        case drillReceipt = "drill-receipt"
        case journal
    }

    public let signer: SignerKey
    public let signature: [UInt8]
    /// nil: a version 1 signature, over the bytes alone.
    public let use: Use?

    package init(signer: SignerKey, signature: [UInt8], use: Use?) {
        self.signer = signer
        self.signature = signature
        self.use = use
    }

    package static let headerV1 = "cnbackup-signature-v1"
    package static let headerV2 = "cnbackup-signature-v2"

    /// What a version 2 signature for `use` covers.
    static func message(_ bytes: [UInt8], use: Use) -> [UInt8] {
        Array("\(headerV2) \(use.rawValue)".utf8) + [0] + bytes
    }

    public static func sign(_ bytes: [UInt8], with key: SigningKey, use: Use) throws -> ManifestSignature {
        ManifestSignature(signer: key.publicKey, signature: try Ed25519.sign(privateKey: key.secret.bytes, message: message(bytes, use: use)),
                          use: use)
    }

    public func encoded() -> [UInt8] {
        let signature = Data(signature).base64EncodedString()
        guard let use else { return Array("\(Self.headerV1)\nsigner: \(signer)\nsignature: \(signature)\n".utf8) }
        return Array("\(Self.headerV2)\nuse: \(use.rawValue)\nsigner: \(signer)\nsignature: \(signature)\n".utf8)
    }

    public static func decode(_ bytes: [UInt8]) throws -> ManifestSignature {
        var lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n").map(String.init)
        let malformed = CNBackupError(.authentication, "the signature file is malformed")
        var use: Use?
        if lines.first == headerV2 {
            guard lines.count == 4, lines[1].hasPrefix("use: "), let named = Use(rawValue: String(lines[1].dropFirst("use: ".count))) else { throw malformed }
            use = named
            lines.remove(at: 1)
        } else if lines.first != headerV1 {
            throw malformed
        }
        guard lines.count == 3, lines[1].hasPrefix("signer: "), lines[2].hasPrefix("signature: "),
              let signature = Data(base64Encoded: String(lines[2].dropFirst("signature: ".count))), signature.count == 64 else {
            throw malformed
        }
        return ManifestSignature(signer: try SignerKey(parsing: String(lines[1].dropFirst("signer: ".count))),
                                 signature: Array(signature), use: use)
    }

    /// Whether this signature vouches for `bytes` as `use`: a version 2 signature only for the use
    /// it names, a version 1 signature (written before uses were named) over the bytes alone.
    public func isValid(for bytes: [UInt8], as expected: Use) -> Bool {
        guard let use else { return Ed25519.verify(publicKey: signer.bytes, message: bytes, signature: signature) }
        return use == expected && Ed25519.verify(publicKey: signer.bytes, message: Self.message(bytes, use: use), signature: signature)
    }
}

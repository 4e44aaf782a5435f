import Foundation
import CNBackupCore
import CNBackupStorage

/// The detached signature beside each manifest (`manifest.json.sig`): Ed25519 over the manifest's
/// exact bytes. A text file:
///
///     cnbackup-signature-v1
///     signer: cnb1-ed25519-pub-...
///     signature: <base64 of 64 bytes>
public struct ManifestSignature: Sendable, Equatable {
    public let signer: SignerKey
    public let signature: [UInt8]

    package init(signer: SignerKey, signature: [UInt8]) {
        self.signer = signer
        self.signature = signature
    }

    package static let header = "cnbackup-signature-v1"

    public static func sign(_ manifestBytes: [UInt8], with key: SigningKey) throws -> ManifestSignature {
        ManifestSignature(signer: key.publicKey, signature: try Ed25519.sign(privateKey: key.secret.bytes, message: manifestBytes))
    }

    public func encoded() -> [UInt8] {
        Array("\(Self.header)\nsigner: \(signer)\nsignature: \(Data(signature).base64EncodedString())\n".utf8)
    }

    public static func decode(_ bytes: [UInt8]) throws -> ManifestSignature {
        let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n").map(String.init)
        guard lines.count == 3, lines[0] == header, lines[1].hasPrefix("signer: "), lines[2].hasPrefix("signature: "),
              let signature = Data(base64Encoded: String(lines[2].dropFirst("signature: ".count))), signature.count == 64 else {
            throw CNBackupError(.authentication, "the manifest signature file is malformed")
        }
        return ManifestSignature(signer: try SignerKey(parsing: String(lines[1].dropFirst("signer: ".count))),
                                 signature: Array(signature))
    }

    public func isValid(for manifestBytes: [UInt8]) -> Bool {
        Ed25519.verify(publicKey: signer.bytes, message: manifestBytes, signature: signature)
    }
}

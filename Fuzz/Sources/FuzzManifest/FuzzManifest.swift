import CNBackup
import FuzzSupport
import CNBackupCore
import CNBackupStorage
import CNBackupTesting
import CNBackupCatalog

// The manifest and signature reader: `manifest.json.sig` parsing and Ed25519 verification against
// a pinned signer, manifest JSON decoding, the catalog's load of a set (as `list`, `verify`,
// `prune` and `restore` do) and, for a manifest that is trusted, the shallow verifier over it.
//
// Input: SIGNATURE-FILE 0x00 MANIFEST-BYTES. Without a 0x00 the whole input is the manifest and
// the harness signs it with the pinned key, so mutated manifests also reach the code that trusts
// them; an empty signature part means the set has no signature file.

let signingKey = FuzzKeys.load(FuzzKeys.signingSecret, KeyFile.loadSigningKey(path:))
/// Where a manifest sits when it does not name a place of its own.
let fallbackLayout = SetLayout(node: "fuzz-node", epoch: Epoch(migrationId: 0, serial: 0), setId: "20260101T000000Z-00000000")

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzManifest(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = Array(UnsafeBufferPointer(start: data, count: data == nil ? 0 : size))
    let signatureBytes: [UInt8]?
    let manifestBytes: [UInt8]
    if let split = input.firstIndex(of: 0) {
        signatureBytes = Array(input[..<split])
        manifestBytes = Array(input[(split + 1)...])
    } else {
        do { signatureBytes = try ManifestSignature.sign(input, with: signingKey, use: .manifest).encoded() } catch {
            fatalError("signing failed: \(error)")
        }
        manifestBytes = input
    }

    // The decoders on their own, with their round trips: what they accept, they write back the same.
    var decoded: Manifest?
    expectRefusalOrSuccess("Manifest.decode") {
        let manifest = try Manifest.decode(manifestBytes)
        decoded = manifest
        _ = manifest.captureStartDate
        let again = try Manifest.decode(try manifest.encoded())
        precondition(again == manifest, "a decoded manifest does not survive encode and decode")
    }
    if let signatureBytes {
        expectRefusalOrSuccess("ManifestSignature.decode") {
            let signature = try ManifestSignature.decode(signatureBytes)
            _ = signature.isValid(for: manifestBytes, as: .manifest)
            let again = try ManifestSignature.decode(signature.encoded())
            precondition(again == signature, "a decoded signature does not survive encode and decode")
        }
    }

    // The catalog reads the set from a store, where the writer would have put it.
    var layout = fallbackLayout
    if let decoded {
        let own = SetLayout(node: decoded.node.name, epoch: Epoch(migrationId: decoded.epoch.migrationId, serial: decoded.epoch.serial),
                            setId: decoded.setId)
        if let parsed = SetLayout.parse(key: own.key(relative: SetLayout.legacyManifestName)), parsed.layout == own { layout = own }
    }
    let store = MemoryStore()
    // Where a manifest that does not name itself (`manifestName`) is trusted: the older sets' name.
    store.plant(key: layout.key(relative: SetLayout.legacyManifestName), manifestBytes)
    if let signatureBytes, !signatureBytes.isEmpty {
        store.plant(key: layout.key(relative: SetLayout.signatureName(of: SetLayout.legacyManifestName)), signatureBytes)
    }
    let catalog = Catalog(store: store, signers: [signingKey.publicKey])
    expectRefusalOrSuccess("Catalog.entries") {
        for entry in try catalog.entries() {
            _ = entry.signature.description
            guard entry.isTrusted else { continue }
            _ = entry.isCompleteBackup
            let report = try Verifier(catalog: catalog).verify(setId: entry.setId, node: entry.layout.node)
            _ = report.ok
        }
    }
    return 0
}

@main enum FuzzManifestMain {
    static func main() {
        _ = signingKey  // loaded before the first input, so no input is charged with it
        runLibFuzzer(fuzzManifest)
    }
}

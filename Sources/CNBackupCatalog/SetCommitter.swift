import Foundation
import CNBackupCore
import CNBackupStorage

/// The one way a set is committed, for `run`, `upload` and `recover`: sign the manifest, write
/// the signature, then the manifest, each only if absent. The manifest is the commit point, so a
/// set never has a manifest without its signature beside it, and nothing stored is ever replaced.
package struct SetCommitter {
    package let store: any ObjectStore

    package init(store: any ObjectStore) {
        self.store = store
    }

    package func commit(_ manifest: Manifest, layout: SetLayout, signingKey: SigningKey) throws {
        let bytes = try manifest.encoded()
        let signature = try ManifestSignature.sign(bytes, with: signingKey)
        let tags = Self.tags(layout: layout, component: "manifest")
        try store.putBytes(key: layout.signatureKey, signature.encoded(), options: PutOptions(tags: tags, ifAbsent: true))
        try store.putBytes(key: layout.manifestKey, bytes, options: PutOptions(tags: tags, ifAbsent: true))
    }

    /// Labels for the storage's own lifecycle rules; never trusted on reading (they are unsigned).
    package static func tags(layout: SetLayout, component: String) -> [String: String] {
        ["cnb-node": layout.node, "cnb-migration-id": "\(layout.epoch.migrationId)", "cnb-serial": "\(layout.epoch.serial)",
         "cnb-set-id": layout.setId, "cnb-component": component]
    }
}

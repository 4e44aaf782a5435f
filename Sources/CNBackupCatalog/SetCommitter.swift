import Foundation
import CNBackupCore
import CNBackupStorage

/// The one way a set is committed, for `run`, `upload` and `recover`: name the manifest (a random
/// part chosen now, recorded inside it), sign it, write the signature, then the manifest, each only
/// if absent. The manifest is the commit point, so a set never has a manifest without its signature
/// beside it, and nothing stored is ever replaced. A name someone occupied first (the bucket's
/// writer can list a new set's folder) is given up for a new one: squatting cannot fail a commit.
package struct SetCommitter {
    package let store: any ObjectStore

    package init(store: any ObjectStore) {
        self.store = store
    }

    /// Returns the manifest as committed: with the name it was stored under.
    @discardableResult
    package func commit(_ manifest: Manifest, layout: SetLayout, signingKey: SigningKey) throws -> Manifest {
        let tags = Self.tags(layout: layout, component: "manifest")
        var attempts = 0
        while true {
            attempts += 1
            var named = manifest
            named.manifestName = try SetLayout.newManifestName()
            let bytes = try named.encoded()
            let signature = try ManifestSignature.sign(bytes, with: signingKey, use: .manifest)
            do {
                try store.putBytes(key: layout.key(relative: SetLayout.signatureName(of: named.manifestName!)), signature.encoded(),
                                   options: PutOptions(tags: tags, ifAbsent: true))
                try store.putBytes(key: layout.key(relative: named.manifestName!), bytes, options: PutOptions(tags: tags, ifAbsent: true))
                return named
            } catch let error as CNBackupError where error.code == .alreadyExists && attempts < 4 {
                continue
            }
        }
    }

    /// Labels for the storage's own lifecycle rules; never trusted on reading (they are unsigned).
    package static func tags(layout: SetLayout, component: String) -> [String: String] {
        ["cnb-node": layout.node, "cnb-migration-id": "\(layout.epoch.migrationId)", "cnb-serial": "\(layout.epoch.serial)",
         "cnb-set-id": layout.setId, "cnb-component": component]
    }
}

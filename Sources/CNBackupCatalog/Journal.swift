import Foundation
import CNBackupCore
import CNBackupStorage

/// The run's word on each object as it stores it, before the manifest exists: the component's
/// record (its key, sealed header's SHA-256, sizes and digests), signed by the node's key for the
/// use `journal` (docs/FORMAT.md), written beside the object as `journal-<component>-<16 hex>.json`
/// and its `.sig`. When a run dies before its manifest, `recover` signs only objects the journal
/// vouches for: anyone who can write to the bucket can seal an object to the public recipients and
/// name it after a set, but cannot sign its journal entry.
public struct JournalEntry: Codable, Sendable, Equatable {
    public static let currentFormatVersion = 1

    public var formatVersion: Int
    public var setId: String
    public var node: String
    public var epoch: Epoch
    public var record: ComponentRecord

    public init(layout: SetLayout, record: ComponentRecord) {
        formatVersion = Self.currentFormatVersion
        setId = layout.setId; node = layout.node; epoch = layout.epoch
        self.record = record
    }

    public static func isJournalName(_ name: String) -> Bool {
        name.hasPrefix("journal-") && name.hasSuffix(".json")
    }

    /// Writes the entry and its signature, each only if absent (under a fresh name).
    public static func write(_ entry: JournalEntry, layout: SetLayout, store: any ObjectStore, key: SigningKey) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let bytes = Array(try encoder.encode(entry))
        let name = "journal-\(entry.record.name)-\((try randomBytes(8)).hex).json"
        let tags = SetCommitter.tags(layout: layout, component: entry.record.name)
        try store.putBytes(key: layout.key(relative: name + SetLayout.signatureSuffix),
                           try ManifestSignature.sign(bytes, with: key, use: .journal).encoded(), options: PutOptions(tags: tags, ifAbsent: true))
        try store.putBytes(key: layout.key(relative: name), bytes, options: PutOptions(tags: tags, ifAbsent: true))
    }

    /// The entries of a set's folder (its journal files listed in `names`) that `signer` signed
    /// for this very set, by the object key each vouches for. Entries that do not verify are left
    /// out, with the reason.
    public static func load(names: [String], layout: SetLayout, store: any ObjectStore, signer: SignerKey) -> (entries: [String: JournalEntry], refused: [String]) {
        var entries: [String: JournalEntry] = [:], refused: [String] = []
        for name in names where isJournalName(name) {
            guard let bytes = try? store.getBytes(key: layout.key(relative: name), limit: 1 << 20),
                  let signatureBytes = try? store.getBytes(key: layout.key(relative: name + SetLayout.signatureSuffix), limit: 4096),
                  let signature = try? ManifestSignature.decode(signatureBytes),
                  signature.signer == signer, signature.isValid(for: bytes, as: .journal),
                  let entry = try? JSONDecoder().decode(JournalEntry.self, from: Data(bytes)) else {
                refused.append("\(name): not signed by the node's key as a journal entry")
                continue
            }
            guard entry.setId == layout.setId, entry.node == layout.node, entry.epoch == layout.epoch else {
                refused.append("\(name): an entry of set \(entry.setId), not of this one")
                continue
            }
            entries[entry.record.objectKey] = entry
        }
        return (entries, refused)
    }
}

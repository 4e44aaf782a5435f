import Foundation
import CNBackupCore

/// Per-table row counts, sealed to the set's recipients. Table names and their sizes tell whoever
/// reads the bucket what a node holds and how it grows; the manifest and the drill receipts are
/// not encrypted, so only the totals stay in clear, and the counts themselves open with the keys
/// that open the set (a drill holds them). The sealed bytes are an ordinary sealed object
/// (docs/FORMAT.md) whose plaintext is the counts as JSON: `cnbackup decrypt` opens them too.
public struct SealedRowCounts: Codable, Sendable, Equatable {
    public var tables: Int
    public var rows: Int64
    /// Base64 of the sealed object.
    public var sealed: String

    public static func seal(_ counts: [String: Int64], to recipients: [Recipient]) throws -> SealedRowCounts {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let bytes = try SealingStream(MemoryStream(Array(try encoder.encode(counts))), recipients: recipients,
                                      description: ObjectDescription(component: "row-counts")).readAll(limit: 256 << 20)
        return SealedRowCounts(tables: counts.count, rows: counts.values.reduce(0, +), sealed: Data(bytes).base64EncodedString())
    }

    /// The counts; throws when no identity opens them or they disagree with the totals in clear.
    public func open(with identities: [Identity]) throws -> [String: Int64] {
        guard let data = Data(base64Encoded: sealed) else { throw CNBackupError(.integrity, "the sealed row counts are not base64") }
        let plain = try OpeningStream(MemoryStream(Array(data)), identities: identities).readAll(limit: 256 << 20)
        let counts = try JSONDecoder().decode([String: Int64].self, from: Data(plain))
        guard counts.count == tables, counts.values.reduce(0, +) == rows else {
            throw CNBackupError(.integrity, "the sealed row counts disagree with their totals")
        }
        return counts
    }
}

extension Manifest {
    /// This manifest with every component's sealed row counts opened into `rowCounts` (in memory).
    public func openingRowCounts(with identities: [Identity]) throws -> Manifest {
        var opened = self
        for index in opened.components.indices {
            if let sealed = opened.components[index].sealedRowCounts {
                opened.components[index].rowCounts = try sealed.open(with: identities)
            }
        }
        return opened
    }
}

extension DrillReceipt {
    /// The receipt as stored: per-table counts sealed to `recipients`, totals in clear.
    public func sealingRowCounts(to recipients: [Recipient]) throws -> DrillReceipt {
        var sealed = self
        for index in sealed.components.indices {
            if let counts = sealed.components[index].rowCounts {
                sealed.components[index].sealedRowCounts = try SealedRowCounts.seal(counts, to: recipients)
                sealed.components[index].rowCounts = nil
            }
        }
        return sealed
    }

    /// The receipt with its sealed counts opened into `rowCounts`; counts no identity opens stay sealed.
    public func openingRowCounts(with identities: [Identity]) -> DrillReceipt {
        var opened = self
        for index in opened.components.indices {
            if let sealed = opened.components[index].sealedRowCounts, let counts = try? sealed.open(with: identities) {
                opened.components[index].rowCounts = counts
            }
        }
        return opened
    }
}

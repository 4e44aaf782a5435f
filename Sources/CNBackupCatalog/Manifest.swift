import Foundation
import CNBackupCore
import CNBackupStorage

/// The synchronizer epoch a backup belongs to: a migration (major upgrade) increments
/// What a component is to its node: the role decides the capture order and the restore order.
/// What a component is in a Canton node; the plan orders captures by role, never by file order.
public enum ComponentRole: String, Codable, Sendable, CaseIterable {
    case apps, participant, sequencer, mediator, identities, cometbft, other
}

/// Which rule orders a run's captures besides the apps barrier (docs/CANTON.md, "Canton's own order").
/// `splice`: the sequencer is captured beside the apps, as Splice's SV backup does (a decentralized
/// synchronizer's sequencer catches up from its peers). `canton`: Canton's own rule, that a
/// participant's or mediator's backup must not be newer than the sequencer's, so the sequencer's
/// capture starts only once theirs have completed.
public enum CaptureOrder: String, Codable, Sendable, CaseIterable {
    case splice, canton
}

/// `migrationId`; a logical synchronizer upgrade increments the physical synchronizer `serial`.
public struct Epoch: Codable, Sendable, Equatable, Hashable, Comparable, CustomStringConvertible {
    public var migrationId: Int
    public var serial: Int
    public var synchronizerId: String?

    public init(migrationId: Int, serial: Int, synchronizerId: String? = nil) {
        self.migrationId = migrationId; self.serial = serial; self.synchronizerId = synchronizerId
    }

    public var description: String { "\(migrationId)/\(serial)" }
    public static func < (a: Epoch, b: Epoch) -> Bool { (a.migrationId, a.serial) < (b.migrationId, b.serial) }

    /// Parses `M/SERIAL` (as in `--epoch 3/0`).
    public init(parsing text: String) throws {
        let parts = text.split(separator: "/")
        guard parts.count == 2, let m = Int(parts[0]), let s = Int(parts[1]), m >= 0, s >= 0 else {
            throw CNBackupError(.invalidInput, "epoch \"\(text)\" is not MIGRATION/SERIAL, e.g. 3/0")
        }
        self.init(migrationId: m, serial: s)
    }
}

public enum NodeKind: String, Codable, Sendable, CaseIterable {
    case sv, validator, generic
}

/// How an SV's synchronizer reaches consensus: a CometBFT node beside the sequencer, or CantonBFT
/// inside it (no CometBFT node, and a BFT database `sequencer_<serial>_cantonbft` of its own).
public enum Consensus: String, Codable, Sendable, CaseIterable {
    case cometbft, cantonbft
}

public struct NodeInfo: Codable, Sendable, Equatable {
    public var name: String
    public var kind: NodeKind
    /// SVs only; nil reads as CometBFT (the default, and manifests written before CantonBFT).
    public var consensus: Consensus?
    public init(name: String, kind: NodeKind, consensus: Consensus? = nil) {
        self.name = name; self.kind = kind; self.consensus = consensus
    }
}

/// How a component was read back when it was stored, as the manifest records it.
public enum ReadBackRecord: String, Codable, Sendable {
    case full, sample, none
    /// Rebuilt by `cnbackup recover` from the object itself.
    case recovered
}

public enum SetStatus: String, Codable, Sendable {
    case complete, partial
}

/// What a set is, written last as the commit point of a run and signed by the node's key.
/// Not secret and never encrypted: listing and retention need no decryption key.
public struct Manifest: Codable, Sendable, Equatable {
    public static let currentFormatVersion = 1

    public var formatVersion: Int
    public var setId: String
    public var node: NodeInfo
    public var epoch: Epoch
    public var status: SetStatus
    /// Components that failed, and why; empty when complete.
    public var failures: [ComponentFailure]
    public var toolVersion: String
    /// UTC capture start and end, milliseconds.
    public var captureStart: String
    public var captureEnd: String
    /// Set when a manifest was rebuilt from orphan objects rather than written by the run.
    public var recovered: Bool?
    public var components: [ComponentRecord]
    /// The apps-before-participant evidence, when the set has both.
    public var barrier: BarrierEvidence?
    /// The capture order the run followed (absent in sets written before it was recorded: `splice`).
    public var order: CaptureOrder? = nil
    /// Under `order: canton`, the evidence that the sequencer's capture started after every
    /// participant and mediator capture completed.
    public var sequencerBarrier: SequencerBarrierEvidence? = nil
    /// The name this manifest is stored under (`manifest-<16 hex>.json`), chosen before it was
    /// signed: a reader trusts it only there. Absent in sets written before names had a random
    /// part, whose manifest is `manifest.json`.
    public var manifestName: String? = nil

    public var captureStartDate: Date? { Timestamp.parse(captureStart) }

    package init(formatVersion: Int, setId: String, node: NodeInfo, epoch: Epoch, status: SetStatus, failures: [ComponentFailure], toolVersion: String, captureStart: String, captureEnd: String, recovered: Bool? = nil, components: [ComponentRecord], barrier: BarrierEvidence? = nil) {
        self.formatVersion = formatVersion
        self.setId = setId
        self.node = node
        self.epoch = epoch
        self.status = status
        self.failures = failures
        self.toolVersion = toolVersion
        self.captureStart = captureStart
        self.captureEnd = captureEnd
        self.recovered = recovered
        self.components = components
        self.barrier = barrier
    }
}

public struct ComponentFailure: Codable, Sendable, Equatable {
    public var component: String
    public var role: String
    public var reason: String

    package init(component: String, role: String, reason: String) {
        self.component = component
        self.role = role
        self.reason = reason
    }
}

/// One stored object of a set.
public struct ComponentRecord: Codable, Sendable, Equatable {
    public var name: String
    public var role: ComponentRole
    /// Where the bytes came from, for humans; never a secret.
    public var source: String
    /// Relative to the set's folder.
    public var objectKey: String
    public var storedSize: Int64
    public var storedSHA256: String
    /// SHA-256 of the object's sealed header (its stanzas, description and MAC): binds the header
    /// to this signed manifest, so readers refuse another header before opening anything
    /// (docs/FORMAT.md). Absent in manifests written before the binding.
    public var headerSHA256: String? = nil
    public var etag: String?
    public var plaintextSize: Int64
    /// HMAC-SHA256 of the plaintext's SHA-256 under a key derived from the object's data key.
    public var plaintextDigestHMAC: String
    public var codec: CodecInfo
    public var keyIds: [KeyID]
    public var segmentSize: Int
    public var started: String
    public var ended: String
    /// The order in which this process saw the start and end (a counter, not a clock).
    public var startOrder: Int
    public var endOrder: Int
    public var readBack: ReadBackRecord
    /// For pg_dump components: the server's clock and role at the snapshot, and the versions.
    public var postgres: PostgresEvidence?
    /// The synchronizer epoch this component belongs to when it is not the set's: the old
    /// physical synchronizer's sequencer and mediator during a logical synchronizer upgrade.
    public var epoch: Epoch? = nil
    /// For physical captures (`method: physical`, pg_basebackup): the backup's WAL range, the
    /// instance and the digest of its own backup_manifest. Absent for dumps and other sources.
    public var physical: PhysicalEvidence? = nil
    /// For pg_dump archives read uncompressed as they streamed past: each table's rows
    /// (`schema.table` -> COPY data lines), which `cnbackup drill` compares with the restore.
    /// Stored only in manifests written before the counts were sealed; in memory, the opened
    /// `sealedRowCounts` (see `Manifest.openingRowCounts`).
    public var rowCounts: [String: Int64]? = nil
    /// The same counts sealed to the set's recipients, totals in clear. Absent when the archive
    /// could not be read (another format, compressed, a command's dump).
    public var sealedRowCounts: SealedRowCounts? = nil
    /// For one part of a parallel logical dump (`postgres: { jobs: N }`): which part of which
    /// database's dump. Readers group the parts by `group`; the dump is whole only with all `count`.
    public var part: DumpPart? = nil
    /// For a deduplicated component (`dedup: true`): `objectKey` is its sealed index, and this
    /// binds the clear chunk table (docs/FORMAT.md, "Deduplicated components").
    public var dedup: DedupRecord? = nil

    package init(name: String, role: ComponentRole, source: String, objectKey: String, storedSize: Int64, storedSHA256: String, headerSHA256: String? = nil, etag: String? = nil, plaintextSize: Int64, plaintextDigestHMAC: String, codec: CodecInfo, keyIds: [KeyID], segmentSize: Int, started: String, ended: String, startOrder: Int, endOrder: Int, readBack: ReadBackRecord, postgres: PostgresEvidence? = nil, epoch: Epoch? = nil, physical: PhysicalEvidence? = nil, rowCounts: [String: Int64]? = nil, part: DumpPart? = nil,
                 sealedRowCounts: SealedRowCounts? = nil) {
        self.sealedRowCounts = sealedRowCounts
        self.name = name
        self.role = role
        self.source = source
        self.objectKey = objectKey
        self.storedSize = storedSize
        self.storedSHA256 = storedSHA256
        self.headerSHA256 = headerSHA256
        self.etag = etag
        self.plaintextSize = plaintextSize
        self.plaintextDigestHMAC = plaintextDigestHMAC
        self.codec = codec
        self.keyIds = keyIds
        self.segmentSize = segmentSize
        self.started = started
        self.ended = ended
        self.startOrder = startOrder
        self.endOrder = endOrder
        self.readBack = readBack
        self.postgres = postgres
        self.epoch = epoch
        self.physical = physical
        self.rowCounts = rowCounts
        self.part = part
    }
}

/// A section of a logical dump, as `pg_dump --section` names it (the raw values are what manifests store).
public enum DumpSection: String, Codable, Sendable, CaseIterable, CustomStringConvertible {
    case preData = "pre-data"
    case data
    case postData = "post-data"
    public var description: String { rawValue }
}

/// One archive of a parallel logical dump: the pre-data section (index 0), a data part (1...count-2,
/// a share of the tables), or the post-data section (count-1), all taken with one exported snapshot.
public struct DumpPart: Codable, Sendable, Equatable {
    /// The dump's name, `<capture>-<database>` (what `restore --component` takes).
    public var group: String
    public var database: String
    public var index: Int
    public var count: Int
    public var section: DumpSection
    /// The snapshot the parts shared (`pg_export_snapshot()`).
    public var snapshot: String

    public init(group: String, database: String, index: Int, count: Int, section: DumpSection, snapshot: String) {
        self.group = group; self.database = database; self.index = index; self.count = count; self.section = section; self.snapshot = snapshot
    }
}

/// What the manifest records about a physical base backup (`pg_basebackup -Ft -X fetch`).
public struct PhysicalEvidence: Codable, Sendable, Equatable {
    /// `pg_basebackup --version` of the tool that took it.
    public var tool: String
    public var serverVersion: String
    /// `pg_control_system().system_identifier`, as text (it does not fit a JSON double).
    public var systemIdentifier: String
    /// The timeline at the stop, and at the start (they differ only when a standby was promoted during the backup).
    public var timeline: Int
    public var startTimeline: Int
    /// From the backup_manifest's WAL-Ranges: the first range's start and the last range's end.
    public var startLSN: String
    public var stopLSN: String
    /// The server's `now()` just before the backup started, its `START TIME` in backup_label, and
    /// its `now()` right after pg_basebackup exited 0 (the backup is consistent at `stopLSN`).
    public var serverTimeBeforeStart: String
    public var backupStartTime: String?
    public var serverTimeAtStop: String
    public var isReplica: Bool
    public var replayTimestamp: String?
    /// SHA-256 and size of the tar's own `backup_manifest` member, which lists every file's size
    /// and checksum (verify --deep checks the tar against it, and it against this digest).
    public var backupManifestSHA256: String
    public var backupManifestSize: Int64
    /// How the WAL the backup needs was kept on the server while it ran.
    public var walRetention: String
    /// The per-file checksum algorithm of the tar's backup_manifest (`pg_basebackup
    /// --manifest-checksums`): `CRC32C`, PostgreSQL's default. Absent in sets taken before it was
    /// recorded, which used `SHA256` (computed by the server's walsender, several times the CPU).
    public var fileChecksums: String? = nil
    /// The set-relative key of the clear copy of this backup's `backup_manifest`
    /// (`<component>.backup_manifest`), which the next run reads to take an incremental against
    /// this one without any key that opens backup data. Its SHA-256 is `backupManifestSHA256`.
    /// Absent when no clear copy was written (manifests before incrementals, or a manifest too large).
    public var backupManifestObject: String? = nil
    /// Set when this is an incremental backup (`pg_basebackup --incremental`): the link to its parent.
    public var incremental: IncrementalLink? = nil
    /// Why a capture configured for incrementals took a full backup instead (the chain's full was
    /// too old, the parent was missing, untrusted or did not match, the server has no WAL summaries...).
    public var fullBackupReason: String? = nil

    /// 0 for a full backup, else the incremental's place in its chain.
    public var chainPosition: Int { incremental?.position ?? 0 }

    package init(tool: String, serverVersion: String, systemIdentifier: String, timeline: Int, startTimeline: Int, startLSN: String, stopLSN: String, serverTimeBeforeStart: String, backupStartTime: String? = nil, serverTimeAtStop: String, isReplica: Bool, replayTimestamp: String? = nil, backupManifestSHA256: String, backupManifestSize: Int64, walRetention: String, fileChecksums: String? = nil, backupManifestObject: String? = nil, incremental: IncrementalLink? = nil, fullBackupReason: String? = nil) {
        self.tool = tool
        self.serverVersion = serverVersion
        self.systemIdentifier = systemIdentifier
        self.timeline = timeline
        self.startTimeline = startTimeline
        self.startLSN = startLSN
        self.stopLSN = stopLSN
        self.serverTimeBeforeStart = serverTimeBeforeStart
        self.backupStartTime = backupStartTime
        self.serverTimeAtStop = serverTimeAtStop
        self.isReplica = isReplica
        self.replayTimestamp = replayTimestamp
        self.backupManifestSHA256 = backupManifestSHA256
        self.backupManifestSize = backupManifestSize
        self.walRetention = walRetention
        self.fileChecksums = fileChecksums
        self.backupManifestObject = backupManifestObject
        self.incremental = incremental
        self.fullBackupReason = fullBackupReason
    }
}

/// An incremental backup's link to the backup it was taken against. Restoring it needs every link
/// from the full (position 0) up, each authenticated by its own signed manifest.
public struct IncrementalLink: Codable, Sendable, Equatable {
    /// The parent's set and component (same node; the epoch is the parent set's own).
    public var parentSetId: String
    public var parentComponent: String
    /// The SHA-256 of the parent's backup_manifest that was passed to `pg_basebackup --incremental`.
    public var parentBackupManifestSHA256: String
    /// 1 for the first incremental after a full, and so on.
    public var position: Int
    /// The set holding the chain's full backup.
    public var fullSetId: String
    /// The full's capture start (for `fullEvery`).
    public var fullCaptureStart: String

    public init(parentSetId: String, parentComponent: String, parentBackupManifestSHA256: String, position: Int,
                fullSetId: String, fullCaptureStart: String) {
        self.parentSetId = parentSetId; self.parentComponent = parentComponent
        self.parentBackupManifestSHA256 = parentBackupManifestSHA256; self.position = position
        self.fullSetId = fullSetId; self.fullCaptureStart = fullCaptureStart
    }
}

/// What the manifest records about a dump's snapshot.
public struct PostgresEvidence: Codable, Sendable, Equatable {
    /// The server's `now()` just before pg_dump opened its snapshot (its REPEATABLE READ
    /// transaction starts right after).
    public var serverNowBeforeSnapshot: String
    public var isReplica: Bool
    /// On a replica, the last replayed transaction's commit time.
    public var replayTimestamp: String?
    public var serverVersion: String
    public var pgDumpVersion: String

    package init(serverNowBeforeSnapshot: String, isReplica: Bool, replayTimestamp: String? = nil, serverVersion: String, pgDumpVersion: String) {
        self.serverNowBeforeSnapshot = serverNowBeforeSnapshot
        self.isReplica = isReplica
        self.replayTimestamp = replayTimestamp
        self.serverVersion = serverVersion
        self.pgDumpVersion = pgDumpVersion
    }
}

public struct CodecInfo: Codable, Sendable, Equatable {
    public var name: String
    public var level: Int

    package init(name: String, level: Int) {
        self.name = name
        self.level = level
    }
}

/// Evidence that every apps snapshot was fixed before any participant capture started.
/// `order: canton`'s rule as the run saw it: the participant and mediator components, the
/// sequencer components, the event when the last of the former ended and when the first of the
/// latter started, and whether the rule held.
public struct SequencerBarrierEvidence: Codable, Sendable, Equatable {
    public var beforeComponents: [String]
    public var sequencerComponents: [String]
    public var beforeCompletedOrder: Int?
    public var sequencerStartedOrder: Int?
    public var holds: Bool

    package init(beforeComponents: [String], sequencerComponents: [String], beforeCompletedOrder: Int?, sequencerStartedOrder: Int?, holds: Bool) {
        self.beforeComponents = beforeComponents
        self.sequencerComponents = sequencerComponents
        self.beforeCompletedOrder = beforeCompletedOrder
        self.sequencerStartedOrder = sequencerStartedOrder
        self.holds = holds
    }
}

public struct BarrierEvidence: Codable, Sendable, Equatable {
    public var appsComponents: [String]
    public var participantComponents: [String]
    /// The order counter when the last apps capture ended, and when the first participant one started.
    public var appsCompletedOrder: Int?
    public var participantStartedOrder: Int?
    public var holds: Bool

    package init(appsComponents: [String], participantComponents: [String], appsCompletedOrder: Int? = nil, participantStartedOrder: Int? = nil, holds: Bool) {
        self.appsComponents = appsComponents
        self.participantComponents = participantComponents
        self.appsCompletedOrder = appsCompletedOrder
        self.participantStartedOrder = participantStartedOrder
        self.holds = holds
    }
}

extension Manifest {
    /// The exact bytes that are stored and signed.
    public func encoded() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return Array(try encoder.encode(self)) + [0x0A]
    }

    public static func decode(_ bytes: [UInt8]) throws -> Manifest {
        do {
            let manifest = try JSONDecoder().decode(Manifest.self, from: Data(bytes))
            guard manifest.formatVersion == currentFormatVersion else {
                throw CNBackupError(.invalidInput, "manifest format version \(manifest.formatVersion) is not supported: upgrade cnbackup")
            }
            return manifest
        } catch let error as CNBackupError {
            throw error
        } catch {
            throw CNBackupError(.integrity, "the manifest is not valid JSON of format version 1", cause: "\(error)")
        }
    }
}

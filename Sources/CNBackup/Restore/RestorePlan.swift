import Foundation
import CNBackupCore
import CNBackupStorage
import CNBackupPostgres
import CNBackupCatalog

/// The whole node's restore from one set, in the order the Splice runbooks give: stop the apps
/// and the node, restore every store from the same set (so the apps stay strictly older than the
/// participant, as they were taken), then start them again. Printed, never executed: each step
/// runs where the operator has the cluster access and the private key.
public enum RestorePlan {
    /// The sequencers' pruning retention Splice recommends: a node restored from an older set
    /// cannot catch up, because the sequencers no longer hold what it missed.
    public static let defaultSequencerRetention: TimeInterval = 30 * 86_400

    /// How old the set is against the retention: nil when it is young enough, else the reason to refuse.
    public static func ageProblem(of manifest: Manifest, retention: TimeInterval, now: Date = Date()) -> String? {
        guard let captured = Timestamp.parse(manifest.captureStart) else { return "the set's capture time cannot be read" }
        let age = now.timeIntervalSince(captured)
        guard age > retention else { return nil }
        return "set \(manifest.setId) was captured \(DurationText.format(age)) ago, more than the sequencers' retention of \(DurationText.format(retention)): a node restored from it cannot catch up (the sequencers pruned what it missed)"
    }

    /// `chains`: for each incremental physical component, its chain's plaintext sizes, full first
    /// (`PhysicalRestorer.chainSizes`); an incremental without it is named as such.
    /// `signer`: the signer that vouches for the set, as readers pin it (the steps name it, so they run as printed).
    public static func steps(for manifest: Manifest, store: String, signer: String = "PUB", retention: TimeInterval = defaultSequencerRetention,
                             now: Date = Date(), chains: [String: [Int64]] = [:]) -> [String] {
        let components = manifest.components
        func named(_ role: ComponentRole) -> [ComponentRecord] { components.filter { $0.role == role } }
        let kind = manifest.node.kind
        var steps = ["Check the set: cnbackup verify --store \(store) --signer \(signer) \(manifest.setId) --deep --identity KEY"]
        if let problem = ageProblem(of: manifest, retention: retention, now: now) {
            steps.append("WARNING: \(problem); restore refuses it unless given --allow-old-set")
        } else if let captured = Timestamp.parse(manifest.captureStart) {
            steps.append("The set is \(DurationText.format(now.timeIntervalSince(captured))) old, within the sequencers' retention of \(DurationText.format(retention))")
        }
        steps.append("WARNING: parties and users onboarded after \(manifest.captureStart) are not in this set: re-onboard them after the restore")
        if manifest.status != .complete {
            steps.append("WARNING: set \(manifest.setId) is partial (\(manifest.failures.map(\.component).joined(separator: ", ")) failed): prefer the newest complete set")
        }
        steps.append(kind == .sv
            ? "Scale down the SV, scan, validator, participant, sequencer, mediator and CometBFT deployments (kubectl scale --replicas=0 ...)"
            : "Scale down the validator app and the participant (kubectl scale --replicas=0 ... or docker compose stop)")
        for globals in components where globals.name.hasSuffix("-globals") {
            steps.append("Restore roles first: cnbackup restore --store \(store) --signer \(signer) \(manifest.setId) --component \(globals.name) --to \(globals.name).sql --identity KEY; psql -f \(globals.name).sql")
        }
        for role in [ComponentRole.apps, .participant, .sequencer, .mediator] {
            for record in named(role) where record.physical != nil {
                let evidence = record.physical!
                let chain = chains[record.name] ?? []
                let bytes = PhysicalRestorer.diskNeeded(record, chain: chain)
                if let link = evidence.incremental {
                    steps.append(chain.isEmpty
                        ? "WARNING: \(record.name) is incremental number \(link.position) on the full \(link.fullSetId), and its chain could not be read: restore checks every link and refuses a broken chain"
                        : "\(record.name) is incremental number \(link.position) of a chain of \(chain.count) backups (full \(link.fullSetId)): restore extracts every link (\(chain.reduce(0, +)) bytes) into a private folder beside DIR, combines them into DIR with pg_combinebackup, then checks DIR with pg_verifybackup")
                }
                steps.append("Restore \(role.rawValue) instance (physical base backup of PostgreSQL \(evidence.serverVersion), system \(evidence.systemIdentifier), consistent at LSN \(evidence.stopLSN) on timeline \(evidence.timeline)); needs \(bytes) bytes (\(String(format: "%.1f", Double(bytes) / 1_073_741_824)) GiB) of free disk for the data directory: cnbackup restore --store \(store) --signer \(signer) \(manifest.setId) --component \(record.name) --identity KEY --to-directory DIR; chown -R postgres DIR; start a PostgreSQL \(PostgresClients.majorVersion(in: evidence.serverVersion).map(String.init) ?? evidence.serverVersion) server on DIR (pg_ctl -D DIR start)")
            }
            var groups: [String] = []
            for record in named(role) where record.part != nil && !groups.contains(record.part!.group) { groups.append(record.part!.group) }
            for group in groups {
                let parts = components.filter { $0.part?.group == group }
                let first = parts[0].part!
                let failed = manifest.failures.contains { $0.component == group } || parts.count != first.count
                steps.append(failed
                    ? "WARNING: the parallel dump \(group) of database \(first.database) is incomplete (\(parts.count) of \(first.count) parts stored): it cannot be restored from this set"
                    : "Restore \(role.rawValue) database (a parallel dump in \(first.count) parts sharing snapshot \(first.snapshot): pre-data, \(first.count - 2) data parts, post-data): cnbackup restore --store \(store) --signer \(signer) \(manifest.setId) --component \(group) --identity KEY --to-database \(first.database) --pg-host HOST --pg-user USER --pg-password-file FILE --jobs \(max(4, first.count - 2))")
            }
            for record in named(role) where !record.name.hasSuffix("-globals") && record.physical == nil && record.part == nil {
                let database = record.source.split(separator: "/").last.map(String.init) ?? record.name
                steps.append("Restore \(role.rawValue) database: cnbackup restore --store \(store) --signer \(signer) \(manifest.setId) --component \(record.name) --identity KEY --to-database \(database) --pg-host HOST --pg-user USER --pg-password-file FILE --jobs 4")
            }
        }
        for record in named(.cometbft) {
            steps.append("Restore CometBFT from its volume snapshot (\(record.source)); component \(record.name) holds the reference")
        }
        for record in components where record.source.hasPrefix("kubernetes secret ") {
            steps.append("Restore the Secret \(record.source.dropFirst("kubernetes secret ".count)): cnbackup restore --store \(store) --signer \(signer) \(manifest.setId) --component \(record.name) --to \(record.name).json --identity KEY; kubectl apply -f \(record.name).json; shred -u \(record.name).json")
        }
        for record in named(.identities) {
            steps.append(kind == .sv
                ? "Only to recover the SV's participant identity: cnbackup restore --store \(store) --signer \(signer) \(manifest.setId) --component \(record.name) --identity KEY --to participant-dump.json --as-kubernetes-secret participant-bootstrap-dump --participant-only"
                : "Only to re-onboard the validator on a new participant: cnbackup restore --store \(store) --signer \(signer) \(manifest.setId) --component \(record.name) --identity KEY --to participant-dump.json --as-kubernetes-secret participant-bootstrap-dump; kubectl apply -f participant-dump.json; Helm: participantIdentitiesDumpImport: { secretName: participant-bootstrap-dump, newParticipantIdentifier: NEW-ID }")
        }
        // Upstream scales every component back up at once, in no order (docs/CANTON.md, "Restore order").
        steps.append("Scale every deployment back up to 1 replica, all at once (kubectl scale --replicas=1 ...), and watch them catch up from their peers")
        return steps
    }
}

import Foundation
import CNBackupCore
import CNBackupStorage

/// The whole node's restore from one set, in the order the Splice runbooks give: stop the apps
/// and the node, restore every store from the same set (so the apps stay strictly older than the
/// participant, as they were taken), then start them again. Printed, never executed: each step
/// runs where the operator has the cluster access and the private key.
public enum RestorePlan {
    public static func steps(for manifest: Manifest, store: String) -> [String] {
        let components = manifest.components
        func named(_ role: ComponentRole) -> [ComponentRecord] { components.filter { $0.role == role.rawValue } }
        let kind = manifest.node.kind
        var steps = ["Check the set: cnbackup verify --store \(store) --signer PUB \(manifest.setId) --deep --identity KEY"]
        if manifest.status != .complete {
            steps.append("WARNING: set \(manifest.setId) is partial (\(manifest.failures.map(\.component).joined(separator: ", ")) failed): prefer the newest complete set")
        }
        steps.append(kind == .sv
            ? "Scale down the SV, scan, validator, participant, sequencer, mediator and CometBFT deployments (kubectl scale --replicas=0 ...)"
            : "Scale down the validator app and the participant (kubectl scale --replicas=0 ... or docker compose stop)")
        for globals in components where globals.name.hasSuffix("-globals") {
            steps.append("Restore roles first: cnbackup restore --store \(store) --signer PUB \(manifest.setId) --component \(globals.name) --to \(globals.name).sql --identity KEY; psql -f \(globals.name).sql")
        }
        for role in [ComponentRole.apps, .participant, .sequencer, .mediator] {
            for record in named(role) where !record.name.hasSuffix("-globals") {
                let database = record.source.split(separator: "/").last.map(String.init) ?? record.name
                steps.append("Restore \(role.rawValue) database: cnbackup restore --store \(store) --signer PUB \(manifest.setId) --component \(record.name) --identity KEY --to-database \(database) --pg-host HOST --pg-user USER --pg-password-file FILE --jobs 4")
            }
        }
        for record in named(.cometbft) {
            steps.append("Restore CometBFT from its volume snapshot (\(record.source)); component \(record.name) holds the reference")
        }
        for record in named(.identities) {
            steps.append("Keep the identities dump ready (only for re-onboarding or recovery): cnbackup restore --store \(store) --signer PUB \(manifest.setId) --component \(record.name) --to identities.json --identity KEY (mode 0600)")
        }
        steps.append("Scale the deployments back up, the participant (and sequencer, mediator) before the apps, and watch them catch up")
        return steps
    }
}

import ArgumentParser
import CNBackup
import Foundation
import CNBackupCore
import CNBackupStorage

struct PruneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune",
        abstract: "Apply retention to a node's sets: dry-run by default; --apply deletes.",
        discussion: """
        Keeps every complete set younger than --keep-within and the newest --keep-last; per epoch a chain of complete sets \
        at most (--retention-period minus --margin) apart, so the node can always catch up; and every set of past epochs \
        (--thin-past-epochs keeps only their chain and last set). Decides only from manifests signed by a pinned signer; \
        deletes nothing while the newest set is partial, unsigned or does not verify. Exit code 2 when the history has a gap.
        """)

    @OptionGroup var storeOptions: StoreOptions
    @OptionGroup var signerOptions: SignerOptions
    @Option(help: "The node.") var node: String
    @Option(help: "The pruning retention period of the node (sequencer or participant), e.g. 30d.") var retentionPeriod: String
    @Option(help: "Safety margin below the retention period.") var margin = "1d"
    @Option(help: "Keep every complete set younger than this.") var keepWithin = "7d"
    @Option(help: "Keep at least this many newest complete sets.") var keepLast = 12
    @Flag(help: "Thin past epochs to their chain and last set instead of keeping all their sets.") var thinPastEpochs = false
    @Flag(help: "Delete what the plan deletes.") var apply = false
    @Flag(help: "JSON output.") var json = false

    func validate() throws {
        guard keepLast >= 0 else { throw ValidationError("--keep-last must be 0 or more") }
        for (flag, text) in [("--retention-period", retentionPeriod), ("--margin", margin), ("--keep-within", keepWithin)] {
            guard (try? DurationText.parse(text)) != nil else { throw ValidationError("\(flag) \(text) is not a duration: write a number and a unit (s, m, h, d, w), e.g. 30d") }
        }
    }

    func run() throws {
        var gaps = 0
        try reporting {
            let policy = RetentionPolicy(retentionPeriod: try DurationText.parse(retentionPeriod), margin: try DurationText.parse(margin),
                                         keepWithin: try DurationText.parse(keepWithin), keepLast: keepLast,
                                         keepEveryPastEpochSet: !thinPastEpochs)
            if let problem = policy.problem { throw CNBackupError(.invalidInput, flagNames(problem)) }
            let catalog = try signerOptions.catalog(try storeOptions.openForReading())
            let pruner = Pruner(catalog: catalog, policy: policy)
            let (plan, entries) = try pruner.plan(node: node)
            if entries.isEmpty {
                // A misspelt --node finds nothing: say so, with the nodes that are there.
                let nodes = Set(try catalog.entries().map(\.layout.node)).sorted()
                if !nodes.isEmpty {
                    throw CNBackupError(.notFound, "no sets for node \(node) in \(storeOptions.store): check --node; this store holds \(nodes.joined(separator: ", "))")
                }
                printToStandardError("no sets in \(storeOptions.store): nothing to prune")
            }
            gaps = plan.gaps.count
            // Deduplicated chunks that no remaining set references (a no-op for nodes without dedup).
            let chunks = try ChunkCollector(catalog: catalog).plan(node: node, entries: entries,
                                                                   deleting: plan.refusedToDelete == nil ? Set(plan.deletedSetIds) : [])
            for broken in plan.brokenChains { printToStandardError("cnbackup: broken incremental chain: \(broken)") }
            if json {
                try printJSON(PruneJSON(node: node, plan: plan, applied: apply, chunks: chunks.unreferenced.isEmpty && chunks.refused == nil && chunks.referenced == 0 ? nil : chunks))
            } else {
                for d in plan.decisions { print("\(d.keep ? "keep  " : "DELETE") \(d.setId)  \(d.reasons.joined(separator: "; "))") }
                for g in plan.gaps {
                    print("GAP in epoch \(g.migrationId)/\(g.serial): \(g.fromSetId) -> \(g.toSetId), \(RetentionPlanner.describe(g.seconds)) (more than the retention period allows)")
                }
                for broken in plan.brokenChains { print("BROKEN CHAIN: \(broken)") }
                if let refused = plan.refusedToDelete { print("nothing deleted: \(refused)") }
                if let refused = chunks.refused { print("no chunk deleted: \(refused)") }
                else if !chunks.unreferenced.isEmpty || chunks.tooYoung > 0 {
                    print("chunks: \(chunks.unreferenced.count) no set references (\(chunks.bytes) bytes) to delete, \(chunks.tooYoung) unreferenced but younger than twice the grace period kept, \(chunks.referenced) referenced")
                }
            }
            if apply {
                let deleted = try pruner.apply(plan, entries: entries)
                printToStandardError("deleted \(deleted) set(s)")
                if !chunks.unreferenced.isEmpty, plan.refusedToDelete == nil {
                    printToStandardError("deleted \(try ChunkCollector(catalog: catalog).apply(chunks)) unreferenced chunk(s)")
                }
            } else if !plan.deletedSetIds.isEmpty {
                printToStandardError("dry run: \(plan.deletedSetIds.count) set(s) would be deleted; pass --apply")
            }
        }
        if gaps > 0 {
            printToStandardError("cnbackup: the history has \(gaps) gap(s) longer than the retention period allows: a restore from before a gap could not catch up")
            throw ExitCause.stale.exit
        }
    }
}

/// Retention messages name the policy's fields; a user knows the flags.
func flagNames(_ message: String) -> String {
    message.replacingOccurrences(of: "keepLast", with: "--keep-last").replacingOccurrences(of: "keepWithin", with: "--keep-within")
        .replacingOccurrences(of: "the retention margin", with: "--margin").replacingOccurrences(of: "the margin (", with: "--margin (").replacingOccurrences(of: "the retention period", with: "--retention-period")
}

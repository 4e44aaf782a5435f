import Foundation
import CNBackupCore
import CNBackupStorage

/// What a run will do, as one value: `run --dry-run` prints it, the runner executes it, and the
/// manifest's barrier evidence records its phases. Order comes from roles, not from places in the
/// file: every apps capture completes before any participant capture starts (docs/CANTON.md, "The
/// apps barrier"); the others run beside the apps captures, except under `order: canton`, where
/// the sequencer captures start once every participant and mediator capture has completed
/// (docs/CANTON.md, "Canton's own order").
public struct BackupPlan: Sendable {
    let definition: PipelineDefinition
    /// Apps captures and the rest, `parallelism` at a time.
    let beforeBarrier: [ComponentJob]
    /// Participant captures, started once every apps capture has completed.
    let afterBarrier: [ComponentJob]
    /// `order: canton`: the sequencer captures, started once every participant and mediator
    /// capture has completed. Empty under `splice`, where they are in `beforeBarrier`.
    let afterParticipant: [ComponentJob]

    init(_ definition: PipelineDefinition) {
        self.definition = definition
        let jobs = definition.captures.flatMap(\.jobs)
        let canton = definition.order == .canton
        beforeBarrier = jobs.filter { $0.role != .participant && !(canton && $0.role == .sequencer) }
        afterBarrier = jobs.filter { $0.role == .participant }
        afterParticipant = canton ? jobs.filter { $0.role == .sequencer } : []
    }

    var jobs: [ComponentJob] { beforeBarrier + afterBarrier + afterParticipant }
    /// What the sequencer waits for under `order: canton`.
    var beforeSequencerComponents: [String] { jobs.filter { $0.role == .participant || $0.role == .mediator }.map(\.name) }
    var appsComponents: [String] { beforeBarrier.filter { $0.role == .apps }.map(\.name) }
    var participantComponents: [String] { afterBarrier.map(\.name) }

    /// The plan as `run --dry-run` prints it.
    public var lines: [String] {
        let d = definition
        func describe(_ jobs: [ComponentJob]) -> String { jobs.map { "\($0.name) [\($0.role.rawValue)] \($0.summary)" }.joined(separator: "; ") }
        var lines = ["node \(d.node.name) (\(d.node.kind.rawValue)\(d.node.consensus.map { ", \($0.rawValue)" } ?? "")), epoch \(d.epoch), store \(d.store.url)",
                     "recipients: \(d.recipients.count + d.symmetricKeyFiles.count); compression zstd level \(d.compression.level); read-back \(d.readBack.rawValue); parallelism \(d.parallelism)"]
        lines.append("phase 1 (at once, \(d.parallelism) at a time): " + describe(beforeBarrier))
        if !afterBarrier.isEmpty {
            lines.append("barrier: every apps capture completed (pg_dump or pg_basebackup exited 0)")
            lines.append("phase 2: " + describe(afterBarrier))
        }
        if !afterParticipant.isEmpty {
            lines.append("order canton: every participant and mediator capture completed")
            lines.append("phase 3: " + describe(afterParticipant))
        }
        lines.append("then: read back every object, sign and write manifest.json last")
        return lines
    }
}

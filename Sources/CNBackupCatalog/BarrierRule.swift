import Foundation
import CNBackupCore

/// The apps-before-participant rule, evaluated in one place for the runner (which records it) and
/// `verify` (which re-checks a signed manifest): the last apps capture ended before the first
/// participant capture started, in the order this process saw events, and every apps capture
/// named by the plan completed.
package enum BarrierRule {
    package struct Outcome {
        package var appsCompletedOrder: Int?
        package var participantStartedOrder: Int?
        package var holds: Bool

        package init(appsCompletedOrder: Int? = nil, participantStartedOrder: Int? = nil, holds: Bool) {
            self.appsCompletedOrder = appsCompletedOrder
            self.participantStartedOrder = participantStartedOrder
            self.holds = holds
        }
    }

    package static func evaluate(_ records: [ComponentRecord], apps: [String]) -> Outcome {
        let appsRecords = records.filter { $0.role == .apps }
        let appsEnd = appsRecords.map(\.endOrder).max()
        let participantStart = records.filter { $0.role == .participant }.map(\.startOrder).min()
        var holds = false
        if let appsEnd, let participantStart { holds = appsEnd < participantStart && appsRecords.count == apps.count }
        return Outcome(appsCompletedOrder: appsEnd, participantStartedOrder: participantStart, holds: holds)
    }

    /// `order: canton`: every component named in `before` (the participant and mediator captures)
    /// completed, and the last of them ended before the first sequencer capture started.
    package static func evaluateSequencer(_ records: [ComponentRecord], before: [String]) -> SequencerBarrierEvidence {
        let beforeRecords = records.filter { before.contains($0.name) }
        let sequencers = records.filter { $0.role == .sequencer }
        let beforeEnd = beforeRecords.map(\.endOrder).max()
        let sequencerStart = sequencers.map(\.startOrder).min()
        var holds = false
        if let beforeEnd, let sequencerStart { holds = beforeEnd < sequencerStart && beforeRecords.count == before.count }
        if before.isEmpty { holds = true }   // nothing to wait for
        return SequencerBarrierEvidence(beforeComponents: before, sequencerComponents: sequencers.map(\.name),
                                        beforeCompletedOrder: beforeEnd, sequencerStartedOrder: sequencerStart, holds: holds)
    }
}

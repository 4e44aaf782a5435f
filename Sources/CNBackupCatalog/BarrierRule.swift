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
}

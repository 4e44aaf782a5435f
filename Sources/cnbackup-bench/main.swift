import CNBackup
import Foundation
import CNBackupCore
import CNBackupStorage

// `cnbackup-bench retention [COUNT] [RUNS]`: times RetentionPlanner.plan over COUNT synthetic sets
// (RetentionPlanner.benchmarkInput, deterministic) and prints "median_s min_s kept deleted" on one
// line for scripts/bench.sh. Only the plan is timed, not generating its input.
let args = CommandLine.arguments.dropFirst()
guard args.first == "retention" else {
    FileHandle.standardError.write("usage: cnbackup-bench retention [COUNT=100000] [RUNS=5]\n".data(using: .utf8)!)
    exit(2)
}
let count = args.dropFirst().first.flatMap { Int($0) } ?? 100_000
let runs = max(1, args.dropFirst(2).first.flatMap { Int($0) } ?? 5)
let sets = RetentionPlanner.benchmarkInput(count: count)
var seconds: [Double] = []
var plan = RetentionPlan(decisions: [], gaps: [], refusedToDelete: nil)
for _ in 0..<runs {
    let start = DispatchTime.now().uptimeNanoseconds
    plan = RetentionPlanner.plan(sets, policy: RetentionPolicy(), now: RetentionPlanner.benchmarkNow)
    seconds.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
}
seconds.sort()
let kept = plan.decisions.filter(\.keep).count
print(String(format: "%.4f %.4f %d %d", seconds[(runs - 1) / 2], seconds[0], kept, plan.decisions.count - kept))

import CNBackup
import Foundation
import CNBackupCore
import CNBackupStorage
import CNBackupPostgres

// `cnbackup-bench retention [COUNT] [RUNS]`: times RetentionPlanner.plan over COUNT synthetic sets
// (RetentionPlanner.benchmarkInput, deterministic) and prints "median_s min_s kept deleted" on one
// line for scripts/bench.sh. Only the plan is timed, not generating its input.
//
// `cnbackup-bench count-rows FILE [RUNS]`: the CPU cost of counting rows as a dump streams past
// (the target: at most 3% of a capture's CPU). Reads FILE (a `pg_dump -Fc -Z0` archive) in the
// capture's 1 MiB chunks, RUNS times without and RUNS times with an ArchiveRowCounter on every chunk,
// interleaved, and prints "read_cpu_s count_cpu_s tables rows": the median CPU seconds (user+sys of
// this process) of each; their difference is what counting adds to a capture, which already holds
// every chunk in memory.
func usage() -> Never {
    FileHandle.standardError.write("usage: cnbackup-bench retention [COUNT=100000] [RUNS=5] | count-rows FILE [RUNS=5]\n".data(using: .utf8)!)
    exit(2)
}

func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
}

func median(_ values: [Double]) -> Double { values.sorted()[(values.count - 1) / 2] }

let args = Array(CommandLine.arguments.dropFirst())
switch args.first {
case "retention":
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
case "count-rows":
    guard args.count >= 2 else { usage() }
    let path = args[1]
    let runs = max(1, args.dropFirst(2).first.flatMap { Int($0) } ?? 5)
    var readCPU: [Double] = [], countCPU: [Double] = []
    var counts: [String: Int64]?
    for _ in 0..<runs {
        for counting in [false, true] {
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { FileHandle.standardError.write("cannot open \(path)\n".data(using: .utf8)!); exit(1) }
            let stream = FileDescriptorStream(fd: fd, owns: true, what: path)
            let counter = counting ? ArchiveRowCounter() : nil
            let start = cpuSeconds()
            var bytes = 0
            while let chunk = try stream.next() {
                bytes &+= chunk.count
                if let counter, counter.gaveUp == nil { counter.consume(chunk) }
            }
            let spent = cpuSeconds() - start
            stream.close()
            if let counter {
                countCPU.append(spent)
                counts = counter.finish()
                guard counts != nil else {
                    FileHandle.standardError.write("the counter gave up: \(counter.gaveUp ?? "?") (is \(path) a pg_dump -Fc -Z0 archive?)\n".data(using: .utf8)!)
                    exit(1)
                }
            } else {
                readCPU.append(spent)
            }
        }
    }
    print(String(format: "%.3f %.3f %d %lld", median(readCPU), median(countCPU), counts!.count, counts!.values.reduce(0, +)))
default:
    usage()
}

import CNBackupCore
import Dispatch
import Foundation

/// How the executable answers SIGTERM (how Kubernetes stops a Job: a deadline, a node drain,
/// `kubectl delete`) and SIGINT. The library never touches signals; it offers a `Cancellation`
/// and the `LastResort` registry, and this file decides what a signal means:
///
/// - by default (restore, verify, copy, ...): kill children's process groups, remove private
///   temporary files, exit 128 + the signal's number at once. A copy resumes where it stopped.
/// - for `run` after `graceful(period:)`: the first signal cancels the run, whose captures stop
///   and whose uploads abort, and which then commits what completed as a signed partial set; if
///   that takes longer than the grace period, or a second signal comes, it ends as above.
enum StopSignals {
    /// The operation every command passes to the library.
    static let cancellation = Cancellation()

    // @unchecked: `grace` and `received` are only touched under `lock`.
    private final class State: @unchecked Sendable {
        let lock = NSLock()
        var grace: TimeInterval?
        var received: Int32 = 0
        var sources: [DispatchSourceSignal] = []
    }
    private static let state = State()
    private static let queue = DispatchQueue(label: "cnbackup.signals")

    /// Takes SIGTERM and SIGINT over from their default action (which would leave children and
    /// temporary files behind). Called once, first thing in main.
    static func install() {
        // SIGHUP (a closed terminal or session) and SIGQUIT stop a command the same way.
        for number in [SIGTERM, SIGINT, SIGHUP, SIGQUIT] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler { received(number) }
            source.resume()
            state.lock.withLock { state.sources.append(source) }
        }
        atexit { StopSignals.atExit() }
    }

    /// From now on, the first signal cancels and waits up to `period` seconds for the command to
    /// finish on its own (and exit through `exitIfStopped`).
    static func graceful(period: TimeInterval) {
        state.lock.withLock { state.grace = period }
    }

    /// The signal that stopped the command, if one did.
    static var stoppedBy: Int32? {
        let number = state.lock.withLock { state.received }
        return number == 0 ? nil : number
    }

    /// Ends the process with 128 + the signal's number when a signal stopped the command.
    static func exitIfStopped() {
        if let number = stoppedBy { endNow(number) }
    }

    private static func received(_ number: Int32) {
        let (first, grace) = state.lock.withLock { () -> (Bool, TimeInterval?) in
            let first = state.received == 0
            if first { state.received = number }
            return (first, state.grace)
        }
        guard first, let grace else { endNow(number) }
        printToStandardError("cnbackup: \(name(number)) received: stopping captures and aborting uploads; committing what completed as a partial set within \(Int(grace)) s (a second signal ends at once)")
        cancellation.cancel()
        queue.asyncAfter(deadline: .now() + grace) {
            printToStandardError("cnbackup: the grace period of \(Int(grace)) s ran out: ending now")
            endNow(number)
        }
    }

    /// Held by the thread that ends the process, never released: whoever else gets here (the main
    /// thread leaving through `exit` because a child it waited for was just killed) waits for the
    /// undo work (dropping a half-restored database, removing files) and the 128 + signal exit.
    private static let ending = NSLock()

    private static func endNow(_ number: Int32) -> Never {
        ending.lock()
        cancellation.cancel()
        LastResort.run()
        _exit(128 + number)
    }

    /// Registered with atexit in `install`: a command that ends on its own after a signal arrived
    /// (its children were killed, so it failed) ends through `endNow` instead, with 128 + the
    /// signal's number and after the undo work, not with its own error's exit code.
    private static func atExit() {
        if let number = stoppedBy { endNow(number) }
    }

    private static func name(_ number: Int32) -> String {
        switch number {
        case SIGTERM: return "SIGTERM"
        case SIGINT: return "SIGINT"
        case SIGHUP: return "SIGHUP"
        case SIGQUIT: return "SIGQUIT"
        default: return "signal \(number)"
        }
    }
}

import Foundation
import CNBackupCore

/// A child process in a process group of its own, so that stopping it stops whatever it started
/// too (a shell's grandchildren, pg_dump's helpers). It is spawned with the signals this process
/// ignores (SIGPIPE) or handles (SIGTERM, SIGINT) back at their defaults, is registered with
/// `LastResort` until it is reaped, and is waited for by whoever owns it.
///
/// It also dies with this process when this process is killed without running any code (SIGKILL,
/// the OOM killer), which no signal handler or `LastResort` can answer: it starts through
/// `setpriv --pdeathsig KILL`, which sets the kernel's parent-death signal and then execs the
/// program. The kernel sends that signal when the *thread* that spawned the child ends, not the
/// process, so every child is spawned by one thread that lives as long as the process (`Spawner`).
package final class ChildProcess: @unchecked Sendable {
    // @unchecked: `status` and `reaped` are only touched under `lock`; the rest is set in init.
    package enum Output { case pipe, discard, file(Int32) }
    package enum Termination: Equatable { case exited(Int32), signaled(Int32) }

    package let pid: pid_t
    package let name: String
    /// The parent's ends of the pipes asked for; the owner closes them (FileDescriptorStream, close(2)).
    package let standardInput: Int32?
    package let standardOutput: Int32?
    package let standardError: Int32?
    private let lock = NSLock()
    private var termination: Termination?

    /// Variables a child may inherit; everything else, including credentials, stays behind.
    package static let inheritedVariables = ["PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "USER", "KUBECONFIG"]

    /// The minimal environment plus `extra`.
    package static func environment(adding extra: [String: String]) -> [String: String] {
        let parent = ProcessInfo.processInfo.environment
        var environment: [String: String] = [:]
        for key in inheritedVariables { if let value = parent[key] { environment[key] = value } }
        if environment["PATH"] == nil { environment["PATH"] = "/usr/local/bin:/usr/bin:/bin" }
        environment.merge(extra) { _, new in new }
        return environment
    }

    package static func resolve(_ program: String, path: String) -> String? {
        if program.contains("/") { return FileManager.default.isExecutableFile(atPath: program) ? program : nil }
        for directory in path.split(separator: ":") {
            let candidate = "\(directory)/\(program)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    /// - Parameters:
    ///   - arguments: the program (a path, or a name looked up on the child's PATH) and its arguments.
    ///   - environment: the child's whole environment (see `environment(adding:)`).
    ///   - inputPipe: give the child a pipe on standard input (else /dev/null).
    package init(arguments: [String], environment: [String: String], inputPipe: Bool = false,
         output: Output = .pipe, error: Output = .pipe) throws {
        guard let program = arguments.first else { throw CNBackupError(.invalidInput, "empty command") }
        name = (program as NSString).lastPathComponent
        guard let executable = Self.resolve(program, path: environment["PATH"] ?? "") else {
            throw CNBackupError(.capture, "command \"\(program)\" was not found on PATH: install it or give its full path")
        }
        // Every descriptor made here is close-on-exec from birth: a child started at the same time
        // by another thread must not inherit them (it would hold a pipe open and no reader would
        // see its end). Glibc's pipe2 is not visible to Swift, so the "pipes" are socket pairs,
        // which take SOCK_CLOEXEC and which children read and write like pipes.
        var parentEnds: [Int32] = [], childEnds: [Int32] = []
        func makePipe() throws -> (read: Int32, write: Int32) {
            var fds: [Int32] = [0, 0]
            guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
                throw CNBackupError(.io, "cannot create a pipe: \(String(cString: strerror(errno)))")
            }
            return (fds[0], fds[1])
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        var stdinFd: Int32?, stdoutFd: Int32?, stderrFd: Int32?
        do {
            if inputPipe {
                let p = try makePipe(); parentEnds.append(p.write); childEnds.append(p.read); stdinFd = p.write
                posix_spawn_file_actions_adddup2(&actions, p.read, 0)
            } else {
                posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
            }
            for (target, choice) in [(Int32(1), output), (Int32(2), error)] {
                switch choice {
                case .pipe:
                    let p = try makePipe(); parentEnds.append(p.read); childEnds.append(p.write)
                    if target == 1 { stdoutFd = p.read } else { stderrFd = p.read }
                    posix_spawn_file_actions_adddup2(&actions, p.write, target)
                case .discard:
                    posix_spawn_file_actions_addopen(&actions, target, "/dev/null", O_WRONLY, 0)
                case .file(let fd):
                    posix_spawn_file_actions_adddup2(&actions, fd, target)
                }
            }
        } catch {
            for fd in parentEnds + childEnds { close(fd) }
            throw error
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t(), mask = sigset_t()
        sigemptyset(&defaults); sigemptyset(&mask)
        for signal in [SIGPIPE, SIGTERM, SIGINT, SIGHUP] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setsigmask(&attributes, &mask)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        var spawned = [executable] + arguments.dropFirst()
        var path = executable
        if let setpriv = Self.setpriv {
            spawned = [setpriv, "--pdeathsig", "KILL", "--"] + spawned
            path = setpriv
        }
        let argv = spawned.map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for p in argv + envp { free(p) } }
        var child: pid_t = 0
        let result = Spawner.shared.run { posix_spawn(&child, path, &actions, &attributes, argv, envp) }
        for fd in childEnds { close(fd) }
        guard result == 0 else {
            for fd in parentEnds { close(fd) }
            throw CNBackupError(.capture, "could not start \(name): \(String(cString: strerror(result)))")
        }
        pid = child
        standardInput = stdinFd; standardOutput = stdoutFd; standardError = stderrFd
        LastResort.register(processGroup: child)
    }

    /// util-linux's `setpriv`, when this host has one (Debian's util-linux, in every image cnbackup
    /// ships in); without it, children do not die with a killed cnbackup.
    static let setpriv: String? = resolve("setpriv", path: "/usr/bin:/bin:/usr/sbin:/sbin")

    /// Waits for the child to end, then stops anything it left running in its group.
    @discardableResult
    package func wait() -> Termination {
        if let done = lock.withLock({ termination }) { return done }
        var status: Int32 = 0
        var reaped: pid_t = -1
        repeat { reaped = waitpid(pid, &status, 0) } while reaped < 0 && errno == EINTR
        let low = status & 0x7f
        // Reaped by someone else (ECHILD): the outcome is unknown, and unknown is never success.
        let ended: Termination = reaped < 0 ? .exited(255) : low == 0 ? .exited((status >> 8) & 0xff) : .signaled(low)
        lock.withLock {
            termination = ended
            // Grandchildren outlive a shell that did not wait for them: they go with it.
            _ = kill(-pid, SIGKILL)
        }
        LastResort.unregister(processGroup: pid)
        return ended
    }

    /// Sends `signal` to the child's whole group, unless it was already reaped (its pid may
    /// belong to someone else by then).
    package func signalGroup(_ signal: Int32) {
        lock.withLock { if termination == nil { _ = kill(-pid, signal) } }
    }

    /// SIGTERM to the group, then SIGKILL after `grace` seconds if the child has not ended; waits.
    @discardableResult
    package func stop(grace: TimeInterval = 5) -> Termination {
        signalGroup(SIGTERM)
        let deadline = Date().addingTimeInterval(grace)
        var status: Int32 = 0
        while Date() < deadline {
            if lock.withLock({ termination }) != nil { break }
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid {
                let low = status & 0x7f
                let ended: Termination = low == 0 ? .exited((status >> 8) & 0xff) : .signaled(low)
                lock.withLock { termination = ended; _ = kill(-pid, SIGKILL) }
                LastResort.unregister(processGroup: pid)
                return ended
            }
            usleep(20_000)
        }
        signalGroup(SIGKILL)
        return wait()
    }
}

extension ChildProcess {
    /// For a session this process holds open (psql reading its commands from our pipe): reads the
    /// child's standard output until `complete` says the answer is all there. Throws `.cancelled`
    /// once `cancellation` is, `timedOut` after `timeout` seconds, and `closed(its stderr)` when the
    /// child ends its output first (it refused the command, or its connection failed).
    package func readAnswer(timeout: TimeInterval, cancellation: Cancellation?, what: String, until complete: ([UInt8]) -> Bool,
                    timedOut: () -> CNBackupError, closed: (String) -> CNBackupError) throws -> [UInt8] {
        var output: [UInt8] = []
        let deadline = Date().addingTimeInterval(timeout)
        var buffer = [UInt8](repeating: 0, count: 65536)
        while !complete(output) {
            let left = deadline.timeIntervalSinceNow
            guard left > 0 else { throw timedOut() }
            try cancellation?.check(what)
            var poller = pollfd(fd: standardOutput!, events: Int16(POLLIN), revents: 0)
            if poll(&poller, 1, Int32(min(left, 1) * 1000)) <= 0 { continue }
            let n = read(standardOutput!, &buffer, buffer.count)
            if n <= 0 {
                let errors = (try? FileDescriptorStream(fd: standardError!, owns: false, chunkSize: 4096, what: name).readAll(limit: 1 << 16)) ?? []
                throw closed(String(decoding: errors, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
            }
            output += buffer[0..<n]
        }
        return output
    }
}

/// The one thread that spawns every child, and never ends: a child's parent-death signal fires
/// when the thread that spawned it ends, so children spawned by a capture's worker thread would be
/// killed when that thread finished, not when the process dies.
private final class Spawner: @unchecked Sendable {
    // @unchecked: `jobs` is only touched under `condition`; a job runs on the spawner thread while
    // its caller waits for it.
    static let shared = Spawner()
    private let condition = NSCondition()
    private var jobs: [() -> Void] = []

    private init() {
        let thread = Thread { [self] in
            while true {
                condition.lock()
                while jobs.isEmpty { condition.wait() }
                let job = jobs.removeFirst()
                condition.unlock()
                job()
            }
        }
        thread.name = "spawner"
        thread.stackSize = 1 << 20
        thread.start()
    }

    /// Runs `body` on the spawner thread and returns its result.
    func run(_ body: @escaping () -> Int32) -> Int32 {
        var result: Int32 = 0
        let done = DispatchSemaphore(value: 0)
        condition.lock()
        jobs.append { result = body(); done.signal() }
        condition.signal()
        condition.unlock()
        done.wait()
        return result
    }
}

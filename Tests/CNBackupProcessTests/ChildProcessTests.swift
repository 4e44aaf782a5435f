import Foundation
import Testing
import CNBackupCore
import CNBackupProcess

/// Children: their output streamed, their exit checked, their whole group stopped.
@Suite struct ChildProcessTests {
    @Test func aChildOutlivesTheThreadThatStartedIt() throws {
        // The parent-death signal is tied to the spawning thread: children are spawned by one
        // thread that never ends, so a capture thread that finishes does not kill its child.
        final class Box: @unchecked Sendable { var child: ChildProcess? }   // written once, then read after the thread ended
        let box = Box()
        let ended = DispatchSemaphore(value: 0)
        let thread = Thread {
            box.child = try? ChildProcess(arguments: ["sleep", "30"], environment: ChildProcess.environment(adding: [:]), output: .discard, error: .discard)
            ended.signal()
        }
        thread.start()
        ended.wait()
        usleep(300_000)   // the thread has ended by now
        let child = try #require(box.child)
        // Still running: our SIGTERM ends it (a parent-death SIGKILL would have ended it first).
        #expect(child.stop(grace: 1) == .signaled(SIGTERM), "the child died with the thread that started it")
    }

    @Test func outputIsStreamedAndExitZeroEndsIt() throws {
        let bytes = try ChildProcessStream(arguments: ["/bin/sh", "-c", "printf 'one\\ntwo\\n'"]).readAll(limit: 1024)
        #expect(String(decoding: bytes, as: UTF8.self) == "one\ntwo\n")
    }

    @Test func aNonZeroExitIsAnErrorCarryingTheChildsStandardError() throws {
        let stream = try ChildProcessStream(arguments: ["/bin/sh", "-c", "echo partial; echo 'the reason' >&2; exit 3"])
        let error = #expect(throws: CNBackupError.self) { try stream.readAll(limit: 1024) }
        #expect(error?.message.contains("exited with status 3") == true)
        #expect(error?.cause?.contains("the reason") == true)
    }

    @Test func stoppingAChildStopsTheGrandchildrenInItsGroup() throws {
        let folder = try PrivateFolder.create(prefix: "cnbackup-process-test-")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        // The shell starts a grandchild that would outlive it, and writes the grandchild's pid.
        let child = try ChildProcess(arguments: ["/bin/sh", "-c", "sleep 60 & echo $! > \(folder)/pid; wait"],
                                     environment: ChildProcess.environment(adding: [:]))
        var grandchild: pid_t = 0
        for _ in 0..<250 where grandchild == 0 {
            grandchild = pid_t((try? String(contentsOfFile: folder + "/pid", encoding: .utf8))?
                .trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? 0
            if grandchild == 0 { usleep(20_000) }
        }
        #expect(grandchild > 0)
        #expect(kill(grandchild, 0) == 0)
        let ended = child.stop(grace: 2)
        #expect(ended != .exited(0))
        // Gone, or a zombie waiting for init to reap it: either way no longer running.
        var gone = false
        for _ in 0..<100 where !gone {
            let state = (try? String(contentsOfFile: "/proc/\(grandchild)/stat", encoding: .utf8)).map { $0.split(separator: " ")[2] }
            gone = state == nil || state == "Z"
            if !gone { usleep(20_000) }
        }
        #expect(gone)
    }

    @Test func aProgramThatCannotStartSaysSo() throws {
        let error = #expect(throws: CNBackupError.self) {
            try ChildProcessStream(arguments: ["/nonexistent/cnbackup-no-such-tool"]).readAll(limit: 16)
        }
        #expect(error != nil)
    }
}

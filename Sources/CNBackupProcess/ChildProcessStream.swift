import Foundation
import CNBackupCore

/// Streams a child process's standard output. The child gets a minimal, explicit environment (no
/// inherited secrets), no standard input and a process group of its own; its standard error is
/// drained concurrently into a bounded tail for the error message, by a thread this stream joins.
/// The stream ends cleanly only when the process exited 0. Cancelling the operation sends SIGTERM
/// to the child's whole group, and the stream then throws `.cancelled`.
public final class ChildProcessStream: ByteStream {
    private let child: ChildProcess
    private let output: FileDescriptorStream
    private let errorTail = ErrorTail()
    private let errorDrained = DispatchSemaphore(value: 0)
    private let cancellation: Cancellation?
    private var cancelRegistration: Int?
    private var finished = false

    /// - Parameters:
    ///   - arguments: the program (a path, or a name looked up on PATH) and its arguments.
    ///   - environment: variables to set on top of the minimal environment.
    ///   - cancellation: stops the child (and its group) when cancelled.
    public init(arguments: [String], environment: [String: String] = [:], cancellation: Cancellation? = nil) throws {
        try cancellation?.check("the capture")
        child = try ChildProcess(arguments: arguments, environment: ChildProcess.environment(adding: environment))
        output = FileDescriptorStream(fd: child.standardOutput!, owns: true, what: "the output of \(child.name)")
        self.cancellation = cancellation
        let errorFd = child.standardError!
        let tail = errorTail, drained = errorDrained
        let thread = Thread {
            let stream = FileDescriptorStream(fd: errorFd, owns: true, chunkSize: 4096, what: "stderr")
            while let chunk = try? stream.next() { tail.append(chunk) }
            stream.close()
            drained.signal()
        }
        thread.name = "stderr-\(child.name)"
        thread.start()
        let child = self.child
        cancelRegistration = cancellation?.onCancel { child.signalGroup(SIGTERM) }
    }

    package static func resolve(_ program: String, path: String) -> String? { ChildProcess.resolve(program, path: path) }

    public func next() throws -> [UInt8]? {
        if finished { return nil }
        if let chunk = try output.next() { return chunk }
        finished = true
        let termination = child.wait()
        errorDrained.wait()
        output.close()
        release()
        if cancellation?.isCancelled == true, termination != .exited(0) {
            throw CNBackupError(.cancelled, "\(child.name) was stopped by a signal to cnbackup")
        }
        switch termination {
        case .exited(0): return nil
        case .exited(let status):
            throw CNBackupError(.capture, "\(child.name) exited with status \(status)", cause: errorTail.text)
        case .signaled(let signal):
            throw CNBackupError(.capture, "\(child.name) was killed by signal \(signal)", cause: errorTail.text)
        }
    }

    /// Stops the child and its group when nobody reads its output any more (a failure downstream).
    public func close() {
        if finished { return }
        finished = true
        output.close()
        child.stop()
        errorDrained.wait()
        release()
    }

    private func release() {
        if let id = cancelRegistration { cancellation?.remove(id); cancelRegistration = nil }
    }

    deinit { close() }
}

/// The last few KiB of a child's standard error.
package final class ErrorTail: @unchecked Sendable {
    // @unchecked: `bytes` is only touched under `lock`.
    private let lock = NSLock()
    private var bytes: [UInt8] = []
    private let limit = 4096

    package func append(_ chunk: [UInt8]) {
        lock.lock(); defer { lock.unlock() }
        bytes += chunk
        if bytes.count > limit { bytes.removeFirst(bytes.count - limit) }
    }

    package var text: String {
        lock.lock(); defer { lock.unlock() }
        return String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

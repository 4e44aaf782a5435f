import Foundation
import CNBackupCore
import CNBackupStorage

/// Streams a child process's standard output. The child gets a minimal, explicit environment (no
/// inherited secrets), no standard input, and its standard error is drained concurrently into a
/// bounded tail for the error message. The stream ends cleanly only when the process exited 0.
public final class ChildProcessStream: ByteStream {
    private let process = Process()
    private let output: FileDescriptorStream
    private let outputHandle: FileHandle
    private let errorTail: ErrorTail
    private let errorDrained = DispatchSemaphore(value: 0)
    private let name: String
    private var finished = false

    /// Variables a child may inherit; everything else, including credentials, stays behind.
    static let inheritedVariables = ["PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "USER", "KUBECONFIG"]

    /// - Parameters:
    ///   - arguments: the program (a path, or a name looked up on PATH) and its arguments.
    ///   - environment: variables to set on top of the minimal environment.
    public init(arguments: [String], environment: [String: String] = [:]) throws {
        guard let program = arguments.first else { throw CNBackupError(.invalidInput, "empty command") }
        name = (program as NSString).lastPathComponent
        let parentEnvironment = ProcessInfo.processInfo.environment
        var childEnvironment: [String: String] = [:]
        for key in Self.inheritedVariables { if let value = parentEnvironment[key] { childEnvironment[key] = value } }
        if childEnvironment["PATH"] == nil { childEnvironment["PATH"] = "/usr/local/bin:/usr/bin:/bin" }
        childEnvironment.merge(environment) { _, new in new }
        guard let executable = Self.resolve(program, path: childEnvironment["PATH"] ?? "") else {
            throw CNBackupError(.capture, "command \"\(program)\" was not found on PATH: install it or give its full path")
        }
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = Array(arguments.dropFirst())
        process.environment = childEnvironment
        process.standardInput = FileHandle.nullDevice
        let stdoutPipe = Pipe(), stderrPipe = Pipe()
        process.standardOutput = stdoutPipe
        process.standardError = stderrPipe
        outputHandle = stdoutPipe.fileHandleForReading
        output = FileDescriptorStream(fd: outputHandle.fileDescriptor, owns: false, what: "the output of \(name)")
        errorTail = ErrorTail()
        do {
            try process.run()
        } catch {
            throw CNBackupError(.capture, "could not start \(name): \(error.localizedDescription)")
        }
        // The parent's copies of the write ends must go, or reading never sees end of file.
        try? stdoutPipe.fileHandleForWriting.close()
        try? stderrPipe.fileHandleForWriting.close()
        let errorHandle = stderrPipe.fileHandleForReading
        let tail = errorTail, drained = errorDrained
        let box = UncheckedBox(errorHandle)
        Thread.detachNewThread {
            let stream = FileDescriptorStream(fd: box.value.fileDescriptor, owns: false, chunkSize: 4096, what: "stderr")
            while let chunk = try? stream.next() { tail.append(chunk) }
            try? box.value.close()
            drained.signal()
        }
    }

    static func resolve(_ program: String, path: String) -> String? {
        if program.contains("/") { return FileManager.default.isExecutableFile(atPath: program) ? program : nil }
        for directory in path.split(separator: ":") {
            let candidate = "\(directory)/\(program)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    public func next() throws -> [UInt8]? {
        if finished { return nil }
        if let chunk = try output.next() { return chunk }
        finished = true
        process.waitUntilExit()
        errorDrained.wait()
        try? outputHandle.close()
        let status = process.terminationStatus
        if process.terminationReason == .uncaughtSignal {
            throw CNBackupError(.capture, "\(name) was killed by signal \(status)", cause: errorTail.text)
        }
        guard status == 0 else {
            throw CNBackupError(.capture, "\(name) exited with status \(status)", cause: errorTail.text)
        }
        return nil
    }

    /// Stops the child when nobody reads its output any more (a failure downstream).
    public func close() {
        if finished { return }
        finished = true
        if process.isRunning { process.terminate() }
        try? outputHandle.close()
        process.waitUntilExit()
        errorDrained.wait()
    }
}

/// The last few KiB of a child's standard error.
final class ErrorTail: @unchecked Sendable {
    // @unchecked: `bytes` is only touched under `lock`.
    private let lock = NSLock()
    private var bytes: [UInt8] = []
    private let limit = 4096

    func append(_ chunk: [UInt8]) {
        lock.lock(); defer { lock.unlock() }
        bytes += chunk
        if bytes.count > limit { bytes.removeFirst(bytes.count - limit) }
    }

    var text: String {
        lock.lock(); defer { lock.unlock() }
        return String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

import Foundation

/// A stop request that reaches every stage of one operation: the executable cancels it on
/// SIGTERM or SIGINT, and each part that can block for long (a child process, a capture's stream)
/// registers what to do when it comes. Cancelling twice does nothing more.
public final class Cancellation: @unchecked Sendable {
    // @unchecked: `cancelled`, `handlers` and `nextId` are only touched under `lock`.
    private let lock = NSLock()
    private var cancelled = false
    private var handlers: [Int: @Sendable () -> Void] = [:]
    private var nextId = 0

    public init() {}

    public var isCancelled: Bool { lock.lock(); defer { lock.unlock() }; return cancelled }

    /// Marks the operation stopped and runs every registered handler once, on the calling thread.
    public func cancel() {
        lock.lock()
        if cancelled { lock.unlock(); return }
        cancelled = true
        let toRun = handlers.values
        handlers.removeAll()
        lock.unlock()
        for handler in toRun { handler() }
    }

    /// Runs `handler` when the operation is cancelled (at once when it already is). Returns the id
    /// to pass to `remove` once the resource the handler stops is gone.
    @discardableResult
    package func onCancel(_ handler: @escaping @Sendable () -> Void) -> Int {
        lock.lock()
        if cancelled { lock.unlock(); handler(); return -1 }
        nextId += 1
        let id = nextId
        handlers[id] = handler
        lock.unlock()
        return id
    }

    package func remove(_ id: Int) {
        lock.lock(); defer { lock.unlock() }
        handlers[id] = nil
    }

    /// Throws `.cancelled` once the operation was stopped.
    package func check(_ what: @autoclosure () -> String) throws {
        if isCancelled { throw CNBackupError(.cancelled, "\(what()) was stopped by a signal") }
    }
}

/// Passes `upstream` through, and throws `.cancelled` at the next chunk once the operation was
/// stopped: a capture that has no child to signal (a file, a folder, an HTTP body) still ends,
/// and the store aborts what it was writing.
public final class CancellableStream: ByteStream {
    private let upstream: ByteStream
    private let cancellation: Cancellation
    private let what: String

    public init(_ upstream: ByteStream, cancellation: Cancellation, what: String) {
        self.upstream = upstream; self.cancellation = cancellation; self.what = what
    }

    public func next() throws -> [UInt8]? {
        try cancellation.check(what)
        return try upstream.next()
    }

    public func close() { upstream.close() }
}

import Foundation

/// Bytes moved by one task (a component being captured, restored, verified or copied), for a
/// progress display. Counting costs one locked add per chunk; nothing is shown unless a
/// `ProgressObserver` is installed (the CLI does so only on a terminal).
public final class ProgressMeter: @unchecked Sendable {
    // @unchecked: `done` and `finished` are only touched under `lock`.
    public let name: String
    public let total: Int64?
    public let started = Date()
    private let lock = NSLock()
    private var done: Int64 = 0
    private var finishedFlag = false

    package init(name: String, total: Int64?) { self.name = name; self.total = total }

    package func add(_ count: Int) { lock.lock(); done += Int64(count); lock.unlock() }
    public var bytes: Int64 { lock.lock(); defer { lock.unlock() }; return done }
    public var isFinished: Bool { lock.lock(); defer { lock.unlock() }; return finishedFlag }
    package func finish() { lock.lock(); finishedFlag = true; lock.unlock() }
}

public protocol ProgressObserver: AnyObject, Sendable {
    func started(_ meter: ProgressMeter)
    func finished(_ meter: ProgressMeter)
}

public enum Progress {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var current: ProgressObserver?

    /// The CLI installs one on a terminal; the library never prints progress itself.
    public static var observer: ProgressObserver? {
        get { lock.lock(); defer { lock.unlock() }; return current }
        set { lock.lock(); current = newValue; lock.unlock() }
    }

    /// Wraps `stream` so the bytes that pass are counted under `name`; without an observer the
    /// stream is returned as it is.
    package static func track(_ stream: ByteStream, name: String, total: Int64?) -> ByteStream {
        guard let observer else { return stream }
        let meter = ProgressMeter(name: name, total: total)
        observer.started(meter)
        return CountingStream(stream, meter: meter, observer: observer)
    }
}

/// Counts the bytes that pass into a meter, and reports the meter finished at the end or on close.
package final class CountingStream: ByteStream {
    private let upstream: ByteStream
    private let meter: ProgressMeter
    private let observer: ProgressObserver

    package init(_ upstream: ByteStream, meter: ProgressMeter, observer: ProgressObserver) {
        self.upstream = upstream; self.meter = meter; self.observer = observer
    }

    package func next() throws -> [UInt8]? {
        do {
            guard let chunk = try upstream.next() else { end(); return nil }
            meter.add(chunk.count)
            return chunk
        } catch {
            end(); throw error
        }
    }

    package func close() { end(); upstream.close() }

    private func end() {
        if !meter.isFinished { meter.finish(); observer.finished(meter) }
    }
}

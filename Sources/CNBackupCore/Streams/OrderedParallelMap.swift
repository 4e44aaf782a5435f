import Foundation

/// Applies `transform` to the blocks a sequential `source` yields, on `workers` threads, and hands
/// the results out in the source's order. At most `window` blocks are read and not yet handed
/// out, which bounds memory to `window` blocks and their results however long the input is.
///
/// The source is called by one thread at a time (whichever worker is free), so it may be an
/// ordinary stream; the first error, from the source or a transform, ends everything and is
/// thrown to the consumer.
package final class OrderedParallelMap<Input, Output>: @unchecked Sendable {
    // @unchecked: every field below is touched only under `condition`, except `source` and
    // `transform`, which the `reading` flag and the transform's own purity keep safe.
    private let condition = NSCondition()
    private let source: () throws -> Input?
    private let transform: (Input) throws -> Output
    private let window: Int
    private var reading = false
    private var nextSequence = 0
    private var consumed = 0
    /// The number of blocks once the source ended.
    private var total: Int?
    private var results: [Int: Output] = [:]
    private var failure: Error?
    private var stopped = false
    private var running: Int

    package init(workers: Int, window: Int, name: String, source: @escaping () throws -> Input?,
                 transform: @escaping (Input) throws -> Output) {
        self.source = source
        self.transform = transform
        self.window = max(window, workers, 1)
        running = max(workers, 1)
        for index in 0..<running {
            let thread = Thread { [self] in work() }
            thread.name = "\(name)-\(index)"
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    private func work() {
        defer {
            condition.lock(); running -= 1; condition.broadcast(); condition.unlock()
        }
        while true {
            condition.lock()
            while !stopped && total == nil && (reading || nextSequence - consumed >= window) { condition.wait() }
            if stopped || total != nil { condition.unlock(); return }
            reading = true
            let sequence = nextSequence
            nextSequence += 1
            condition.unlock()

            let block: Input?
            do { block = try source() } catch { fail(error); return }
            condition.lock()
            reading = false
            if block == nil { total = sequence }
            condition.broadcast()
            condition.unlock()
            guard let block else { return }

            do {
                let output = try transform(block)
                condition.lock(); results[sequence] = output; condition.broadcast(); condition.unlock()
            } catch {
                fail(error); return
            }
        }
    }

    private func fail(_ error: Error) {
        condition.lock()
        if failure == nil { failure = error }
        stopped = true
        condition.broadcast()
        condition.unlock()
    }

    /// The next result in order, or nil once every block was handed out.
    package func next() throws -> Output? {
        condition.lock(); defer { condition.unlock() }
        while true {
            if let failure { throw failure }
            // Stopped by its owner: a consumer still waiting (the next stage's worker) gives up too.
            if stopped { throw ChannelClosed() }
            if let total, consumed >= total { return nil }
            if let output = results.removeValue(forKey: consumed) {
                consumed += 1
                condition.broadcast()
                return output
            }
            condition.wait()
        }
    }

    /// Stops the workers (after the current block each) and waits until none runs. The caller
    /// closes the source's upstream first when a worker may be blocked reading it.
    package func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        while running > 0 { condition.wait() }
        results.removeAll()
        condition.unlock()
    }
}

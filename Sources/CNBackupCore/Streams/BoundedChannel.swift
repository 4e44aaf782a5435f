import Foundation

/// A queue of at most `capacity` chunks between a producer thread and a consumer: `send` blocks
/// while it is full, `receive` while it is empty. This is the backpressure that keeps memory flat
/// however large the input: at most `capacity` chunks wait between two stages.
package final class BoundedChannel: @unchecked Sendable {
    // @unchecked: every field is read and written only while `condition` is locked.
    private let condition = NSCondition()
    private var items: [[UInt8]] = []
    private var head = 0
    private let capacity: Int
    private var finished = false
    private var failure: Error?
    private var consumerGone = false

    package init(capacity: Int) { self.capacity = max(1, capacity) }

    /// Blocks until there is room. Throws `ChannelClosed` once the consumer has gone away.
    package func send(_ chunk: [UInt8]) throws {
        condition.lock(); defer { condition.unlock() }
        while items.count - head >= capacity && !consumerGone { condition.wait() }
        if consumerGone { throw ChannelClosed() }
        items.append(chunk)
        condition.broadcast()
    }

    /// Ends the stream, with an error when the producer failed.
    package func finish(error: Error? = nil) {
        condition.lock(); defer { condition.unlock() }
        finished = true
        if failure == nil { failure = error }
        condition.broadcast()
    }

    package func receive() throws -> [UInt8]? {
        condition.lock(); defer { condition.unlock() }
        while items.count == head && !finished { condition.wait() }
        if items.count > head {
            let chunk = items[head]
            // Drop the queue's reference now: a consumed chunk must not stay alive until compaction.
            items[head] = []
            head += 1
            if head >= capacity { items.removeFirst(head); head = 0 }
            condition.broadcast()
            return chunk
        }
        if let failure { throw failure }
        return nil
    }

    /// The consumer will not read again: wake and stop the producer, drop what is queued.
    package func closeFromConsumer() {
        condition.lock(); defer { condition.unlock() }
        consumerGone = true
        items.removeAll(); head = 0
        condition.broadcast()
    }
}

package struct ChannelClosed: Error {}

/// Runs `upstream` on a thread of its own and hands its chunks over through a bounded channel, so
/// the work of the stages before and after this point overlaps on different cores.
public final class PipelinedStream: ByteStream, @unchecked Sendable {
    // @unchecked: `upstream` is touched only by the producer thread once started; the consumer
    // side touches only the channel, which locks.
    private let channel: BoundedChannel
    private let done = DispatchSemaphore(value: 0)
    private var closed = false

    /// - Parameters:
    ///   - upstream: the stream to run ahead on its own thread.
    ///   - capacity: how many chunks may wait between the two sides.
    ///   - name: the thread's name, for debuggers and profiles.
    public init(_ upstream: ByteStream, capacity: Int = 2, name: String) {
        let channel = BoundedChannel(capacity: capacity)
        self.channel = channel
        let box = UncheckedBox(upstream)
        let done = self.done
        let thread = Thread {
            do {
                while let chunk = try box.value.next() { try channel.send(chunk) }
                channel.finish()
            } catch is ChannelClosed {
                channel.finish()
            } catch {
                channel.finish(error: error)
            }
            box.value.close()
            done.signal()
        }
        thread.name = name
        thread.stackSize = 1 << 20
        thread.start()
    }

    public func next() throws -> [UInt8]? { try channel.receive() }

    /// Stops the producer and waits for its thread to let go of the upstream stream.
    public func close() {
        if closed { return }
        closed = true
        channel.closeFromConsumer()
        done.wait()
    }

    deinit { close() }
}

/// Moves a non-Sendable value to another thread that becomes its only user.
package struct UncheckedBox<T>: @unchecked Sendable {
    // @unchecked: the creator hands the value over and does not touch it again.
    package let value: T
    package init(_ value: T) { self.value = value }
}

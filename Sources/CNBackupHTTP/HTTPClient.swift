// CNBackupHTTP: bytes over HTTP(S) through libcurl (CCurl, behind this one file) and RetryPolicy,
// the one retry policy of every network caller. It may know CNBackupCore; it knows nothing of S3,
// of backups or of Canton.
import CCurl
import Foundation
import CNBackupCore

// The one door to libcurl: every curl call of cnbackup is in this file. Each easy handle has one
// owner (`EasyHandle`) that frees it in deinit; handles wait in a locked pool between requests so
// their connections (and TLS sessions) are reused; callbacks reach Swift through a context object
// that outlives the transfer.

/// One HTTP request. The body, when there is one, is pulled from `body` as curl sends it and must
/// be exactly `bodyLength` bytes: object stores refuse uploads of unknown length.
package struct HTTPRequest {
    package var method: String
    package var url: String
    package var headers: [(String, String)] = []
    package var body: ByteStream? = nil
    package var bodyLength: Int64 = 0

    package init(method: String, url: String, headers: [(String, String)] = [], body: ByteStream? = nil, bodyLength: Int64 = 0) {
        self.method = method; self.url = url; self.headers = headers; self.body = body; self.bodyLength = bodyLength
    }
}

package struct HTTPResponse: Sendable {
    package var status: Int
    /// Names lower-cased, in the order received.
    package var headers: [(String, String)]
    package var body: [UInt8]

    package func header(_ name: String) -> String? {
        let name = name.lowercased()
        return headers.last(where: { $0.0 == name })?.1
    }
}

/// The request did not complete at the transport level (no connection, reset, timeout, TLS).
package struct HTTPTransportError: Error, CustomStringConvertible {
    package let curlCode: Int
    package let message: String
    package let host: String

    package init(curlCode: Int, message: String, host: String) { self.curlCode = curlCode; self.message = message; self.host = host }

    package var description: String { "HTTP transfer with \(host) failed: \(message) (curl error \(curlCode))" }

    /// The likely fix, for failures a retry cannot mend.
    package var hint: String? {
        switch curlCode {
        case Int(CURLE_COULDNT_RESOLVE_HOST.rawValue):
            return "the host name \(host) does not resolve: check the endpoint (--endpoint / store.endpoint); a bucket addressed as BUCKET.HOST needs that name in DNS, else use path-style (--path-style / pathStyle: true)"
        case Int(CURLE_SSL_CONNECT_ERROR.rawValue):
            return "the TLS handshake with \(host) failed: does the endpoint speak https on that port? (an http:// server given as https://, or the wrong port)"
        case Int(CURLE_PEER_FAILED_VERIFICATION.rawValue), Int(CURLE_SSL_CACERT_BADFILE.rawValue), Int(CURLE_SSL_CERTPROBLEM.rawValue):
            return "the TLS certificate of \(host) is not trusted: give the CA that signed it (--ca-file / store.caFile), or check the host name in the endpoint"
        case Int(CURLE_COULDNT_CONNECT.rawValue):
            return "nothing answered at \(host): check the endpoint's host and port, and that the server runs"
        default:
            return nil
        }
    }

    /// Failures that a later attempt may not meet: connection, timeouts, resets.
    package var isRetryable: Bool {
        // Not retried: a host name that does not resolve and a TLS handshake that fails (a protocol
        // mismatch, an untrusted certificate) fail the same way the next four times; the hint says
        // what to fix instead.
        let retryable: [CURLcode] = [CURLE_COULDNT_CONNECT, CURLE_OPERATION_TIMEDOUT,
                                     CURLE_SEND_ERROR, CURLE_RECV_ERROR, CURLE_GOT_NOTHING, CURLE_PARTIAL_FILE,
                                     CURLE_HTTP2, CURLE_HTTP2_STREAM, CURLE_HTTP3,
                                     // A reused connection died mid-body and curl cannot rewind our
                                     // stream: a new attempt starts the body afresh.
                                     CURLE_SEND_FAIL_REWIND]
        return retryable.contains { Int($0.rawValue) == curlCode }
    }
}

package struct HTTPClientOptions: Sendable {
    /// A PEM bundle of certificate authorities to trust instead of the system's.
    package var caFile: String? = nil
    package var connectTimeoutSeconds = 30
    /// Abort a transfer that moves less than one byte per second for this long.
    package var stallTimeoutSeconds = 120
    /// Abort a transfer that takes longer than this in all (0: no limit; a trickle that never
    /// stalls would otherwise hold a run for ever).
    package var totalTimeoutSeconds = 0
    /// Per-connection limits in bytes per second (curl cannot share one limit between handles).
    package var maxSendBytesPerSecond: Int64? = nil
    package var maxReceiveBytesPerSecond: Int64? = nil
    /// Idle handles kept for reuse.
    package var poolSize = 16

    package init(caFile: String? = nil, connectTimeoutSeconds: Int = 30, stallTimeoutSeconds: Int = 120, totalTimeoutSeconds: Int = 0,
                 maxSendBytesPerSecond: Int64? = nil, maxReceiveBytesPerSecond: Int64? = nil, poolSize: Int = 16) {
        self.caFile = caFile; self.connectTimeoutSeconds = connectTimeoutSeconds; self.stallTimeoutSeconds = stallTimeoutSeconds
        self.totalTimeoutSeconds = totalTimeoutSeconds; self.maxSendBytesPerSecond = maxSendBytesPerSecond
        self.maxReceiveBytesPerSecond = maxReceiveBytesPerSecond; self.poolSize = poolSize
    }
}

private let curlGlobalInit: CURLcode = curl_global_init(Int(CURL_GLOBAL_ALL))

/// Owns one CURL easy handle and its error buffer.
private final class EasyHandle {
    let handle: UnsafeMutableRawPointer
    let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE) + 1)

    init() throws {
        guard curlGlobalInit == CURLE_OK, let handle = curl_easy_init() else {
            errorBuffer.deallocate()
            throw CNBackupError(.storage, "libcurl could not be initialised")
        }
        self.handle = handle
    }

    deinit {
        curl_easy_cleanup(handle)
        errorBuffer.deallocate()
    }
}

/// Owns a curl_slist.
private final class HeaderList {
    private(set) var list: UnsafeMutablePointer<curl_slist>? = nil
    init(_ lines: [String]) throws {
        for line in lines {
            guard let next = curl_slist_append(list, line) else {
                throw CNBackupError(.storage, "libcurl could not allocate a header list")
            }
            list = next
        }
    }
    deinit { curl_slist_free_all(list) }
}

/// What the callbacks of one transfer read and write. Touched by the thread running
/// curl_easy_perform only, until that call returns (or `headReady` is signalled) — the semaphore
/// orders it with the thread that reads the results.
private final class TransferContext: @unchecked Sendable {
    // Request body.
    var body: ByteStream?
    var pending: [UInt8] = []
    var pendingOffset = 0
    var bodyError: Error?
    // Response.
    var status = 0
    var headers: [(String, String)] = []
    var collected: [UInt8] = []
    let collectLimit: Int
    var overLimit = false
    /// When set, the body of a 2xx answer goes here chunk by chunk instead of into `collected`.
    var channel: BoundedChannel?
    var onFirstBody: (() -> Void)?

    init(body: ByteStream?, collectLimit: Int) {
        self.body = body
        self.collectLimit = collectLimit
    }
}

private let readCallback: cnb_curl_data_fn = { buffer, size, count, userdata in
    let context = Unmanaged<TransferContext>.fromOpaque(userdata!).takeUnretainedValue()
    let capacity = size * count
    do {
        while context.pendingOffset >= context.pending.count {
            guard let body = context.body, let chunk = try body.next() else { return 0 }
            context.pending = chunk
            context.pendingOffset = 0
        }
    } catch {
        context.bodyError = error
        return Int(CURL_READFUNC_ABORT)
    }
    let n = min(capacity, context.pending.count - context.pendingOffset)
    context.pending.withUnsafeBytes { source in
        UnsafeMutableRawPointer(buffer!).copyMemory(from: source.baseAddress! + context.pendingOffset, byteCount: n)
    }
    context.pendingOffset += n
    return n
}

private let writeCallback: cnb_curl_data_fn = { buffer, size, count, userdata in
    let context = Unmanaged<TransferContext>.fromOpaque(userdata!).takeUnretainedValue()
    let n = size * count
    let bytes = UnsafeRawBufferPointer(start: buffer, count: n)
    if let channel = context.channel, (200..<300).contains(context.status) {
        if let first = context.onFirstBody { context.onFirstBody = nil; first() }
        do { try channel.send(Array(bytes)) } catch { return 0 }  // the reader went away: abort
        return n
    }
    if context.collected.count + n > context.collectLimit { context.overLimit = true; return 0 }
    context.collected.append(contentsOf: bytes)
    return n
}

private let headerCallback: cnb_curl_data_fn = { buffer, size, count, userdata in
    let context = Unmanaged<TransferContext>.fromOpaque(userdata!).takeUnretainedValue()
    let n = size * count
    let line = String(decoding: UnsafeRawBufferPointer(start: buffer, count: n), as: UTF8.self)
        .trimmingCharacters(in: .whitespacesAndNewlines)
    if line.hasPrefix("HTTP/") {
        // A new status line (after a 1xx, or a redirect) starts a new set of headers.
        let parts = line.split(separator: " ")
        context.status = parts.count > 1 ? Int(parts[1]) ?? 0 : 0
        context.headers = []
    } else if let colon = line.firstIndex(of: ":") {
        context.headers.append((line[..<colon].lowercased(),
                                line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
    }
    return n
}

/// A small blocking HTTP client. Safe to call from several threads at once: each request takes
/// an easy handle from the pool and gives it back when done.
package final class HTTPClient: @unchecked Sendable {
    // @unchecked: `idle` is only touched with `lock` held; handles are used by one thread at a time.
    private let lock = NSLock()
    private var idle: [EasyHandle] = []
    package let options: HTTPClientOptions

    package init(options: HTTPClientOptions = HTTPClientOptions()) {
        self.options = options
    }

    private func takeHandle() throws -> EasyHandle {
        lock.lock()
        let handle = idle.popLast()
        lock.unlock()
        return try handle ?? EasyHandle()
    }

    private func giveBack(_ handle: EasyHandle) {
        // Reset drops the options but keeps the connection cache, which is the point of the pool.
        curl_easy_reset(handle.handle)
        lock.lock(); defer { lock.unlock() }
        if idle.count < options.poolSize { idle.append(handle) }
    }

    /// Sends `request` and collects the whole answer (at most `limit` bytes of body).
    package func perform(_ request: HTTPRequest, limit: Int = 64 << 20) throws -> HTTPResponse {
        let context = TransferContext(body: request.body, collectLimit: limit)
        let handle = try takeHandle()
        defer { giveBack(handle) }
        try run(request, on: handle, context: context)
        return HTTPResponse(status: context.status, headers: context.headers, body: context.collected)
    }

    /// Sends `request`; a 2xx answer's body is streamed (read it from the returned stream, whose
    /// transfer runs on a thread of its own), any other answer's body is collected whole.
    package func stream(_ request: HTTPRequest) throws -> (HTTPResponse, ByteStream?) {
        let context = TransferContext(body: request.body, collectLimit: 1 << 20)
        let channel = BoundedChannel(capacity: 16)
        context.channel = channel
        let headReady = DispatchSemaphore(value: 0)
        let done = DispatchSemaphore(value: 0)
        let signalOnce = SignalOnce(headReady)
        context.onFirstBody = { signalOnce.signal() }
        let outcome = TransferOutcome()
        let handle = try takeHandle()
        let box = UncheckedBox((self, handle, request))
        let thread = Thread {
            let (client, handle, request) = box.value
            do {
                try client.run(request, on: handle, context: context)
                channel.finish()
            } catch {
                outcome.error = error
                channel.finish(error: error)
            }
            client.giveBack(handle)
            signalOnce.signal()
            done.signal()
        }
        thread.name = "cnbackup-http"
        thread.stackSize = 1 << 20
        thread.start()
        headReady.wait()
        if (200..<300).contains(context.status) {
            let head = HTTPResponse(status: context.status, headers: context.headers, body: [])
            return (head, HTTPBodyStream(channel: channel, done: done))
        }
        done.wait()
        if let error = outcome.error { throw error }
        return (HTTPResponse(status: context.status, headers: context.headers, body: context.collected), nil)
    }

    private func run(_ request: HTTPRequest, on easy: EasyHandle, context: TransferContext) throws {
        let h = easy.handle
        let host = URL(string: request.url)?.host ?? "?"
        var lines = request.headers.map { "\($0.0): \($0.1)" }
        lines.append("Expect:")  // no 100-continue round trip: S3 answers errors at once anyway
        let headerList = try HeaderList(lines)
        let userdata = Unmanaged.passUnretained(context).toOpaque()
        easy.errorBuffer.initialize(to: 0)

        var codes: [CURLcode] = [
            cnb_curl_setopt_string(h, CURLOPT_URL, request.url),
            cnb_curl_setopt_string(h, CURLOPT_PROTOCOLS_STR, "http,https"),
            cnb_curl_setopt_long(h, CURLOPT_NOSIGNAL, 1),
            cnb_curl_setopt_long(h, CURLOPT_SSL_VERIFYPEER, 1),
            cnb_curl_setopt_long(h, CURLOPT_SSL_VERIFYHOST, 2),
            cnb_curl_setopt_long(h, CURLOPT_TCP_KEEPALIVE, 1),
            cnb_curl_setopt_long(h, CURLOPT_CONNECTTIMEOUT, options.connectTimeoutSeconds),
            cnb_curl_setopt_long(h, CURLOPT_LOW_SPEED_LIMIT, 1),
            cnb_curl_setopt_long(h, CURLOPT_LOW_SPEED_TIME, options.stallTimeoutSeconds),
            // Always set: handles are reused, and 0 clears a limit an earlier request set.
            cnb_curl_setopt_long(h, CURLOPT_TIMEOUT, options.totalTimeoutSeconds),
            cnb_curl_setopt_pointer(h, CURLOPT_ERRORBUFFER, easy.errorBuffer),
            cnb_curl_setopt_slist(h, CURLOPT_HTTPHEADER, headerList.list),
            cnb_curl_setopt_datafn(h, CURLOPT_WRITEFUNCTION, writeCallback),
            cnb_curl_setopt_pointer(h, CURLOPT_WRITEDATA, userdata),
            cnb_curl_setopt_datafn(h, CURLOPT_HEADERFUNCTION, headerCallback),
            cnb_curl_setopt_pointer(h, CURLOPT_HEADERDATA, userdata),
        ]
        if let caFile = options.caFile { codes.append(cnb_curl_setopt_string(h, CURLOPT_CAINFO, caFile)) }
        if let limit = options.maxSendBytesPerSecond {
            codes.append(cnb_curl_setopt_off(h, CURLOPT_MAX_SEND_SPEED_LARGE, curl_off_t(limit)))
        }
        if let limit = options.maxReceiveBytesPerSecond {
            codes.append(cnb_curl_setopt_off(h, CURLOPT_MAX_RECV_SPEED_LARGE, curl_off_t(limit)))
        }
        switch request.method {
        case "GET":
            codes.append(cnb_curl_setopt_long(h, CURLOPT_HTTPGET, 1))
        case "HEAD":
            codes.append(cnb_curl_setopt_long(h, CURLOPT_NOBODY, 1))
        case "PUT", "POST":
            // Upload mode sends the body from the read callback with a Content-Length.
            codes.append(cnb_curl_setopt_long(h, CURLOPT_UPLOAD, 1))
            codes.append(cnb_curl_setopt_off(h, CURLOPT_INFILESIZE_LARGE, curl_off_t(request.bodyLength)))
            codes.append(cnb_curl_setopt_datafn(h, CURLOPT_READFUNCTION, readCallback))
            codes.append(cnb_curl_setopt_pointer(h, CURLOPT_READDATA, userdata))
            if request.method == "POST" { codes.append(cnb_curl_setopt_string(h, CURLOPT_CUSTOMREQUEST, "POST")) }
        default:
            codes.append(cnb_curl_setopt_string(h, CURLOPT_CUSTOMREQUEST, request.method))
        }
        if let bad = codes.first(where: { $0 != CURLE_OK }) {
            throw CNBackupError(.storage, "libcurl refused an option for \(host)", cause: Self.message(bad))
        }

        let code = curl_easy_perform(h)
        withExtendedLifetime(headerList) {}
        if code == CURLE_OK { return }
        if let error = context.bodyError { throw error }   // the request body's own failure
        if context.overLimit {
            throw CNBackupError(.storage, "the answer from \(host) is larger than the \(context.collectLimit) bytes expected")
        }
        let detail = easy.errorBuffer.pointee != 0 ? String(cString: easy.errorBuffer) : Self.message(code)
        throw HTTPTransportError(curlCode: Int(code.rawValue), message: detail, host: host)
    }

    private static func message(_ code: CURLcode) -> String {
        curl_easy_strerror(code).map { String(cString: $0) } ?? "curl error \(code.rawValue)"
    }
}

private final class TransferOutcome: @unchecked Sendable {
    // @unchecked: written by the transfer thread before `done` is signalled, read after waiting on it.
    var error: Error?
}

/// Signals a semaphore the first time only.
private final class SignalOnce: @unchecked Sendable {
    // @unchecked: `fired` is guarded by `lock`.
    private let lock = NSLock()
    private var fired = false
    private let semaphore: DispatchSemaphore
    init(_ semaphore: DispatchSemaphore) { self.semaphore = semaphore }
    func signal() {
        lock.lock(); defer { lock.unlock() }
        if !fired { fired = true; semaphore.signal() }
    }
}

/// The body of a streamed answer. Closing it early aborts the transfer.
private final class HTTPBodyStream: ByteStream {
    private let channel: BoundedChannel
    private let done: DispatchSemaphore
    private var finished = false

    init(channel: BoundedChannel, done: DispatchSemaphore) {
        self.channel = channel
        self.done = done
    }

    func next() throws -> [UInt8]? {
        if finished { return nil }
        do {
            if let chunk = try channel.receive() { return chunk }
        } catch {
            close()
            throw error
        }
        close()
        return nil
    }

    /// Stops the transfer if it is still running and waits for its thread to let go of the handle.
    func close() {
        if finished { return }
        finished = true
        channel.closeFromConsumer()
        done.wait()
    }

    deinit { close() }
}

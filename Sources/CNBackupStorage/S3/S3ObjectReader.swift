import Foundation
import CNBackupCore
import CNBackupHTTP

/// Reading an object as a stream that resumes where a dropped connection left it.
extension S3Store {
    // MARK: - Reading

    /// Opens the body of `key` from byte `start`; on resume `etag` pins the object read so far.
    func openBody(key: String, start: Int64, end: Int64?, etag: String?) throws -> (HTTPResponse, ByteStream?) {
        var headers: [(String, String)] = []
        if start > 0 || end != nil { headers.append(("Range", "bytes=\(start)-\(end.map(String.init) ?? "")")) }
        if let etag { headers.append(("If-Match", etag)) }
        return try sendStreaming(S3Call(method: "GET", key: key, headers: headers, what: "GET"))
    }

}

/// An object's bytes (or a range of them), streamed. A connection lost part-way is picked up
/// again from the next byte, pinned to the same object by its ETag.
final class S3ObjectStream: ByteStream {
    let store: S3Store
    let key: String
    var position: Int64
    let end: Int64?
    var etag: String?
    var body: ByteStream?
    var resumes = 0
    var finished = false

    init(store: S3Store, key: String, start: Int64, end: Int64?) {
        self.store = store; self.key = key; self.position = start; self.end = end
    }

    func open() throws {
        let (response, body) = try store.openBody(key: key, start: position, end: end, etag: etag)
        if end != nil || position > 0, response.status != 206 {
            body?.close()
            throw CNBackupError(.storage, "\(store.displayName)\(key): the server ignored the range asked for (HTTP \(response.status))")
        }
        etag = etag ?? response.header("etag")
        self.body = body
    }

    func next() throws -> [UInt8]? {
        while !finished {
            do {
                if body == nil { try open() }
                if let chunk = try body?.next() {
                    position += Int64(chunk.count)
                    return chunk
                }
                finished = true
                if let end, position != end + 1 {
                    throw CNBackupError(.storage, "\(store.displayName)\(key) ended at byte \(position), before the range's end \(end)")
                }
            } catch let error as HTTPTransportError where error.isRetryable && resumes + 1 < store.settings.retry.maxAttempts {
                body?.close()
                body = nil
                resumes += 1
                Thread.sleep(forTimeInterval: store.settings.retry.delay(after: resumes))
            } catch let error as HTTPTransportError {
                close()
                throw CNBackupError(.storage, "reading \(store.displayName)\(key) failed", cause: error.description)
            }
        }
        return nil
    }

    func close() {
        finished = true
        body?.close()
        body = nil
    }

    deinit { body?.close() }
}

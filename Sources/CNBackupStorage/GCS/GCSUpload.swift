import Foundation
import CNBackupCore
import CNBackupHTTP

/// Writing objects: one multipart request for small ones, a resumable upload for the rest.
///
/// A resumable upload is sequential: GCS appends each chunk at the offset it has persisted. The
/// one chunk in flight is kept, so after a dropped connection, a 5xx or a 401 the upload asks the
/// session how far it got (`Content-Range: bytes */*`) and sends the rest of the chunk from there.
/// Any other failure, or a source that throws, cancels the session (DELETE), so no object appears.
/// Composite uploads are not used: they need delete, which the writer lacks.
extension GCSStore {
    func putSingle(key: String, bytes: [UInt8], options: PutOptions) throws -> ObjectInfo {
        var crc = CRC32C()
        bytes.withUnsafeBytes { crc.update($0) }
        let boundary = "cnbackup-" + (try randomBytes(12)).hex
        var body = Array("--\(boundary)\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n".utf8)
        body += try objectResource(key: key, tags: options.tags, crc32c: crc.value, retentionDays: options.retentionDays)
        body += Array("\r\n--\(boundary)\r\nContent-Type: application/octet-stream\r\n\r\n".utf8)
        body += bytes
        body += Array("\r\n--\(boundary)--\r\n".utf8)
        var query = [("uploadType", "multipart")]
        if options.ifAbsent { query.append(("ifGenerationMatch", "0")) }
        let response = try send(GCSCall(method: "POST", path: uploadPath, query: query,
                                        headers: [("Content-Type", "multipart/related; boundary=\(boundary)")],
                                        body: body, what: "PUT", key: key), accept: [412])
        if response.status == 412 {
            guard let existing = try head(key: key) else { throw conflictVanished(key) }
            return try settleConflict(key: key, existing: existing, size: Int64(bytes.count), digest: SHA256Hasher.hash(bytes))
        }
        return try created(response, key: key, size: Int64(bytes.count), crc: crc.value)
    }

    func putResumable(key: String, head: [UInt8], rest source: ByteStream, options: PutOptions) throws -> ObjectInfo {
        var query = [("uploadType", "resumable")]
        if options.ifAbsent { query.append(("ifGenerationMatch", "0")) }
        let started: HTTPResponse
        do {
            started = try send(GCSCall(method: "POST", path: uploadPath, query: query,
                                       headers: [("Content-Type", "application/json; charset=UTF-8"),
                                                 ("X-Upload-Content-Type", "application/octet-stream")],
                                       body: try objectResource(key: key, tags: options.tags, crc32c: nil, retentionDays: options.retentionDays),
                                       what: "START upload of", key: key), accept: [412])
        } catch {
            source.close()
            throw error
        }
        if started.status == 412 {
            guard let existing = try self.head(key: key) else { source.close(); throw conflictVanished(key) }
            return try settleExisting(existing, key: key, head: head, rest: source, options: options)
        }
        // The session URI is a bearer capability: never in a message or a log. It must be on the
        // endpoint's own host, since the token goes with every request to it.
        guard let session = started.header("location"), session.hasPrefix(origin + "/") else {
            source.close()
            throw CNBackupError(.storage, "GCS did not start an upload session for \(displayName)\(key) on \(origin)")
        }
        do {
            return try uploadChunks(session: session, key: key, head: head, rest: source)
        } catch {
            source.close()
            cancel(session: session)
            throw error
        }
    }

    /// An object is already at `key`: the same bytes (a retried write) are a success, others a conflict.
    private func settleExisting(_ existing: ObjectInfo, key: String, head: [UInt8], rest source: ByteStream,
                                options: PutOptions) throws -> ObjectInfo {
        guard options.settleByDigest else {
            source.close()
            throw CNBackupError(.alreadyExists, "\(displayName)\(key) already exists (\(existing.size) bytes); it is never replaced")
        }
        let hasher = SHA256Hasher()
        hasher.update(head)
        var size = Int64(head.count)
        try source.forEachChunk { hasher.update($0); size += Int64($0.count) }
        return try settleConflict(key: key, existing: existing, size: size, digest: hasher.finalize())
    }

    private func uploadChunks(session: String, key: String, head: [UInt8], rest source: ByteStream) throws -> ObjectInfo {
        var crc = CRC32C()
        head.withUnsafeBytes { crc.update($0) }
        var buffer = head
        var offset: Int64 = 0  // bytes before buffer[0], persisted by GCS
        var ended = false
        while true {
            while buffer.count < settings.chunkSize, !ended {
                guard let chunk = try source.next() else { ended = true; break }
                chunk.withUnsafeBytes { crc.update($0) }
                buffer.append(contentsOf: chunk)
            }
            // Every chunk but the last is a whole number of 256 KiB units.
            let count = ended ? buffer.count : settings.chunkSize
            let total: Int64? = ended ? offset + Int64(buffer.count) : nil
            if let object = try sendChunk(session: session, key: key, chunk: buffer[0..<count], start: offset,
                                          total: total, crc: ended ? crc.value : nil) {
                guard ended else {
                    throw CNBackupError(.storage, "GCS finished the upload of \(displayName)\(key) before its last chunk")
                }
                return try created(object, key: key, size: total ?? 0, crc: crc.value)
            }
            guard !ended else {
                throw CNBackupError(.storage, "GCS did not finish the upload of \(displayName)\(key) after its last chunk")
            }
            buffer.removeFirst(count)
            offset += Int64(count)
        }
    }

    /// Sends `chunk` (bytes `start`…) until GCS has persisted all of it, resending from what it
    /// reports after an interruption. Returns the final answer when the upload finished.
    private func sendChunk(session: String, key: String, chunk: ArraySlice<UInt8>, start: Int64, total: Int64?,
                           crc: UInt32?) throws -> HTTPResponse? {
        let end = start + Int64(chunk.count)
        var sent = start
        var failures = 0
        var lastError: Error = CNBackupError(.storage, "GCS upload of \(displayName)\(key) failed")
        while true {
            let piece = chunk[(chunk.startIndex + Int(sent - start))...]
            let range = piece.isEmpty ? "bytes */\(total ?? end)"
                : "bytes \(sent)-\(end - 1)/\(total.map(String.init) ?? "*")"
            var headers = [("Content-Range", range)]
            if let crc { headers.append(("X-Goog-Hash", "crc32c=" + Self.base64CRC(crc))) }
            let token = try credentials.token()
            var outcome: HTTPResponse?
            do {
                outcome = try client.perform(request(for: GCSCall(method: "PUT", url: session, headers: headers,
                                                                  body: Array(piece), what: "PUT", key: key), token: token))
            } catch let transport as HTTPTransportError where transport.isRetryable {
                lastError = CNBackupError(.storage, "GCS upload of \(displayName)\(key) was interrupted", cause: transport.description)
            } catch let transport as HTTPTransportError {
                throw CNBackupError(.storage, "GCS upload of \(displayName)\(key) failed" + (transport.hint.map { ": " + $0 } ?? ""),
                                    cause: transport.description)
            }
            if let response = outcome {
                switch response.status {
                case 200, 201:
                    return response
                case 308:
                    let persisted = Self.persistedBytes(response)
                    guard persisted >= start, persisted <= end else {
                        throw CNBackupError(.storage, "GCS reports \(persisted) bytes of \(displayName)\(key) persisted, outside the chunk \(start)…\(end) it was sent")
                    }
                    if persisted == end { return nil }
                    if persisted > sent { sent = persisted; continue }  // progress: send the rest
                    lastError = CNBackupError(.storage, "GCS persisted no more of \(displayName)\(key) than \(persisted) bytes")
                case 401:
                    credentials.invalidate(token)
                    lastError = error(for: response, call: GCSCall(method: "PUT", what: "PUT", key: key))
                case 404, 410:
                    throw CNBackupError(.storage, "the upload session of \(displayName)\(key) expired or was cancelled (HTTP \(response.status)); the run must write it again")
                case 412:
                    throw CNBackupError(.alreadyExists, "\(displayName)\(key) was created by someone else during the upload; it was left unchanged")
                default:
                    let failure = error(for: response, call: GCSCall(method: "PUT", what: "PUT", key: key))
                    guard RetryPolicy.isRetryable(status: response.status) else { throw failure }
                    lastError = failure
                }
            }
            failures += 1
            guard failures < settings.retry.maxAttempts else { throw lastError }
            Thread.sleep(forTimeInterval: settings.retry.delay(after: failures))
            // Ask the session how far it got before sending again.
            switch try sessionStatus(session: session, key: key) {
            case .finished(let response): return response
            case .persisted(let persisted):
                guard persisted >= start, persisted <= end else {
                    throw CNBackupError(.storage, "GCS reports \(persisted) bytes of \(displayName)\(key) persisted, outside the chunk \(start)…\(end) being sent")
                }
                if persisted == end && total == nil { return nil }
                sent = persisted
            case .unknown:
                continue
            }
        }
    }

    private enum SessionStatus { case finished(HTTPResponse), persisted(Int64), unknown }

    /// `PUT` with no body and `Content-Range: bytes */*`: 308 with the persisted range, or the
    /// object when the upload finished (its last answer was lost).
    private func sessionStatus(session: String, key: String) throws -> SessionStatus {
        let token = try credentials.token()
        let response: HTTPResponse
        do {
            response = try client.perform(request(for: GCSCall(method: "PUT", url: session, headers: [("Content-Range", "bytes */*")],
                                                               body: [], what: "STATUS of upload", key: key), token: token))
        } catch let transport as HTTPTransportError where transport.isRetryable {
            return .unknown
        }
        switch response.status {
        case 200, 201: return .finished(response)
        case 308: return .persisted(Self.persistedBytes(response))
        case 401: credentials.invalidate(token); return .unknown
        case 404, 410:
            throw CNBackupError(.storage, "the upload session of \(displayName)\(key) expired or was cancelled (HTTP \(response.status)); the run must write it again")
        default:
            if RetryPolicy.isRetryable(status: response.status) { return .unknown }
            throw error(for: response, call: GCSCall(method: "PUT", what: "STATUS of upload", key: key))
        }
    }

    /// A 308's `Range: bytes=0-N` says N+1 bytes are persisted; no Range header, none.
    static func persistedBytes(_ response: HTTPResponse) -> Int64 {
        guard let range = response.header("range"), let dash = range.lastIndex(of: "-"),
              let last = Int64(range[range.index(after: dash)...].trimmingCharacters(in: .whitespaces)) else { return 0 }
        return last + 1
    }

    /// Cancels a session so GCS drops what it holds (best effort: it expires anyway).
    func cancel(session: String) {
        _ = try? client.perform(request(for: GCSCall(method: "DELETE", url: session, what: "CANCEL upload"),
                                        token: try? credentials.token()))
    }

    /// Checks the created object against what was sent: its size and CRC-32C.
    private func created(_ response: HTTPResponse, key: String, size: Int64, crc: UInt32) throws -> ObjectInfo {
        guard let object = Self.json(response.body) else {
            throw CNBackupError(.storage, "GCS answered the upload of \(displayName)\(key) with something that is not JSON")
        }
        guard var info = objectInfo(object, key: key), info.size == size else {
            throw CNBackupError(.integrity, "GCS stored \(displayName)\(key) with another size than the \(size) bytes sent")
        }
        if let stored = object["crc32c"] as? String, stored != Self.base64CRC(crc) {
            throw CNBackupError(.integrity, "GCS stored \(displayName)\(key) with CRC-32C \(stored), not \(Self.base64CRC(crc)) of the bytes sent: the bytes were damaged on the way")
        }
        info.lastModified = (object["updated"] as? String).flatMap(Timestamp.parse) ?? Date()
        return info
    }

}

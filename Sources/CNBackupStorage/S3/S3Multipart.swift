import Foundation
import CNBackupCore
import CNBackupHTTP

/// Writing objects: one PUT for small ones, parallel multipart uploads for the rest, aborted on any failure.
extension S3Store {
    // MARK: - Put

    func putSingle(key: String, bytes: [UInt8], options: PutOptions) throws -> ObjectInfo {
        let integrity = try integrityHeader(for: bytes)
        var headers = [integrity.header]
        headers += labelHeaders(options.tags) + objectSettingHeaders(options)
        if options.ifAbsent { headers.append(("If-None-Match", "*")) }
        let response = try send(S3Call(method: "PUT", key: key, headers: headers, body: bytes, what: "PUT",
                                       bodySHA256: integrity.sha256), accept: [412])
        if response.status == 412 {
            guard let existing = try head(key: key) else { throw conflictVanished(key) }
            return try settleConflict(key: key, existing: existing, size: Int64(bytes.count), digest: SHA256Hasher.hash(bytes))
        }
        return ObjectInfo(key: key, size: Int64(bytes.count), lastModified: Date(), etag: response.header("etag"))
    }

    /// Room beyond a part for the chunk that crosses its end.
    private static let chunkAllowance = (1 << 20) + 4096

    func putMultipart(key: String, head: consuming [UInt8], rest source: ByteStream, options: PutOptions) throws -> ObjectInfo {
        var createHeaders: [(String, String)] = []
        // Parts then carry x-amz-checksum-sha256 and the completion lists each part's.
        if usesSHA256Checksums { createHeaders.append(("x-amz-checksum-algorithm", "SHA256")) }
        createHeaders += labelHeaders(options.tags) + objectSettingHeaders(options)
        let created = try sendXML(S3Call(method: "POST", key: key, query: [("uploads", "")], headers: createHeaders,
                                         what: "CREATE upload of"))
        guard let uploadId = created.value("UploadId"), !uploadId.isEmpty else {
            source.close()
            throw CNBackupError(.storage, "S3 gave no upload id for \(displayName)\(key)")
        }
        let state = UploadState()
        let slots = DispatchSemaphore(value: max(1, settings.parallelParts))
        let group = DispatchGroup()
        let wholeHash = options.ifAbsent && options.settleByDigest ? SHA256Hasher() : nil
        var total: Int64 = 0
        var partNumber = 0

        // Hands one part to a worker; blocks while `parallelParts` are in flight, so memory stays
        // at about (parallelParts + 1) parts however long the stream.
        func submit(_ part: [UInt8]) throws {
            partNumber += 1
            guard partNumber <= S3Settings.maxParts else {
                throw CNBackupError(.storage, "\(displayName)\(key) needs more than 10,000 parts: give a size hint or a larger part size")
            }
            slots.wait()
            if let error = state.error { slots.signal(); throw error }
            group.enter()
            let number = partNumber
            DispatchQueue.global().async {
                defer { slots.signal(); group.leave() }
                do {
                    state.record(try self.uploadPart(key: key, uploadId: uploadId, number: number, bytes: part))
                } catch {
                    state.fail(error)
                }
            }
        }

        do {
            // Take the read-ahead over rather than copy it: held twice, it would cost 16 MiB more.
            var buffer = consume head
            wholeHash?.update(buffer)
            total = Int64(buffer.count)
            var ended = false
            while true {
                let size = settings.partSize(for: partNumber + 1, sizeHint: options.sizeHint)
                if buffer.count >= size {
                    // Hand the buffer itself over and keep only the overshoot (under one chunk):
                    // copying out a whole part would hold it twice. The next part's buffer is
                    // reserved whole, so appending never grows it by doubling (which copies it
                    // and, for a moment, holds it one and a half times).
                    var rest: [UInt8] = []
                    rest.reserveCapacity(settings.partSize(for: partNumber + 2, sizeHint: options.sizeHint) + Self.chunkAllowance)
                    rest.append(contentsOf: buffer[size...])
                    buffer.removeSubrange(size...)
                    try submit(buffer)
                    buffer = rest
                    continue
                }
                if ended { break }
                if let error = state.error { throw error }
                if let chunk = try source.next() {
                    wholeHash?.update(chunk)
                    total += Int64(chunk.count)
                    buffer.append(contentsOf: chunk)
                } else {
                    ended = true
                }
            }
            if !buffer.isEmpty || partNumber == 0 { try submit(buffer) }
            group.wait()
            if let error = state.error { throw error }
            let info = try completeMultipart(key: key, uploadId: uploadId, parts: state.parts, total: total,
                                             digest: wholeHash?.finalize(), options: options)
            abortStrayUploads(key: key)
            return info
        } catch {
            // Let parts in flight finish first, so none lands after the abort.
            group.wait()
            source.close()
            try? abortMultipartUpload(key: key, uploadId: uploadId)
            abortStrayUploads(key: key)
            throw error
        }
    }

    /// A CreateMultipartUpload whose answer was lost and then retried leaves an upload whose id we
    /// never learnt. Keys are unique to one set and one writer, so any upload still open under
    /// this key once ours is settled is such a stray: abort it rather than leave its parts billed.
    func abortStrayUploads(key: String) {
        guard let open = try? listMultipartUploads() else { return }
        for upload in open where upload.key == key {
            try? abortMultipartUpload(key: key, uploadId: upload.uploadId)
        }
    }

    func uploadPart(key: String, uploadId: String, number: Int, bytes: [UInt8]) throws -> UploadedPart {
        let integrity = try integrityHeader(for: bytes)
        let response = try send(S3Call(method: "PUT", key: key, query: [("partNumber", String(number)), ("uploadId", uploadId)],
                                       headers: [integrity.header], body: bytes, what: "PUT part \(number) of",
                                       bodySHA256: integrity.sha256))
        guard let etag = response.header("etag") else {
            throw CNBackupError(.storage, "S3 gave no ETag for part \(number) of \(displayName)\(key)")
        }
        return UploadedPart(number: number, etag: etag, checksumSHA256: integrity.sha256.map { Data($0).base64EncodedString() })
    }

    /// Completes the upload. Its answer can be lost, or be a 200 carrying an error: then a HEAD
    /// settles whether the object is there with the size sent.
    func completeMultipart(key: String, uploadId: String, parts: [UploadedPart], total: Int64,
                                   digest: [UInt8]?, options: PutOptions) throws -> ObjectInfo {
        let xml = "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
            + parts.map { part in
                "<Part><PartNumber>\(part.number)</PartNumber><ETag>\(S3XMLElement.escape(part.etag))</ETag>"
                    + (part.checksumSHA256.map { "<ChecksumSHA256>\($0)</ChecksumSHA256>" } ?? "") + "</Part>"
            }.joined()
            + "</CompleteMultipartUpload>"
        var headers = [("Content-Type", "application/xml")]
        // AWS, MinIO and SeaweedFS check If-None-Match here (SeaweedFS answers 412, tried); others
        // rely on the HEAD made before uploading.
        if options.ifAbsent && [.aws, .minio, .seaweedfs].contains(settings.provider) { headers.append(("If-None-Match", "*")) }
        let call = S3Call(method: "POST", key: key, query: [("uploadId", uploadId)], headers: headers,
                          body: Array(xml.utf8), what: "COMPLETE upload of")
        var failure: Error
        do {
            let response = try send(call, accept: [404, 412])
            if response.status == 412 {
                try? abortMultipartUpload(key: key, uploadId: uploadId)
                guard let existing = try head(key: key) else { throw conflictVanished(key) }
                if let digest { return try settleConflict(key: key, existing: existing, size: total, digest: digest) }
                // Our own completion, retried after its answer was lost, made this very object.
                if existing.size == total, etagMatches(existing.etag, parts: parts) { return existing }
                throw CNBackupError(.alreadyExists, "\(displayName)\(key) already exists with other bytes; it was left unchanged")
            }
            let root = S3XMLElement.parse(response.body)
            if response.status == 200, root?.name == "CompleteMultipartUploadResult" {
                return ObjectInfo(key: key, size: total, lastModified: Date(), etag: root?.value("ETag"))
            }
            // 404 NoSuchUpload after a retry: the first attempt may have completed it.
            failure = error(for: response, call: call)
        } catch {
            failure = error
        }
        if let info = try? head(key: key), info.size == total, etagMatches(info.etag, parts: parts) {
            return info
        }
        throw failure
    }

    /// Whether a multipart object's ETag is the one these parts make: MD5 of the parts' binary MD5s,
    /// then `-N`. Where ETags are not MD5s (SSE-KMS, some providers) the size check stands alone.
    func etagMatches(_ etag: String?, parts: [UploadedPart]) -> Bool {
        let trimmed = { (s: String) in s.trimmingCharacters(in: CharacterSet(charactersIn: "\"")) }
        guard settings.serverSideEncryption != "aws:kms", let etag = etag.map(trimmed) else { return true }
        let partDigests = parts.compactMap { [UInt8](hex: trimmed($0.etag)) }
        guard partDigests.count == parts.count, partDigests.allSatisfy({ $0.count == 16 }),
              let expected = try? md5(partDigests.flatMap { $0 }).hex else { return true }
        return etag == "\(expected)-\(parts.count)"
    }


    /// Server-side encryption and storage class, sent when an object is created.
    func objectSettingHeaders(_ options: PutOptions) -> [(String, String)] {
        var headers: [(String, String)] = []
        if var lock = settings.objectLock {
            if let days = options.retentionDays { lock.days = max(lock.days, days) }
            headers += lock.headers()
        }
        if let sse = settings.serverSideEncryption { headers.append(("x-amz-server-side-encryption", sse)) }
        if let key = settings.kmsKeyId { headers.append(("x-amz-server-side-encryption-aws-kms-key-id", key)) }
        if let storageClass = settings.storageClass { headers.append(("x-amz-storage-class", storageClass)) }
        return headers
    }

    /// Tags as `x-amz-tagging`, or as `x-amz-meta-*` metadata where the provider has no tagging
    /// (GCS's XML API, R2), so lifecycle rules and humans still see node, epoch and set.
    func labelHeaders(_ tags: [String: String]) -> [(String, String)] {
        guard !tags.isEmpty else { return [] }
        if settings.provider.supportsTagging {
            return [("x-amz-tagging", SigV4Signer.canonicalQuery(tags.map { ($0.key, $0.value) }))]
        }
        return tags.sorted { $0.key < $1.key }.map { ("x-amz-meta-\($0.key)", $0.value) }
    }

    func notFound(_ key: String) -> CNBackupError {
        CNBackupError(.notFound, "\(displayName)\(key) does not exist")
    }
}

struct UploadedPart: Sendable {
    var number: Int
    var etag: String
    /// Base64, when the upload carries SHA-256 checksums.
    var checksumSHA256: String?
}

/// Parts uploaded so far and the first failure, shared with the upload workers.
final class UploadState: @unchecked Sendable {
    // @unchecked: every field is guarded by `lock`.
    let lock = NSLock()
    var uploaded: [Int: UploadedPart] = [:]
    var failure: Error?

    func record(_ part: UploadedPart) { lock.lock(); uploaded[part.number] = part; lock.unlock() }
    func fail(_ error: Error) { lock.lock(); if failure == nil { failure = error }; lock.unlock() }
    var error: Error? { lock.lock(); defer { lock.unlock() }; return failure }
    var parts: [UploadedPart] { lock.lock(); defer { lock.unlock() }; return uploaded.values.sorted { $0.number < $1.number } }
}

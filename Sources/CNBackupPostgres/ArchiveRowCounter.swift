import Foundation
import CNBackupCore
import CNBackupProcess

/// Counts each table's rows in a pg_dump custom-format archive as it streams past, without
/// keeping it: the header and table of contents are parsed (pg_backup_archiver.c `ReadHead` and
/// `ReadToc`, archive versions 1.12 to 1.16, PostgreSQL 9.6 to 18), then every data block
/// (pg_backup_custom.c: a `BLK_DATA` byte, the entry's dump id, then length-prefixed chunks up to
/// a zero length) is scanned for newlines. An uncompressed archive holds each table's COPY data
/// in text form, one line per row (an embedded newline is escaped as `\n`), so a table's rows
/// are its data's lines, less a `\.` end line when the dumper wrote one.
///
/// Anything it does not understand (another format, a compressed archive, a version it does not
/// know, a malformed stream) makes it give up quietly: `counts` is then nil and nothing is
/// recorded. It never fails the capture.
public final class ArchiveRowCounter {
    /// The archive versions whose layout this reader knows (major, minor).
    package static let oldest = (1, 12), newest = (1, 16)
    /// The header and table of contents are buffered whole; past this, give up.
    package static let tocLimit = 256 << 20

    private enum Phase {
        case toc
        case blockType
        case blockDumpId(type: UInt8)
        case chunkLength
        case payload(remaining: Int)
        case blobOid
        case failed
    }

    private var phase = Phase.toc
    private var buffer: [UInt8] = []
    private var lastAttempt = 0
    private var intSize = 4, offSize = 8
    private var version = (0, 0, 0)
    /// dump id -> schema.table, for `TABLE DATA` entries with data.
    private var tables: [Int: String] = [:]
    private var rows: [String: Int64] = [:]
    private var current: String?
    private var currentLines: Int64 = 0
    private var currentBytes = 0
    /// The last bytes of the current block's data, to find a trailing `\.` line.
    private var tail: [UInt8] = []
    private var inBlob = false
    /// Why it gave up, for the log.
    public private(set) var gaveUp: String?

    public init() {}

    /// The counts, schema.table -> rows, once the whole archive went past and parsed; nil otherwise.
    public func finish() -> [String: Int64]? {
        if case .toc = phase, gaveUp == nil {
            switch parseHeaderAndTOC() {
            case .done(let end):
                let rest = Array(buffer[end...])
                buffer = []; phase = .blockType
                rest.withUnsafeBufferPointer { consume($0) }
            case .failed(let why): fail(why)
            case .needMore: fail("the archive ended inside its table of contents")
            }
        }
        guard gaveUp == nil else { return nil }
        switch phase {
        case .blockType: break
        default: return nil
        }
        return rows
    }

    private func fail(_ why: String) {
        if gaveUp == nil { gaveUp = why }
        phase = .failed; buffer = []; tables = [:]; rows = [:]
    }

    public func consume(_ chunk: [UInt8]) {
        chunk.withUnsafeBufferPointer { consume($0) }
    }

    public func consume(_ chunk: UnsafeBufferPointer<UInt8>) {
        var input = chunk[...]
        while !input.isEmpty {
            switch phase {
            case .failed:
                return
            case .toc:
                buffer.append(contentsOf: input)
                input = input[input.endIndex...]
                if buffer.count > Self.tocLimit { fail("the table of contents is larger than \(Self.tocLimit >> 20) MiB"); return }
                // Parse again only when the buffer grew by half since the last try: linear overall.
                guard buffer.count >= lastAttempt + lastAttempt / 2 else { return }
                lastAttempt = buffer.count
                switch parseHeaderAndTOC() {
                case .needMore: return
                case .failed(let why): fail(why); return
                case .done(let end):
                    let rest = Array(buffer[end...])
                    buffer = []
                    phase = .blockType
                    rest.withUnsafeBufferPointer { consume($0) }
                    return
                }
            case .payload(let remaining):
                let n = min(remaining, input.count)
                let slice = input[input.startIndex..<(input.startIndex + n)]
                if current != nil { countLines(slice) }
                input = input[(input.startIndex + n)...]
                phase = remaining - n == 0 ? .chunkLength : .payload(remaining: remaining - n)
            case .blockType:
                let type = input[input.startIndex]
                input = input.dropFirst()
                guard type == 1 || type == 3 else { fail("unknown block type \(type)"); return }
                phase = .blockDumpId(type: type)
            case .blockDumpId(let type):
                guard let id = takeInt(&input) else { return }
                if type == 1 {
                    current = tables[id]
                    currentLines = 0; currentBytes = 0; tail = []
                    inBlob = false
                    phase = .chunkLength
                } else {
                    current = nil
                    inBlob = true
                    phase = .blobOid
                }
            case .blobOid:
                guard let oid = takeInt(&input) else { return }
                if oid == 0 { inBlob = false; phase = .blockType } else { phase = .chunkLength }
            case .chunkLength:
                guard let length = takeInt(&input) else { return }
                guard length >= 0 else { fail("a negative chunk length"); return }
                if length > 0 { phase = .payload(remaining: length); continue }
                if inBlob { phase = .blobOid; continue }
                if let table = current {
                    var lines = currentLines
                    lines -= Self.terminatorLines(tail, wholeBlock: currentBytes <= tail.count)
                    rows[table, default: 0] += max(0, lines)
                }
                current = nil
                phase = .blockType
            }
        }
    }

    /// pg_dump ends each table's COPY data with `\.` and two empty lines (`\.\n\n\n`): those
    /// lines are no rows. A row is never `\.` (a backslash in data is written `\\`), so the
    /// terminator is recognised by that line, followed only by empty lines, at the block's end.
    package static func terminatorLines(_ tail: [UInt8], wholeBlock: Bool) -> Int64 {
        var end = tail.count
        var empty: Int64 = 0
        while end >= 2, tail[end - 1] == 0x0A, tail[end - 2] == 0x0A { end -= 1; empty += 1 }
        guard end >= 3, tail[end - 1] == 0x0A, tail[end - 2] == 0x2E, tail[end - 3] == 0x5C else { return 0 }
        let lineStart = end - 3
        guard (lineStart == 0 && wholeBlock) || (lineStart > 0 && tail[lineStart - 1] == 0x0A) else { return 0 }
        return 1 + empty
    }

    @inline(__always)
    private func countLines(_ slice: Slice<UnsafeBufferPointer<UInt8>>) {
        // memchr (glibc's is vectorised) from one newline to the next instead of comparing byte by
        // byte, which with a tail copy per row cost 6% of a capture's CPU (the target is at most 3%).
        var n: Int64 = 0
        if let base = slice.base.baseAddress {
            var position = base + slice.startIndex
            let end = base + slice.endIndex
            while position < end, let hit = memchr(position, 0x0A, end - position) {
                n += 1
                position = UnsafePointer(hit.assumingMemoryBound(to: UInt8.self)) + 1
            }
        }
        currentLines += n
        currentBytes += slice.count
        // pg_dump writes each COPY row as its own chunk: keep the tail without allocating per row.
        if slice.count >= 16 {
            tail.removeAll(keepingCapacity: true)
            tail.append(contentsOf: slice.suffix(16))
        } else {
            tail.append(contentsOf: slice)
            if tail.count > 16 { tail.removeFirst(tail.count - 16) }
        }
    }

    /// Reads one int (a sign byte, then `intSize` bytes little-endian), across chunk boundaries.
    private func takeInt(_ input: inout Slice<UnsafeBufferPointer<UInt8>>) -> Int? {
        let need = 1 + intSize
        if buffer.isEmpty && input.count >= need {
            let value = Self.int(input[input.startIndex..<(input.startIndex + need)], intSize: intSize)
            input = input[(input.startIndex + need)...]
            return value
        }
        let take = min(need - buffer.count, input.count)
        buffer.append(contentsOf: input[input.startIndex..<(input.startIndex + take)])
        input = input[(input.startIndex + take)...]
        guard buffer.count == need else { return nil }
        defer { buffer = [] }
        return Self.int(buffer[...], intSize: intSize)
    }

    package static func int<C: Collection>(_ bytes: C, intSize: Int) -> Int where C.Element == UInt8 {
        var value = 0
        var shift = 0
        var sign: UInt8 = 0
        for (i, byte) in bytes.enumerated() {
            if i == 0 { sign = byte; continue }
            if shift < 63 { value |= Int(byte) << shift }
            shift += 8
        }
        return sign != 0 ? -value : value
    }

    private enum ParseResult { case needMore, failed(String), done(Int) }
    private struct NeedMore: Error {}
    private struct Malformed: Error { let why: String }

    /// Parses the header and the table of contents from `buffer`; `.done` with the offset after them.
    private func parseHeaderAndTOC() -> ParseResult {
        var pos = 0
        let b = buffer
        func byte() throws -> UInt8 {
            guard pos < b.count else { throw NeedMore() }
            defer { pos += 1 }
            return b[pos]
        }
        func int() throws -> Int {
            guard pos + 1 + intSize <= b.count else { throw NeedMore() }
            defer { pos += 1 + intSize }
            return Self.int(b[pos..<(pos + 1 + intSize)], intSize: intSize)
        }
        func str() throws -> String? {
            let length = try int()
            if length < 0 { return nil }
            guard length < 1 << 30 else { throw Malformed(why: "a string of \(length) bytes") }
            guard pos + length <= b.count else { throw NeedMore() }
            defer { pos += length }
            return String(decoding: b[pos..<(pos + length)], as: UTF8.self)
        }
        func atLeast(_ major: Int, _ minor: Int) -> Bool { (version.0, version.1) >= (major, minor) }
        do {
            guard b.count >= 5 else { throw NeedMore() }
            guard Array(b[0..<5]) == Array("PGDMP".utf8) else { throw Malformed(why: "not a pg_dump archive") }
            pos = 5
            version = (Int(try byte()), Int(try byte()), 0)
            version.2 = Int(try byte())
            guard (version.0, version.1) >= Self.oldest, (version.0, version.1) <= Self.newest else {
                throw Malformed(why: "archive version \(version.0).\(version.1) is not one this reader knows")
            }
            intSize = Int(try byte())
            offSize = Int(try byte())
            guard (1...8).contains(intSize), (1...16).contains(offSize) else { throw Malformed(why: "int size \(intSize), offset size \(offSize)") }
            let format = try byte()
            guard format == 1 else { throw Malformed(why: "archive format \(format) is not custom (1)") }
            if atLeast(1, 15) {
                let algorithm = try byte()
                guard algorithm == 0 else { throw Malformed(why: "the archive is compressed (algorithm \(algorithm))") }
            } else {
                let level = try int()
                guard level == 0 else { throw Malformed(why: "the archive is compressed (level \(level))") }
            }
            for _ in 0..<7 { _ = try int() }
            _ = try str(); _ = try str(); _ = try str()
            let count = try int()
            guard count >= 0 else { throw Malformed(why: "a negative entry count") }
            var found: [Int: String] = [:]
            for _ in 0..<count {
                let dumpId = try int()
                let hasData = try int()
                _ = try str(); _ = try str()
                let tag = try str() ?? ""
                let desc = try str() ?? ""
                _ = try int()
                _ = try str(); _ = try str(); _ = try str()
                let namespace = try str()
                _ = try str()
                if atLeast(1, 14) { _ = try str() }
                if atLeast(1, 16) { _ = try int() }
                _ = try str()
                _ = try str()
                while try str() != nil {}
                // The custom format's extra TOC data: the data's offset (a flag byte and offSize bytes).
                guard pos + 1 + offSize <= b.count else { throw NeedMore() }
                pos += 1 + offSize
                if desc == "TABLE DATA", hasData != 0 {
                    found[dumpId] = (namespace.map { $0 + "." } ?? "") + tag
                }
            }
            tables = found
            for name in found.values { rows[name] = 0 }
            return .done(pos)
        } catch is NeedMore {
            return .needMore
        } catch let error as Malformed {
            return .failed(error.why)
        } catch {
            return .failed("\(error)")
        }
    }
}

/// Passes a stream through unchanged while an `ArchiveRowCounter` reads it.
package final class RowCountingStream: ByteStream {
    private let upstream: ByteStream
    package let counter = ArchiveRowCounter()
    package init(_ upstream: ByteStream) { self.upstream = upstream }
    package func next() throws -> [UInt8]? {
        guard let chunk = try upstream.next() else { return nil }
        if counter.gaveUp == nil { counter.consume(chunk) }
        // (the counts are read with `counter.finish()` once the stream ended)
        return chunk
    }
    package func close() { upstream.close() }
}

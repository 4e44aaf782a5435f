import Foundation

/// One member of a tar stream, as its header (and any pax or GNU long-name header before it) says.
public struct TarEntry: Sendable, Equatable {
    public enum Kind: Sendable, Equatable { case file, directory, symlink, hardlink, other(UInt8) }
    public var path: String
    public var size: Int64
    public var kind: Kind
    public var mode: Int
    public var linkTarget: String
    /// Seconds since the epoch (the header's field, or a pax `mtime`'s whole seconds).
    public var modified: Int64 = 0
}

/// What a `TarReader` hands each member to: its header, its data in order, then its end.
public protocol TarVisitor: AnyObject {
    func begin(_ entry: TarEntry) throws
    func data(_ bytes: ArraySlice<UInt8>) throws
    func end(_ entry: TarEntry) throws
}

/// A streaming tar reader (POSIX ustar, pax `x`/`g` headers, GNU `L`/`K` long names, base-256
/// sizes): it is fed chunks of any size, keeps at most one 512-byte header and a bounded pax or
/// long-name record, and never the members' data. It checks what makes a tar well formed: each
/// header's checksum, known sizes, the end marker (two zero blocks) and nothing but zeros after it.
/// `finish()` fails when the stream ended before the end marker (a cut archive).
public final class TarReader {
    public static let blockSize = 512
    /// The most a pax or GNU long-name record may hold: names and a few attributes, never data.
    static let metaLimit = 1 << 20

    private enum State {
        case header
        case data(entry: TarEntry, remaining: Int64, padding: Int)
        case meta(kind: UInt8, remaining: Int, padding: Int)
        case padding(Int)
        case endMarker(zeroBlocks: Int)
        case finished
    }

    private let visitor: TarVisitor?
    private var state: State = .header
    private var block: [UInt8] = []
    private var meta: [UInt8] = []
    private var pendingPax: [String: String] = [:]
    private var pendingLongName: String?
    private var pendingLongLink: String?
    /// Bytes consumed, for error messages.
    public private(set) var offset: Int64 = 0
    public private(set) var entries = 0

    public init(visitor: TarVisitor?) {
        self.visitor = visitor
        block.reserveCapacity(Self.blockSize)
    }

    /// Whether the end marker was seen.
    public var isComplete: Bool {
        switch state {
        case .finished: return true
        case .endMarker(let zeroBlocks): return zeroBlocks >= 2
        default: return false
        }
    }

    public func consume(_ chunk: [UInt8]) throws {
        var index = chunk.startIndex
        while index < chunk.endIndex {
            let available = chunk.endIndex - index
            switch state {
            case .header, .endMarker:
                let take = min(Self.blockSize - block.count, available)
                block.append(contentsOf: chunk[index..<index + take])
                index += take; offset += Int64(take)
                if block.count == Self.blockSize {
                    let full = block
                    block.removeAll(keepingCapacity: true)
                    try headerBlock(full)
                }
            case .data(let entry, let remaining, let padding):
                let take = Int(min(Int64(available), remaining))
                if take > 0 { try visitor?.data(chunk[index..<index + take]) }
                index += take; offset += Int64(take)
                if remaining - Int64(take) == 0 {
                    try visitor?.end(entry)
                    state = padding > 0 ? .padding(padding) : .header
                } else {
                    state = .data(entry: entry, remaining: remaining - Int64(take), padding: padding)
                }
            case .meta(let kind, let remaining, let padding):
                let take = min(available, remaining)
                meta.append(contentsOf: chunk[index..<index + take])
                index += take; offset += Int64(take)
                if remaining - take == 0 {
                    try finishMeta(kind: kind)
                    state = padding > 0 ? .padding(padding) : .header
                } else {
                    state = .meta(kind: kind, remaining: remaining - take, padding: padding)
                }
            case .padding(let remaining):
                let take = min(available, remaining)
                index += take; offset += Int64(take)
                state = remaining - take == 0 ? .header : .padding(remaining - take)
            case .finished:
                // After the end marker a tar may be padded to its record size, with zeros only.
                guard chunk[index...].allSatisfy({ $0 == 0 }) else {
                    throw CNBackupError(.integrity, "the tar stream has data after its end marker (at byte \(offset))")
                }
                offset += Int64(available)
                index = chunk.endIndex
            }
        }
    }

    /// The stream ended: it must have ended with the end marker.
    public func finish() throws {
        guard isComplete, block.isEmpty || block.allSatisfy({ $0 == 0 }) else {
            throw CNBackupError(.integrity, "the tar stream ends at byte \(offset) without its end marker: it was cut")
        }
        state = .finished
    }

    private func headerBlock(_ header: [UInt8]) throws {
        if header.allSatisfy({ $0 == 0 }) {
            if case .endMarker(let zeroBlocks) = state {
                state = zeroBlocks + 1 >= 2 ? .finished : .endMarker(zeroBlocks: zeroBlocks + 1)
            } else {
                guard pendingPax.isEmpty, pendingLongName == nil, pendingLongLink == nil else {
                    throw CNBackupError(.integrity, "the tar stream ends right after an extended header (at byte \(offset))")
                }
                state = .endMarker(zeroBlocks: 1)
            }
            return
        }
        if case .endMarker = state {
            throw CNBackupError(.integrity, "the tar stream has a member after a zero block (at byte \(offset - 512))")
        }
        let stored = try Self.number(header[148..<156], what: "checksum", at: offset - 512)
        var sum: Int64 = 0
        for (i, byte) in header.enumerated() { sum += Int64((148..<156).contains(i) ? 0x20 : byte) }
        guard stored == sum else {
            throw CNBackupError(.integrity, "a tar header has a bad checksum (at byte \(offset - 512)): the stream is not a tar or is damaged")
        }
        let size = try Self.number(header[124..<136], what: "size", at: offset - 512)
        guard size >= 0 else { throw CNBackupError(.integrity, "a tar header has a negative size (at byte \(offset - 512))") }
        let type = header[156]
        let padding = Int((Int64(Self.blockSize) - size % Int64(Self.blockSize)) % Int64(Self.blockSize))
        switch type {
        case UInt8(ascii: "x"), UInt8(ascii: "g"), UInt8(ascii: "L"), UInt8(ascii: "K"):
            guard size <= Self.metaLimit else {
                throw CNBackupError(.integrity, "a tar extended header claims \(size) bytes (at byte \(offset - 512)), more than any name needs")
            }
            meta.removeAll(keepingCapacity: true)
            if size == 0 { try finishMeta(kind: type); state = .header } else {
                state = .meta(kind: type, remaining: Int(size), padding: padding)
            }
            return
        default: break
        }
        let magic = Array(header[257..<263])
        var name = Self.string(header[0..<100])
        if magic == Array("ustar\0".utf8) {
            let prefix = Self.string(header[345..<500])
            if !prefix.isEmpty { name = prefix + "/" + name }
        }
        var link = Self.string(header[157..<257])
        var entrySize = size
        if let long = pendingLongName { name = long }
        if let long = pendingLongLink { link = long }
        if let path = pendingPax["path"] { name = path }
        if let path = pendingPax["linkpath"] { link = path }
        var modified = try Self.number(header[136..<148], what: "mtime", at: offset - 512)
        if let text = pendingPax["mtime"], let seconds = Int64(text.prefix { $0 != "." }) { modified = seconds }
        if let text = pendingPax["size"] {
            guard let value = Int64(text), value >= 0 else { throw CNBackupError(.integrity, "a pax header has a bad size \"\(text)\"") }
            entrySize = value
        }
        pendingPax = [:]; pendingLongName = nil; pendingLongLink = nil
        let kind: TarEntry.Kind
        switch type {
        case 0, UInt8(ascii: "0"), UInt8(ascii: "7"): kind = .file
        case UInt8(ascii: "1"): kind = .hardlink
        case UInt8(ascii: "2"): kind = .symlink
        case UInt8(ascii: "5"): kind = .directory
        default: kind = .other(type)
        }
        // Links and directories carry no data whatever the size field says (POSIX).
        if kind == .hardlink || kind == .symlink || kind == .directory { entrySize = 0 }
        let mode = Int(try Self.number(header[100..<108], what: "mode", at: offset - 512))
        // A restore extracts as root: a setuid or setgid file from a backup would be a door into
        // the restoring host. Nothing PostgreSQL writes carries these bits.
        guard mode & 0o7000 == 0 else {
            throw CNBackupError(.integrity, "the tar member \(name) has a setuid, setgid or sticky bit (mode \(String(mode, radix: 8))): refused")
        }
        let entry = TarEntry(path: name, size: entrySize, kind: kind, mode: mode, linkTarget: link, modified: modified)
        entries += 1
        try visitor?.begin(entry)
        let entryPadding = Int((Int64(Self.blockSize) - entrySize % Int64(Self.blockSize)) % Int64(Self.blockSize))
        if entrySize == 0 {
            try visitor?.end(entry)
            state = .header
        } else {
            state = .data(entry: entry, remaining: entrySize, padding: entryPadding)
        }
    }

    private func finishMeta(kind: UInt8) throws {
        defer { meta.removeAll(keepingCapacity: true) }
        switch kind {
        case UInt8(ascii: "L"): pendingLongName = Self.string(meta[...])
        case UInt8(ascii: "K"): pendingLongLink = Self.string(meta[...])
        case UInt8(ascii: "x"): pendingPax = try Self.paxRecords(meta)
        case UInt8(ascii: "g"):
            // A global header changes every later member (its path, owner, mode) for `tar -x` in
            // ways this reader's checks would not see; pg_basebackup never writes one.
            throw CNBackupError(.integrity, "the tar stream has a pax global header (at byte \(offset)): refused")
        default: break
        }
    }

    /// `LENGTH KEY=VALUE\n` records.
    static func paxRecords(_ bytes: [UInt8]) throws -> [String: String] {
        var records: [String: String] = [:]
        var index = 0
        while index < bytes.count {
            guard let space = bytes[index...].firstIndex(of: 0x20), let length = Int(String(decoding: bytes[index..<space], as: UTF8.self)),
                  length > space - index + 1, index + length <= bytes.count, bytes[index + length - 1] == 0x0A else {
                throw CNBackupError(.integrity, "a pax extended header is malformed")
            }
            let record = bytes[(space + 1)..<(index + length - 1)]
            guard let equals = record.firstIndex(of: UInt8(ascii: "=")) else { throw CNBackupError(.integrity, "a pax record has no '='") }
            records[String(decoding: record[record.startIndex..<equals], as: UTF8.self)] = String(decoding: record[(equals + 1)...], as: UTF8.self)
            index += length
        }
        return records
    }

    static func string(_ field: ArraySlice<UInt8>) -> String {
        let end = field.firstIndex(of: 0) ?? field.endIndex
        return String(decoding: field[field.startIndex..<end], as: UTF8.self)
    }

    /// An octal field (NUL- or space-terminated), or GNU base-256 when the high bit is set.
    package static func number(_ field: ArraySlice<UInt8>, what: String, at offset: Int64) throws -> Int64 {
        if let first = field.first, first & 0x80 != 0 {
            guard first == 0x80 else { throw CNBackupError(.integrity, "a tar header's \(what) is negative (at byte \(offset))") }
            var value: Int64 = 0
            for byte in field.dropFirst() {
                guard value <= Int64.max >> 8 else { throw CNBackupError(.integrity, "a tar header's \(what) is out of range (at byte \(offset))") }
                value = (value << 8) | Int64(byte)
            }
            return value
        }
        var value: Int64 = 0, seenDigit = false
        for byte in field {
            if byte == 0 || (byte == 0x20 && seenDigit) { break }
            if byte == 0x20 { continue }
            guard (0x30...0x37).contains(byte), value < Int64.max >> 3 else {
                throw CNBackupError(.integrity, "a tar header's \(what) is not a number (at byte \(offset)): the stream is not a tar or is damaged")
            }
            value = value * 8 + Int64(byte - 0x30); seenDigit = true
        }
        return value
    }
}

/// Passes a tar stream through unchanged while a `TarReader` reads it: a cut or malformed tar
/// fails the stream at its end (or at the bad header).
public final class TarInspectingStream: ByteStream {
    private let upstream: ByteStream
    public let reader: TarReader
    private var done = false

    public init(_ upstream: ByteStream, visitor: TarVisitor?) {
        self.upstream = upstream
        reader = TarReader(visitor: visitor)
    }

    public func next() throws -> [UInt8]? {
        if done { return nil }
        guard let chunk = try upstream.next() else {
            done = true
            try reader.finish()
            return nil
        }
        do { try reader.consume(chunk) } catch { upstream.close(); throw error }
        return chunk
    }

    public func close() { upstream.close() }
}

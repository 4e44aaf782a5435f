import Foundation
import CNBackupCore
import CNBackupStorage
import CNBackupCatalog

// The type of an artefact says what has been done to its bytes. Each stage takes one type and
// returns the next, so a pipeline that uploads plaintext, or encrypts before compressing, does
// not compile: `Upload` accepts only `Sealed`, `Seal` only `Compressed`, `Compress` only `Captured`.

/// A stage of the backup path: one artefact in, the next out.
public protocol Stage {
    associatedtype Input
    associatedtype Output
    func run(_ input: Input) throws -> Output
}

/// Bytes as a source gave them. `plaintext` counts and hashes them as they pass.
public struct Captured {
    public let stream: ByteStream
    let plaintext: DigestingStream
    public let description: ObjectDescription
    public let sizeHint: Int64?

    public init(stream source: ByteStream, description: ObjectDescription, sizeHint: Int64? = nil) {
        let digesting = DigestingStream(source)
        self.plaintext = digesting
        // The source (a child process, a file) runs on a thread of its own.
        self.stream = PipelinedStream(digesting, name: "capture")
        self.description = description
        self.sizeHint = sizeHint
    }
}

/// The captured bytes as zstd frames.
public struct Compressed {
    public let stream: ByteStream
    public let codec: CodecInfo
    let captured: Captured
    /// The plaintext bytes whose frames were decoded and compared with their input as they were
    /// made (nil when the run does not check them: `readBack` other than full).
    let checkedBytes: (() -> Int64)?
}

/// The sealed object: header and authenticated segments. Holds the data key for the read-back.
public struct Sealed {
    public let stream: ByteStream
    public let header: SealedHeader
    public let dataKey: DataKey
    let compressed: Compressed
}

/// An object the store has accepted.
public struct Stored {
    public let key: String
    public let info: ObjectInfo
    public let storedSHA256: [UInt8]
    public let storedSize: Int64
    public let sealed: Sealed

    /// The plaintext's size and SHA-256, final once the object is stored.
    public var plaintextSize: Int64 { sealed.compressed.captured.plaintext.count }
    public var plaintextSHA256: [UInt8] { sealed.compressed.captured.plaintext.digest ?? [] }
}

/// A stored object proven by reading it back.
public struct Verified {
    public let stored: Stored
    public let mode: ReadBackMode
}

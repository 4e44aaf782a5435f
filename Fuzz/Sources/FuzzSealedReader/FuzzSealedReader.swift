import CNBackup
import FuzzSupport
import CNBackupCore
import CNBackupStorage

// The sealed-format reader: header parsing (magic, version, segment size, description JSON,
// recipient stanzas), stanza unwrapping with an X25519 and a symmetric key, the header MAC, then
// segment by segment opening to the end, as `restore`, `verify --deep` and `decrypt` do.
// Input: the bytes of a sealed object (seeds are real objects sealed to FuzzKeys).

let identities: [Identity] = [
    FuzzKeys.load(FuzzKeys.x25519Secret, KeyFile.loadIdentity(path:)),
    FuzzKeys.load(FuzzKeys.symmetricSecret, KeyFile.loadIdentity(path:)),
]

/// How the bytes arrive: stores hand over chunks of any size, so the chunk boundaries vary with
/// the input (its length picks one), which exercises the reader's reassembly too.
let chunkSizes = [1 << 20, 1, 7, 64, 4099]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSealedReader(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: data == nil ? 0 : size))
    let chunkSize = chunkSizes[size % chunkSizes.count]
    // Which key is offered first also varies, so both stanza kinds open on the seeds.
    let offered = size % 2 == 0 ? identities : identities.reversed()
    expectRefusalOrSuccess("OpeningStream") {
        let opened = try OpeningStream(MemoryStream(bytes, chunkSize: chunkSize), identities: offered)
        _ = opened.header.keyIDs
        _ = try opened.readAll(limit: 1 << 26)
    }
    return 0
}

@main enum FuzzSealedReaderMain {
    static func main() {
        _ = identities  // loaded before the first input, so no input is charged with it
        runLibFuzzer(fuzzSealedReader)
    }
}

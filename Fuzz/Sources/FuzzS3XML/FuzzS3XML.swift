import CNBackupTesting
import FuzzSupport

// S3's XML answers (listings, errors, multipart, tagging, STS) as the S3 store parses them:
// Foundation's XMLParser (libxml2) into S3XMLElement. Input: an answer's body.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzS3XML(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: data == nil ? 0 : size))
    FuzzEntryPoints.parseS3XML(bytes)
    return 0
}

@main enum FuzzS3XMLMain {
    static func main() { runLibFuzzer(fuzzS3XML) }
}

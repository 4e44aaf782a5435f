import Foundation
import CNBackupCore
import CNBackupStorage

/// Readers of untrusted bytes that are `package` inside the library, opened to the fuzz package
/// (Fuzz/) and the regression tests: they call the same code the library runs.
public enum FuzzEntryPoints {
    /// S3's XML answers: parses `bytes` as the store does, then reads it as an error answer and as a
    /// listing would. Returns the number of elements (0 when the bytes were refused).
    @discardableResult
    public static func parseS3XML(_ bytes: [UInt8]) -> Int {
        _ = S3Store.parseError(bytes)
        guard let root = S3XMLElement.parse(bytes) else { return 0 }
        var count = 0
        var pending = [root]
        while let element = pending.popLast() {
            count += 1
            _ = element.value("Key"); _ = element.all("Contents")
            pending += element.children
        }
        return count
    }
}

import Foundation
import Testing
import CNBackup
import CNBackupCore
import CNBackupHTTP
import CNBackupStorage

@Suite struct IdentitiesShapeTests {
    func fixture(_ name: String) throws -> [UInt8] {
        let url = try #require(Bundle.module.url(forResource: name, withExtension: "json", subdirectory: "Resources/fixtures"))
        return Array(try Data(contentsOf: url))
    }

    @Test func documentedShapesPass() throws {
        try IdentitiesShape.check(try fixture("sv-identities-dump"))
        try IdentitiesShape.check(try fixture("validator-participant-identities"))
    }

    @Test func otherJSONIsRefused() throws {
        #expect(throws: Error.self) { try IdentitiesShape.check(Array("{\"error\":\"unauthorized\"}".utf8)) }
        #expect(throws: Error.self) { try IdentitiesShape.check(Array("<html>".utf8)) }
        var sv = try JSONSerialization.jsonObject(with: Data(try fixture("sv-identities-dump"))) as! [String: Any]
        var identities = sv["identities"] as! [String: Any]
        identities.removeValue(forKey: "mediator")
        sv["identities"] = identities
        #expect(throws: Error.self) { try IdentitiesShape.check(Array(try JSONSerialization.data(withJSONObject: sv))) }
    }
}

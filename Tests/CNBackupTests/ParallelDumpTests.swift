import Foundation
import Testing
@testable import CNBackup
import CNBackupCore
import CNBackupTestKit
import CNBackupCatalog

/// The parallel logical dump's pure parts: the table balancing, pg_dump's pattern quoting, the
/// holder's listing, the jobs a capture expands into, and grouping in restore and the barrier.
@Suite struct ParallelDumpTests {
    typealias Table = ParallelDump.Table
    func t(_ name: String, _ size: Int64, schema: String = "public", kind: Character = "r") -> Table {
        Table(schema: schema, name: name, kind: kind, size: size)
    }

    @Test func balancesLargestFirstToTheLightestShare() {
        let tables = [t("a", 100), t("b", 60), t("c", 50), t("d", 40), t("e", 10), t("s", 0, kind: "S")]
        let shares = ParallelDump.balance(tables, parts: 2)
        #expect(shares.count == 2)
        #expect(shares.map { $0.map(\.size).reduce(0, +) } == [140, 120])
        #expect(shares[0].map(\.name) == ["a", "d"])
        #expect(shares[1].map(\.name) == ["b", "c", "e", "s"])
        // Every table exactly once.
        #expect(shares.flatMap { $0 }.map(\.name).sorted() == tables.map(\.name).sorted())
    }

    @Test func balancingIsDeterministicAndHandlesFewTables() {
        let tables = [t("x", 5), t("y", 5), t("z", 5)]
        #expect(ParallelDump.balance(tables, parts: 2) == ParallelDump.balance(tables.reversed(), parts: 2))
        let many = ParallelDump.balance([t("only", 1)], parts: 4)
        #expect(many.map(\.count) == [1, 0, 0, 0])
        #expect(ParallelDump.balance([], parts: 3) == [[], [], []])
        // Zero-sized tables spread by count rather than all landing in one share.
        let empties = ParallelDump.balance((0..<6).map { t("e\($0)", 0) }, parts: 3)
        #expect(empties.map(\.count) == [2, 2, 2])
    }

    @Test func balancedSharesStayWithinTheLargestTable() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<50 {
            let tables = (0..<Int.random(in: 1...40, using: &generator)).map { t("t\($0)", Int64.random(in: 0...1_000_000, using: &generator)) }
            let parts = Int.random(in: 1...6, using: &generator)
            let totals = ParallelDump.balance(tables, parts: parts).map { $0.map(\.size).reduce(0, +) }
            let largest = tables.map(\.size).max() ?? 0
            #expect(totals.max()! - totals.min()! <= largest)
        }
    }

    @Test func patternsQuoteEveryCharacterLiterally() {
        #expect(ParallelDump.pattern(schema: "public", name: "contracts") == #""public"."contracts""#)
        #expect(ParallelDump.pattern(schema: "App", name: "Odd Name") == #""App"."Odd Name""#)
        #expect(ParallelDump.pattern(schema: "s", name: #"a"b"#) == #""s"."a""b""#)
        // Wildcards, dots and regular-expression characters are literal inside double quotes.
        #expect(ParallelDump.pattern(schema: "we.ird", name: "t*?$[x]|(y)") == #""we.ird"."t*?$[x]|(y)""#)
        #expect(ParallelDump.noTablePattern.hasPrefix(#""pg_catalog"."#))
    }

    @Test func readsTheHoldersListing() throws {
        func hex(_ s: String) -> String { s.utf8.map { String(format: "%02x", $0) }.joined() }
        let lines = ["snapshot|00000004-00000002-1",
                     "table|\(hex("public"))|\(hex("a|b\nc"))|r|8192",
                     "table|\(hex("app"))|\(hex("seq"))|S|0", "end|"]
        let listing = try ParallelDump.parseListing(lines)
        #expect(listing.snapshot == "00000004-00000002-1")
        #expect(listing.tables == [t("a|b\nc", 8192), t("seq", 0, schema: "app", kind: "S")])
        #expect(throws: CNBackupError.self) { try ParallelDump.parseListing(["end|"]) }
        #expect(throws: CNBackupError.self) { try ParallelDump.parseListing(["snapshot|x; drop", "end|"]) }
        #expect(throws: CNBackupError.self) { try ParallelDump.parseListing(["snapshot|1-2-3", "table|zz|00|r|1"]) }
    }

    func definition(_ postgres: String) throws -> PipelineDefinition {
        try PipelineDefinition.parse("""
            version: 1
            node: { name: v-1, kind: generic }
            epoch: { migrationId: 0, serial: 0 }
            store: { url: "file:///tmp/x" }
            encryption: { recipients: ["\(KeyText.encode(.x25519Public, patternBytes(32, seed: 5)))"] }
            signing: { keyFile: /secrets/signing/key }
            captures:
              - { name: apps, role: apps, postgres: \(postgres) }
            """, file: "p.yaml")
    }

    @Test func jobsExpandIntoPartsPerDatabase() throws {
        let d = try definition("{ host: h, user: u, databases: [one, two], jobs: 2 }")
        let jobs = d.captures.flatMap(\.jobs)
        #expect(jobs.map(\.name) == ["apps-one.pre", "apps-one.data-1", "apps-one.data-2", "apps-one.post",
                                     "apps-two.pre", "apps-two.data-1", "apps-two.data-2", "apps-two.post"])
        #expect(jobs.allSatisfy { $0.part?.count == 4 })
        #expect(jobs.map { $0.part!.group } == Array(repeating: "apps-one", count: 4) + Array(repeating: "apps-two", count: 4))
        #expect(BackupPlan(d).appsComponents.count == 8)
        let plain = try definition("{ host: h, user: u, databases: [one] }")
        #expect(plain.captures.flatMap(\.jobs).map(\.name) == ["apps-one"])
        #expect(plain.captures.flatMap(\.jobs).allSatisfy { $0.part == nil })
        #expect(throws: CNBackupError.self) { try definition("{ host: h, user: u, databases: [one], jobs: 0 }") }
        #expect(throws: CNBackupError.self) { try definition("{ host: h, user: u, method: physical, jobs: 2 }") }
    }

    func record(_ name: String, part: DumpPart?) -> ComponentRecord {
        ComponentRecord(name: name, role: .apps, source: "pg_dump", objectKey: name + ".cnb", storedSize: 1, storedSHA256: "", etag: nil,
                        plaintextSize: 1, plaintextDigestHMAC: "", codec: CodecInfo(name: "zstd", level: 3), keyIds: [], segmentSize: 1,
                        started: "", ended: "", startOrder: 1, endOrder: 2, readBack: .full, postgres: nil, part: part)
    }

    func manifest(_ records: [ComponentRecord], failures: [ComponentFailure] = []) -> Manifest {
        Manifest(formatVersion: Manifest.currentFormatVersion, setId: "20260101T000000Z-aaaa", node: NodeInfo(name: "v", kind: .generic),
                 epoch: Epoch(migrationId: 0, serial: 0), status: failures.isEmpty ? .complete : .partial, failures: failures,
                 toolVersion: "t", captureStart: "2026-01-01T00:00:00.000Z", captureEnd: "2026-01-01T00:00:01.000Z", recovered: nil,
                 components: records, barrier: nil)
    }

    @Test func restoreFindsTheWholeGroupAndRefusesAnIncompleteOne() throws {
        func part(_ i: Int, _ section: DumpSection, count: Int = 3) -> DumpPart {
            DumpPart(group: "apps-db", database: "db", index: i, count: count, section: section, snapshot: "1-2-3")
        }
        let whole = [record("apps-db.post", part: part(2, .postData)), record("apps-db.pre", part: part(0, .preData)),
                     record("apps-db.data-1", part: part(1, .data)), record("other", part: nil)]
        let byGroup = try DatabaseRestorer.parts(of: "apps-db", in: manifest(whole))
        #expect(byGroup?.map(\.name) == ["apps-db.pre", "apps-db.data-1", "apps-db.post"])
        #expect(try DatabaseRestorer.parts(of: "apps-db.data-1", in: manifest(whole))?.count == 3)
        #expect(try DatabaseRestorer.parts(of: "other", in: manifest(whole)) == nil)
        let missing = whole.filter { $0.name != "apps-db.data-1" }
        #expect(throws: CNBackupError.self) { try DatabaseRestorer.parts(of: "apps-db", in: manifest(missing)) }
        let failed = [ComponentFailure(component: "apps-db", role: "apps", reason: "x")]
        #expect(throws: CNBackupError.self) { try DatabaseRestorer.parts(of: "apps-db.pre", in: manifest(whole, failures: failed)) }
        #expect(throws: CNBackupError.self) { try DatabaseRestorer.parts(of: "apps-db", in: manifest([], failures: failed)) }
        // The plan names the group once.
        let steps = RestorePlan.steps(for: manifest(whole), store: "s3://b", now: Date(timeIntervalSince1970: 1_767_225_600))
        #expect(steps.filter { $0.contains("--component apps-db ") }.count == 1)
        #expect(!steps.contains { $0.contains("--component apps-db.") })
        // The drill restores the group as one database.
        var counted = whole
        for i in counted.indices where counted[i].part != nil { counted[i].rowCounts = counted[i].part!.section == .data ? ["public.t": 5] : [:] }
        let drilled = Driller.databaseComponents(manifest(counted))
        #expect(drilled.map(\.name) == ["apps-db", "other"] || drilled.map(\.name) == ["apps-db"])
        #expect(drilled.first?.rowCounts == ["public.t": 5])
    }

    @Test func aFailedPartFailsTheWholeDatabase() throws {
        let d = try definition("{ host: h, user: u, databases: [db], jobs: 2 }")
        let jobs = d.captures.flatMap(\.jobs)
        let collector = ResultCollector()
        for job in jobs where job.name != "apps-db.data-2" { collector.add(job, .success(record(job.name, part: nil))) }
        collector.add(jobs.first { $0.name == "apps-db.data-2" }!, .failure(CNBackupError(.capture, "pg_dump was killed by signal 9")))
        let (records, failures) = collector.ordered(by: jobs)
        #expect(records.count == 3)
        #expect(failures.map(\.component) == ["apps-db.data-2", "apps-db"])
        #expect(BarrierRule.evaluate(records, apps: BackupPlan(d).appsComponents).holds == false)
    }
}

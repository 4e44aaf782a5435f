import Foundation
import Testing
import CNBackupCore
import CNBackupHTTP
import CNBackupStorage

/// kill -9 at random moments of runs: no set ever looks complete unless it is, cleanup leaves
/// nothing behind, and the next run succeeds.
@Suite(.serialized) struct CrashTests {
    /// Whether a process whose command line is exactly `command` is running (from /proc).
    func running(_ command: String) -> Bool {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.contains { entry in
            guard Int(entry) != nil, let raw = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline") else { return false }
            return String(decoding: raw, as: UTF8.self).split(separator: "\0").joined(separator: " ") == command
        }
    }

    @Test func aKilledRunTakesItsCaptureWithIt() throws {
        // SIGKILL runs no handler: only the kernel's parent-death signal ends the child.
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv") else { return }
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r1 = try generateKey(dir + "/ops")
        _ = try generateKey(dir + "/sign", signing: true)
        let seconds = String(Int.random(in: 900_000...999_999))
        try writePipeline(in: dir, node: "killed", recipients: [r1], captures: ["{ name: slow, role: other, command: [ sleep, \"\(seconds)\" ] }"])
        let process = Process()
        process.executableURL = URL(fileURLWithPath: cnbackupBinary())
        process.arguments = ["run", dir + "/p.yaml"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        var started = false
        for _ in 0..<200 where !started { started = running("/usr/bin/sleep \(seconds)") || running("/bin/sleep \(seconds)"); if !started { usleep(50_000) } }
        #expect(started, "the capture never started")
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        var gone = false
        for _ in 0..<100 where !gone { gone = !running("/usr/bin/sleep \(seconds)") && !running("/bin/sleep \(seconds)"); if !gone { usleep(50_000) } }
        #expect(gone, "sleep \(seconds) outlived the killed run")
    }

    @Test func killedRunsNeverLeaveASetThatLooksComplete() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r1 = try generateKey(dir + "/ops")
        let r2 = try generateKey(dir + "/bg")
        let signer = try generateKey(dir + "/sign", signing: true)
        try writePipeline(in: dir, node: "crashy", recipients: [r1, r2], captures: [
            "{ name: slow, role: other, command: [ sh, -c, \"for i in 1 2 3 4 5 6; do head -c 3000000 /dev/urandom; sleep 0.1; done\" ] }",
            "{ name: quick, role: other, command: [ printf, quick ] }",
        ])

        var generator = SystemRandomNumberGenerator()
        for _ in 0..<6 {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: cnbackupBinary())
            process.arguments = ["run", dir + "/p.yaml"]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            Thread.sleep(forTimeInterval: Double.random(in: 0.05...0.9, using: &generator))
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            // Whatever is listed as complete must deep-verify.
            struct Listing: Decodable { struct Set: Decodable { var id: String; var complete: Bool }; var sets: [Set] }
            let listed = try cli(["list", "--store", "file://\(dir)/store", "--signer", signer, "--json"])
            // Killed before it wrote anything: the store does not exist yet, which list says (exit 1).
            if listed.status == 1 && listed.stderr.contains("does not exist") && !FileManager.default.fileExists(atPath: dir + "/store") { continue }
            let sets = try JSONDecoder().decode(Listing.self, from: listed.stdout).sets
            for set in sets where set.complete {
                let verified = try cli(["verify", "--store", "file://\(dir)/store", "--signer", signer, set.id, "--deep", "--identity", dir + "/ops"])
                #expect(verified.status == 0, "set \(set.id) listed complete but does not verify: \(verified.text)")
            }
        }
        // The orphans of killed runs go; no set does. (The sets compared without `ageSeconds`, which
        // moves on by itself between two listings; an orphan's lone signature, listed as ignored, goes.)
        func listing() throws -> String {
            let json = try JSONSerialization.jsonObject(with: try cli(["list", "--store", "file://\(dir)/store", "--signer", signer, "--json"]).stdout)
            guard let top = json as? [String: Any], let sets = top["sets"] as? [[String: Any]] else { return "\(json)" }
            return String(decoding: try JSONSerialization.data(withJSONObject: sets.map { $0.filter { $0.key != "ageSeconds" } }, options: [.sortedKeys]),
                          as: UTF8.self)
        }
        let before = try listing()
        let cleanup = try cli(["cleanup", "--store", "file://\(dir)/store", "--older-than", "0s", "--apply"])
        #expect(cleanup.status == 0, "\(cleanup.stderr)")
        #expect(try listing() == before)
        #expect(try cli(["cleanup", "--store", "file://\(dir)/store", "--older-than", "0s"]).text.contains("nothing to clean up"))
        let leftovers = (try? FileManager.default.contentsOfDirectory(atPath: dir + "/store/.cnbackup-tmp")) ?? []
        #expect(leftovers.isEmpty)
        // And the next run succeeds.
        #expect(try cli(["run", dir + "/p.yaml"]).status == 0)
    }

    /// kill -9 during `copy`: the destination never lists a set that does not verify, and the
    /// next copy resumes (objects already there with the right digest are not sent again).
    @Test func killedCopiesResumeAndNeverLeaveAHalfSet() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r1 = try generateKey(dir + "/ops")
        let signer = try generateKey(dir + "/sign", signing: true)
        try writePipeline(in: dir, node: "copied", store: "source", recipients: [r1], extra: "verify: { readBack: none }", captures: [
            "{ name: big, role: other, command: [ sh, -c, \"head -c 12000000 /dev/urandom\" ] }",
            "{ name: small, role: other, command: [ sh, -c, \"head -c 2000000 /dev/urandom\" ] }",
        ])
        for _ in 0..<3 { #expect(try cli(["run", dir + "/p.yaml"]).status == 0) }
        let copyArguments = ["copy", "--from", "file://\(dir)/source", "--to", "file://\(dir)/dest", "--signer", signer]
        struct Listing: Decodable { struct Set: Decodable { var id: String; var complete: Bool }; var sets: [Set] }
        func listed(_ store: String) throws -> [Listing.Set] {
            // A copy killed before it created the destination leaves no store: `list` says so (exit 1).
            if !FileManager.default.fileExists(atPath: "\(dir)/\(store)") { return [] }
            return try JSONDecoder().decode(Listing.self, from: try cli(["list", "--store", "file://\(dir)/\(store)", "--signer", signer, "--json"]).stdout).sets
        }

        var generator = SystemRandomNumberGenerator()
        for _ in 0..<5 {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: cnbackupBinary())
            process.arguments = copyArguments
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            Thread.sleep(forTimeInterval: Double.random(in: 0.05...0.8, using: &generator))
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            for set in try listed("dest") {
                let verified = try cli(["verify", "--store", "file://\(dir)/dest", "--signer", signer, set.id, "--deep", "--identity", dir + "/ops"])
                #expect(set.complete && verified.status == 0, "set \(set.id) is listed at the destination but does not verify: \(verified.text)")
            }
        }
        let resumed = try cli(copyArguments)
        #expect(resumed.status == 0, "\(resumed.text) \(resumed.stderr)")
        #expect(try listed("dest").map(\.id) == (try listed("source").map(\.id)))
        #expect(try cli(["verify", "--store", "file://\(dir)/dest", "--signer", signer, "--all", "--deep", "--identity", dir + "/ops"]).status == 0)
        // Once everything is there, a copy sends nothing.
        let again = try cli(copyArguments).text.split(separator: "\n")
        #expect(again.count == 3 && again.allSatisfy { $0.contains("copied and verified (0 copied,") }, "\(again)")
        #expect(try cli(["cleanup", "--store", "file://\(dir)/dest", "--older-than", "0s", "--apply"]).status == 0)
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: dir + "/dest/.cnbackup-tmp")) ?? []).isEmpty)
    }
}

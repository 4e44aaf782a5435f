import Foundation
import Testing
import CNBackupCore
import CNBackupHTTP
import CNBackupStorage

/// The `cnbackup` binary as a user runs it. scripts/test.sh sets CNBACKUP_BIN; otherwise the
/// binary beside the test bundle is used.
func cnbackupBinary() -> String {
    if let path = ProcessInfo.processInfo.environment["CNBACKUP_BIN"] { return path }
    return Bundle.module.bundleURL.deletingLastPathComponent().appendingPathComponent("cnbackup").path
}

struct Outcome {
    let status: Int32
    let stdout: Data
    let stderr: String
    var text: String { String(decoding: stdout, as: UTF8.self) }
}

@discardableResult
func cli(_ arguments: [String], stdin: String? = nil, environment: [String: String] = [:], executable: String? = nil) throws -> Outcome {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable ?? cnbackupBinary())
    process.arguments = arguments
    var env = ProcessInfo.processInfo.environment
    env.merge(environment) { _, new in new }
    process.environment = env
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    if let stdin { process.standardInput = FileHandle(forReadingAtPath: stdin) } else { process.standardInput = FileHandle.nullDevice }
    try process.run()
    // Drain both pipes concurrently so neither can fill and block the child.
    nonisolated(unsafe) var errorData = Data()
    let drained = DispatchSemaphore(value: 0)
    DispatchQueue.global().async { errorData = err.fileHandleForReading.readDataToEndOfFile(); drained.signal() }
    let outputData = out.fileHandleForReading.readDataToEndOfFile()
    drained.wait()
    process.waitUntilExit()
    return Outcome(status: process.terminationStatus, stdout: outputData, stderr: String(decoding: errorData, as: UTF8.self))
}

/// `cnbackup keys generate [--signing] --out PATH`; returns the public key it prints.
func generateKey(_ path: String, signing: Bool = false) throws -> String {
    try cli(["keys", "generate"] + (signing ? ["--signing"] : []) + ["--out", path]).text.trimmingCharacters(in: .whitespacesAndNewlines)
}

/// Writes DIR/p.yaml: a generic node storing to file://DIR/STORE (the folder made, as `run`
/// requires), sealed to `recipients` and signed with DIR/sign (from `generateKey(dir + "/sign",
/// signing: true)`).
func writePipeline(in dir: String, node: String, migrationId: Int = 0, store: String = "store", recipients: [String],
                   extra: String = "", captures: [String]) throws {
    try FileManager.default.createDirectory(atPath: dir + "/" + store, withIntermediateDirectories: true)
    try """
    version: 1
    node: { name: \(node), kind: generic }
    epoch: { migrationId: \(migrationId), serial: 0 }
    store: { url: "file://\(dir)/\(store)" }
    encryption: { recipients: [ \(recipients.map { "\"\($0)\"" }.joined(separator: ", ")) ] }
    signing: { keyFile: "\(dir)/sign" }
    \(extra)
    captures:
    \(captures.map { "  - " + $0 }.joined(separator: "\n"))
    """.write(toFile: dir + "/p.yaml", atomically: true, encoding: .utf8)
}

func shell(_ command: String) throws -> Int32 {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/sh")
    process.arguments = ["-c", command]
    try process.run()
    process.waitUntilExit()
    return process.terminationStatus
}

func temporaryDirectory() throws -> String {
    let path = NSTemporaryDirectory() + "cnbackup-cli-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

@Suite(.serialized) struct CLITests {
    @Test func backupListVerifyRestoreAndBreakGlass() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let recipient = try generateKey(dir + "/ops")
        let breakGlass = try generateKey(dir + "/bg")
        let signer = try generateKey(dir + "/sign", signing: true)
        #expect(recipient.hasPrefix("cnb1-x25519-pub-") && signer.hasPrefix("cnb1-ed25519-pub-"))

        let fixture = try #require(Bundle.module.url(forResource: "sv-identities-dump", withExtension: "json", subdirectory: "Resources/fixtures"))
        try writePipeline(in: dir, node: "sv-1", migrationId: 1, recipients: [recipient, breakGlass], captures: [
            "{ name: dump, role: other, file: \"\(fixture.path)\" }",
            "{ name: etc, role: other, directory: \"\(fixture.deletingLastPathComponent().path)\" }",
        ])
        let validated = try cli(["validate", dir + "/p.yaml"])
        #expect(validated.status == 0, "\(validated.stderr)")
        #expect(try cli(["run", dir + "/p.yaml", "--dry-run"]).text.contains("phase 1"))
        let run = try cli(["run", dir + "/p.yaml"])
        #expect(run.status == 0, "\(run.stderr)")

        let listed = try cli(["list", "--store", "file://\(dir)/store", "--signer", signer, "--json"])
        #expect(listed.status == 0)
        struct Listing: Decodable { struct Set: Decodable { var id: String; var complete: Bool; var signature: String }; var sets: [Set] }
        let sets = try JSONDecoder().decode(Listing.self, from: listed.stdout).sets
        #expect(sets.count == 1 && sets[0].complete && sets[0].signature == "valid")
        let setId = sets[0].id

        #expect(try cli(["list", "--store", "file://\(dir)/store"]).stderr.contains("--signer"))
        let deep = try cli(["verify", "--store", "file://\(dir)/store", "--signer", signer, setId, "--deep", "--identity", dir + "/bg"])
        #expect(deep.status == 0, "\(deep.text) \(deep.stderr)")

        let restored = try cli(["restore", "--store", "file://\(dir)/store", "--signer", signer, setId, "--component", "dump",
                                "--to", dir + "/restored.json", "--identity", dir + "/ops"])
        #expect(restored.status == 0, "\(restored.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: dir + "/restored.json")) == Data(contentsOf: fixture))
        let mode = try FileManager.default.attributesOfItem(atPath: dir + "/restored.json")[.posixPermissions] as? NSNumber
        #expect(mode?.intValue == 0o600)
        let toStdout = try cli(["restore", "--store", "file://\(dir)/store", "--signer", signer, setId, "--component", "dump",
                                "--to", "-", "--identity", dir + "/ops"])
        #expect(toStdout.stdout == (try Data(contentsOf: fixture)))

        // Break-glass: only the object and a private key, no manifest: decrypt | zstd -d.
        let setFolder = "\(dir)/store/sv-1/migration-1/serial-0/\(setId)"
        let object = setFolder + "/" + (try FileManager.default.contentsOfDirectory(atPath: setFolder).first { $0.hasPrefix("dump-") && $0.hasSuffix(".zst.cnb") } ?? "dump.zst.cnb")
        #expect(try shell("'\(cnbackupBinary())' decrypt --identity '\(dir)/bg' < '\(object)' | zstd -dc > '\(dir)/glass.json'") == 0)
        #expect(try Data(contentsOf: URL(fileURLWithPath: dir + "/glass.json")) == Data(contentsOf: fixture))

        // The private key never shows up in anything cnbackup printed.
        let secretLine = try String(contentsOfFile: dir + "/ops", encoding: .utf8).split(separator: "\n").last.map(String.init) ?? "?"
        for output in [run.stderr, run.text, deep.text, deep.stderr, restored.stderr] { #expect(!output.contains(secretLine)) }
    }

    @Test func badInputGivesClearErrorsAndNonZeroExits() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let missing = try cli(["run", dir + "/nope.yaml"])
        #expect(missing.status == 1 && missing.stderr.contains("cannot read pipeline file"))
        try "version: 1\nnode: { name: n, kind: generic }\nepok: 3\n".write(toFile: dir + "/bad.yaml", atomically: true, encoding: .utf8)
        let bad = try cli(["validate", dir + "/bad.yaml"])
        #expect(bad.status == 1 && bad.stderr.contains("bad.yaml:"), "\(bad.stderr)")
        let wrongKey = try cli(["decrypt", "--identity", dir + "/none"], stdin: "/dev/null")
        #expect(wrongKey.status == 1 && wrongKey.stderr.contains("cannot read key file"))
    }

    @Test func partialRunExitsTwoAndLeavesAPartialSet() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let recipient = try generateKey(dir + "/ops")
        let signer = try generateKey(dir + "/sign", signing: true)
        try writePipeline(in: dir, node: "n1", recipients: [recipient], captures: [
            "{ name: ok, role: other, command: [ \"printf\", \"x\" ] }",
            "{ name: dies, role: other, command: [ \"false\" ] }",
        ])
        let run = try cli(["run", dir + "/p.yaml"])
        #expect(run.status == 2, "\(run.stderr)")
        #expect(run.stderr.contains("dies"))
        let listed = try cli(["list", "--store", "file://\(dir)/store", "--signer", signer, "--json"])
        #expect(listed.text.contains("\"status\" : \"partial\"") && listed.text.contains("\"complete\" : false"))
    }
}

@Suite(.serialized) struct UploadCLITests {
    @Test func uploadMakesASignedSetCompleteOnlyWithEveryRole() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let recipient = try generateKey(dir + "/ops")
        let signer = try generateKey(dir + "/sign", signing: true)
        for name in ["apps", "participant", "identities"] { try "\(name) bytes".write(toFile: "\(dir)/\(name)", atomically: true, encoding: .utf8) }
        let common = ["upload", "--store", "file://\(dir)/store", "--node", "v-1", "--kind", "validator", "--epoch", "3/0",
                      "--recipient", recipient, "--signing-key", dir + "/sign", "--captured-at", "2026-11-20T04:00:00Z"]
        let partial = try cli(common + ["--component", "apps=\(dir)/apps"])
        #expect(partial.status == 2 && partial.stderr.contains("participant"), "\(partial.stderr)")
        let full = try cli(common + ["--component", "apps=\(dir)/apps", "--component", "participant=\(dir)/participant",
                                    "--component", "identities=\(dir)/identities"])
        #expect(full.status == 0, "\(full.stderr)")
        #expect(full.text.contains("set 20261120T040000Z-"))
        let listed = try cli(["list", "--store", "file://\(dir)/store", "--signer", signer, "--json"]).text
        #expect(listed.contains("\"complete\" : true") && listed.contains("\"complete\" : false"))
        #expect(try cli(common + ["--component", "wizard=\(dir)/apps"]).status == 1)

        // The whole node's restore, in runbook order: scale down, apps before participant, scale up.
        let setId = try #require(full.text.split(separator: " ").dropFirst().first.map(String.init))
        let plan = try cli(["restore", "--store", "file://\(dir)/store", "--signer", signer, setId, "--plan"])
        #expect(plan.status == 0, "\(plan.stderr)")
        let lines = plan.text.split(separator: "\n").map(String.init)
        let down = lines.firstIndex { $0.contains("Scale down") }, apps = lines.firstIndex { $0.contains("--component apps") }
        let participant = lines.firstIndex { $0.contains("--component participant") }, up = lines.firstIndex { $0.contains("back up") }
        #expect(down != nil && apps != nil && participant != nil && up != nil)
        if let down, let apps, let participant, let up { #expect(down < apps && apps < participant && participant < up) }
    }
}

/// verify --all/--sample/--held-key, recover, restore --plan --json and the progress line, as an
/// operator runs them.
@Suite(.serialized) struct OperatorCLITests {
    @Test func orderCantonTakesTheSequencerLastAndVerifyChecksIt() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let recipient = try generateKey(dir + "/ops")
        let signer = try generateKey(dir + "/sign", signing: true)
        try writePipeline(in: dir, node: "sync-1", recipients: [recipient], extra: "order: canton\nparallelism: 4", captures: [
            "{ name: apps, role: apps, command: [ printf, a ] }",
            "{ name: participant, role: participant, command: [ sh, -c, \"sleep 0.3; printf p\" ] }",
            "{ name: mediator, role: mediator, command: [ sh, -c, \"sleep 0.5; printf m\" ] }",
            "{ name: sequencer, role: sequencer, command: [ printf, s ] }",
        ])
        let run = try cli(["run", dir + "/p.yaml"])
        #expect(run.status == 0, "\(run.stderr)")
        let setsFolder = dir + "/store/sync-1/migration-0/serial-0"
        let setId = try #require(try FileManager.default.contentsOfDirectory(atPath: setsFolder).first)
        let manifestName = try #require(try FileManager.default.contentsOfDirectory(atPath: setsFolder + "/" + setId).first { $0.hasPrefix("manifest-") && $0.hasSuffix(".json") })
        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: setsFolder + "/" + setId + "/" + manifestName))) as? [String: Any])
        #expect(json["order"] as? String == "canton")
        let evidence = try #require(json["sequencerBarrier"] as? [String: Any])
        #expect(evidence["holds"] as? Bool == true)
        let components = try #require(json["components"] as? [[String: Any]])
        func order(_ name: String, _ key: String) -> Int { components.first { $0["name"] as? String == name }?[key] as? Int ?? -1 }
        #expect(order("sequencer", "startOrder") > order("participant", "endOrder"))
        #expect(order("sequencer", "startOrder") > order("mediator", "endOrder"))
        let verified = try cli(["verify", "--store", "file://\(dir)/store", "--signer", signer, setId])
        #expect(verified.status == 0, "\(verified.text) \(verified.stderr)")
    }

    @Test func aMissingStoreFolderIsRefusedUnlessCreatingItWasAsked() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let recipient = try generateKey(dir + "/ops")
        _ = try generateKey(dir + "/sign", signing: true)
        try writePipeline(in: dir, node: "n1", recipients: [recipient], captures: ["{ name: a, role: other, command: [ \"printf\", \"x\" ] }"])
        try FileManager.default.removeItem(atPath: dir + "/store")
        // A volume that did not mount: run stops before anything is written, and validate says so.
        let refused = try cli(["run", dir + "/p.yaml"])
        #expect(refused.status == 1 && refused.stderr.contains("does not exist") && refused.stderr.contains("--create-store"), "\(refused.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/store"))
        let validated = try cli(["validate", dir + "/p.yaml"])
        #expect(validated.status == 1 && validated.stderr.contains("store.url:"), "\(validated.stderr)")
        // Asked for: by the flag, or by store.create.
        let created = try cli(["run", dir + "/p.yaml", "--create-store"])
        #expect(created.status == 0, "\(created.stderr)")
        #expect(FileManager.default.fileExists(atPath: dir + "/store"))
        try FileManager.default.removeItem(atPath: dir + "/store")
        let text = try String(contentsOfFile: dir + "/p.yaml", encoding: .utf8)
            .replacingOccurrences(of: "store: { url: \"file://\(dir)/store\" }", with: "store: { url: \"file://\(dir)/store\", create: true }")
        try text.write(toFile: dir + "/p.yaml", atomically: true, encoding: .utf8)
        #expect(try cli(["validate", dir + "/p.yaml"]).status == 0)
        let byField = try cli(["run", dir + "/p.yaml"])
        #expect(byField.status == 0, "\(byField.stderr)")
        // This test's folder is on whatever file system holds TMPDIR: on the root one, run says so.
        var folder = stat(), root = stat()
        if stat(dir, &folder) == 0, stat("/", &root) == 0, folder.st_dev == root.st_dev {
            #expect(byField.stderr.contains("on the root file system"))
        }
    }

    @Test func verifySamplingHeldKeysRecoverAndProgress() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let recipient = try generateKey(dir + "/ops")
        let signer = try generateKey(dir + "/sign", signing: true)
        let stranger = try generateKey(dir + "/stranger")
        try writePipeline(in: dir, node: "v-1", migrationId: 2, recipients: [recipient], captures: [
            "{ name: data, role: other, command: [ \"sh\", \"-c\", \"head -c 3000000 /dev/urandom\" ] }",
        ])
        for _ in 0..<4 { #expect(try cli(["run", dir + "/p.yaml"]).status == 0) }
        let store = ["--store", "file://\(dir)/store", "--signer", signer]

        // --sample 25 of 4 sets checks at least one, the newest among them.
        let sampled = try cli(["verify"] + store + ["--sample", "25", "--json"])
        #expect(sampled.status == 0, "\(sampled.stderr)")
        struct Reports: Decodable { struct R: Decodable { var setId: String; var ok: Bool }; var sets: [R]; var checked: Int; var ok: Bool }
        let reports = try JSONDecoder().decode(Reports.self, from: sampled.stdout)
        #expect(reports.checked >= 1 && reports.checked < 4 && reports.ok)
        struct Listing: Decodable { struct S: Decodable { var id: String; var recovered: Bool }; var sets: [S] }
        let ids = try JSONDecoder().decode(Listing.self, from: try cli(["list"] + store + ["--json"]).stdout).sets.map(\.id)
        #expect(reports.sets.map(\.setId).contains(ids.last!))
        #expect(try cli(["verify"] + store + ["--all"]).text.contains("4 set(s) checked, 0 failed"))
        // The only key still held is a stranger's: every set fails.
        let lost = try cli(["verify"] + store + ["--all", "--held-key", stranger])
        #expect(lost.status == 2 && lost.text.contains("none of the keys you hold can open data"))
        #expect(try cli(["verify"] + store + ["--all", "--held-key", recipient]).status == 0)
        #expect(try cli(["verify"] + store).status == 64)

        // The newest set loses its manifest (a run killed before its commit); recover rebuilds it.
        let newest = ids.last!
        let setFolder = "\(dir)/store/v-1/migration-2/serial-0/\(newest)"
        for name in try FileManager.default.contentsOfDirectory(atPath: setFolder) where name.hasPrefix("manifest") {
            try FileManager.default.removeItem(atPath: setFolder + "/" + name)
        }
        let young = try cli(["recover"] + store.prefix(2) + [newest, "--identity", dir + "/ops", "--signing-key", dir + "/sign"])
        #expect(young.status == 1 && young.stderr.contains("may still be going"))
        let recovered = try cli(["recover"] + store.prefix(2) + [newest, "--identity", dir + "/ops", "--signing-key", dir + "/sign", "--older-than", "0s"])
        #expect(recovered.status == 0, "\(recovered.stderr)")
        let relisted = try JSONDecoder().decode(Listing.self, from: try cli(["list"] + store + ["--json"]).stdout).sets
        #expect(relisted.last?.id == newest && relisted.last?.recovered == true)
        let deep = try cli(["verify"] + store + [newest, "--deep", "--identity", dir + "/ops"])
        #expect(deep.status == 0 && deep.text.contains("recovered"), "\(deep.text)")

        struct Plan: Decodable { var schemaVersion: Int; var id: String; var steps: [String] }
        let plan = try JSONDecoder().decode(Plan.self, from: try cli(["restore"] + store + [newest, "--plan", "--json"]).stdout)
        #expect(plan.id == newest && plan.steps.count >= 3 && plan.schemaVersion == 1)

        // A recovered set is restored only when the operator says so.
        let refused = try cli(["restore"] + store + [newest, "--component", "data", "--to", dir + "/refused", "--identity", dir + "/ops"])
        #expect(refused.status == 1 && refused.stderr.contains("--allow-recovered") && !FileManager.default.fileExists(atPath: dir + "/refused"))

        // On a terminal (script(1) gives one) restore shows progress; through a pipe it does not.
        let command = ([cnbackupBinary(), "restore"] + store + [newest, "--component", "data", "--to", dir + "/out", "--identity", dir + "/ops", "--allow-recovered"])
            .map { "'\($0)'" }.joined(separator: " ")
        let transcript = dir + "/transcript"
        #expect(try shell("script -qec \"\(command)\" /dev/null > '\(transcript)' 2>&1") == 0)
        let shown = try String(contentsOfFile: transcript, encoding: .utf8)
        #expect(shown.contains("data: 2.9 MiB in "), "\(shown)")
        let piped = try cli(["restore"] + store + [newest, "--component", "data", "--to", dir + "/out2", "--identity", dir + "/ops", "--allow-recovered"])
        #expect(piped.status == 0 && !piped.stderr.contains("MiB in "))
    }
}

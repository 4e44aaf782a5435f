import Foundation
import Testing

/// An operator's first week: every answer tells the truth, as a user runs cnbackup.

/// A stand-in S3 server that answers every request with `status` and the S3 error `code`, and
/// appends one line per request to `log`. Ends by itself after a minute.
func startFakeS3(status: Int, code: String, log: String) throws -> (endpoint: String, process: Process) {
    let script = """
    import http.server, sys, threading
    status, code, log = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    class H(http.server.BaseHTTPRequestHandler):
        def handle_one(self):
            with open(log, "a") as f: f.write(self.command + " " + self.path + "\\n")
            body = ("<?xml version='1.0'?><Error><Code>%s</Code><Message>fake</Message></Error>" % code).encode()
            self.send_response(status); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
        do_GET = do_PUT = do_HEAD = do_POST = do_DELETE = handle_one
        def log_message(self, *a): pass
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    print(server.server_address[1], flush=True)
    threading.Timer(60, server.shutdown).start()
    server.serve_forever()
    """
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", "-c", script, String(status), code, log]
    let out = Pipe()
    process.standardOutput = out
    try process.run()
    let port = String(decoding: out.fileHandleForReading.availableData, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    return ("http://127.0.0.1:\(port)", process)
}

let fakeCredentials = ["AWS_ACCESS_KEY_ID": "AKIAFAKEFAKEFAKE", "AWS_SECRET_ACCESS_KEY": "fakefakefakefakefake", "AWS_REGION": "us-east-1"]

/// Runs the built binary as user nobody (root reads everything, an operator's verifier does not).
func cliAsNobody(_ arguments: [String]) throws -> Outcome {
    try cli(["--reuid=65534", "--regid=65534", "--clear-groups", cnbackupBinary()] + arguments, executable: "/usr/bin/setpriv")
}

@Suite(.serialized) struct NoSilentSuccessTests {
    @Test func aMissingFileStoreIsAnErrorForEveryReader() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let signer = try generateKey(dir + "/sign", signing: true)
        let store = ["--store", "file://\(dir)/nowhere"]
        for arguments in [["list"] + store + ["--signer", signer],
                          ["prune"] + store + ["--signer", signer, "--node", "n1", "--retention-period", "30d"],
                          ["cleanup"] + store,
                          ["check-freshness"] + store + ["--signer", signer, "--node", "n1", "--max-age", "4h"]] {
            let outcome = try cli(arguments)
            #expect(outcome.status == 1, "\(arguments[0]): \(outcome.status) \(outcome.text) \(outcome.stderr)")
            #expect(outcome.stderr.contains("does not exist") && outcome.stderr.contains("--store"), "\(arguments[0]): \(outcome.stderr)")
            #expect(!outcome.text.contains("no sets"))
        }
    }

    @Test func aStoreThisUserCannotReadIsNeverEmpty() throws {
        guard getuid() == 0, FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv") else { return }
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        chmod(dir, 0o755)
        let recipient = try generateKey(dir + "/ops")
        let signer = try generateKey(dir + "/sign", signing: true)
        try writePipeline(in: dir, node: "n1", recipients: [recipient], captures: ["{ name: a, role: other, command: [ \"printf\", \"x\" ] }"])
        #expect(try cli(["run", dir + "/p.yaml"]).status == 0)
        let store = ["--store", "file://\(dir)/store", "--signer", signer]
        // The writer makes its folders 0700: another user cannot even open the root.
        let root = try cliAsNobody(["list"] + store)
        #expect(root.status == 1 && root.stderr.contains("cannot read"), "\(root.status) \(root.text) \(root.stderr)")
        // A readable root with an unreadable node folder is not an empty store either.
        chmod(dir + "/store", 0o755)
        for arguments in [["list"] + store, ["check-freshness"] + store + ["--node", "n1", "--max-age", "4h"],
                          ["prune"] + store + ["--node", "n1", "--retention-period", "30d"], ["cleanup", "--store", "file://\(dir)/store"]] {
            let outcome = try cliAsNobody(arguments)
            #expect(outcome.status == 1 && outcome.stderr.contains("cannot read the folder n1"), "\(arguments[0]): \(outcome.status) \(outcome.text) \(outcome.stderr)")
        }
    }

    @Test func aMisspeltNodeNamesTheNodesThatExist() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let recipient = try generateKey(dir + "/ops")
        let signer = try generateKey(dir + "/sign", signing: true)
        try writePipeline(in: dir, node: "sv-1", recipients: [recipient], captures: ["{ name: a, role: other, command: [ \"printf\", \"x\" ] }"])
        #expect(try cli(["run", dir + "/p.yaml"]).status == 0)
        let prune = try cli(["prune", "--store", "file://\(dir)/store", "--signer", signer, "--node", "sv1", "--retention-period", "30d"])
        #expect(prune.status == 1 && prune.stderr.contains("sv1") && prune.stderr.contains("sv-1"), "\(prune.status) \(prune.stderr)")
        #expect(try cli(["prune", "--store", "file://\(dir)/store", "--signer", signer, "--node", "sv-1", "--retention-period", "30d"]).status == 0)
    }

    @Test func aMissingBucketIsAnError() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let signer = try generateKey(dir + "/sign", signing: true)
        let (endpoint, server) = try startFakeS3(status: 404, code: "NoSuchBucket", log: dir + "/requests")
        defer { server.terminate() }
        // An IP address endpoint: path-style by default (no BUCKET.127.0.0.1 to resolve).
        let store = ["--store", "s3://missing/p", "--endpoint", endpoint]
        for arguments in [["list"] + store + ["--signer", signer], ["cleanup"] + store,
                          ["check-freshness"] + store + ["--signer", signer, "--node", "n1", "--max-age", "4h"],
                          ["prune"] + store + ["--signer", signer, "--node", "n1", "--retention-period", "30d"]] {
            let outcome = try cli(arguments, environment: fakeCredentials)
            #expect(outcome.status == 1 && outcome.stderr.contains("bucket missing does not exist"), "\(arguments[0]): \(outcome.status) \(outcome.stderr)")
        }
    }

    @Test func anEndpointFlagThatContradictsTheURLIsAUsageError() throws {
        let outcome = try cli(["list", "--store", "s3://b/p?endpoint=https://a.example.com", "--endpoint", "https://b.example.com", "--signer", "x"])
        #expect(outcome.status == 64 && outcome.stderr.contains("--endpoint"), "\(outcome.status) \(outcome.stderr)")
        let same = try cli(["list", "--store", "s3://b/p?endpoint=https://a.example.com/", "--endpoint", "https://a.example.com", "--signer", "x"])
        #expect(same.status != 64, "\(same.stderr)")
    }
}

/// `validate` checks what `run` will need, without side effects.
@Suite(.serialized) struct ValidateChecksTheHostTests {
    @Test func validateFindsWhatRunWouldFailOn() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let recipient = try generateKey(dir + "/ops")
        _ = try generateKey(dir + "/sign", signing: true)
        try writePipeline(in: dir, node: "n1", recipients: [recipient], captures: [
            "{ name: a, role: other, command: [ \"no-such-program-cnb\" ] }",
            "{ name: b, role: other, file: \"\(dir)/missing.json\" }",
            "{ name: c, role: other, directory: \"\(dir)/missing-folder\" }",
        ])
        try FileManager.default.removeItem(atPath: dir + "/store")
        let outcome = try cli(["validate", dir + "/p.yaml"])
        #expect(outcome.status == 1, "\(outcome.text) \(outcome.stderr)")
        for text in ["no-such-program-cnb", "missing.json", "missing-folder", "store.url:"] { #expect(outcome.stderr.contains(text), "\(outcome.stderr)") }
        #expect(!FileManager.default.fileExists(atPath: dir + "/store"), "validate must not create the store")
        #expect(try cli(["validate", "--syntax-only", dir + "/p.yaml"]).status == 0)

        // A signing key open to others is refused, by validate and by run (as ssh refuses).
        try writePipeline(in: dir, node: "n1", recipients: [recipient], captures: ["{ name: a, role: other, command: [ \"printf\", \"x\" ] }"])
        #expect(try cli(["validate", dir + "/p.yaml"]).status == 0)
        chmod(dir + "/sign", 0o644)
        let open = try cli(["validate", dir + "/p.yaml"])
        #expect(open.status == 1 && open.stderr.contains("chmod 600"), "\(open.stderr)")
        let run = try cli(["run", dir + "/p.yaml"])
        #expect(run.status == 1 && run.stderr.contains("chmod 600"), "\(run.stderr)")
        chmod(dir + "/sign", 0o600)
        try FileManager.default.removeItem(atPath: dir + "/sign")
        let gone = try cli(["validate", dir + "/p.yaml"])
        #expect(gone.status == 1 && gone.stderr.contains("\(dir)/sign"), "\(gone.stderr)")
    }

    @Test func epochFromTheEnvironmentAndRelativePaths() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/conf", withIntermediateDirectories: true)
        let recipient = try generateKey(dir + "/conf/ops")
        _ = try generateKey(dir + "/conf/sign", signing: true)
        try "x".write(toFile: dir + "/conf/data.txt", atomically: true, encoding: .utf8)
        try """
        version: 1
        node: { name: v-1, kind: validator }
        epoch: { migrationId: 0, serial: 0 }
        store: { url: "s3://bucket/p?endpoint=https://nowhere.invalid" }
        encryption: { recipients: [ "\(recipient)" ] }
        signing: { keyFile: sign }
        captures:
          - { name: apps, role: apps, file: data.txt }
          - { name: participant, role: participant, postgres: { host: pg, user: u, databases: [ participant_4 ] } }
          - { name: identities, role: identities, file: ./data.txt }
        """.write(toFile: dir + "/conf/p.yaml", atomically: true, encoding: .utf8)
        // Run from another folder: paths resolve against the file's folder.
        let wrongEpoch = try cli(["validate", dir + "/conf/p.yaml"])
        #expect(wrongEpoch.status == 1 && wrongEpoch.stderr.contains("participant_4"), "\(wrongEpoch.stderr)")
        let right = try cli(["validate", dir + "/conf/p.yaml"], environment: ["CNBACKUP_EPOCH": "4/0"])
        #expect(right.status == 0 && right.text.contains("epoch 4/0"), "\(right.text) \(right.stderr)")
        #expect(try cli(["validate", dir + "/conf/p.yaml", "--epoch", "4/0"]).status == 0)
        // --dry-run opens no store: no credentials, no endpoint reached.
        let dry = try cli(["run", dir + "/conf/p.yaml", "--dry-run", "--epoch", "4/0"],
                          environment: ["AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_PROFILE": "", "AWS_WEB_IDENTITY_TOKEN_FILE": ""])
        #expect(dry.status == 0 && dry.text.contains("phase 1") && dry.text.contains("\(dir)/conf/data.txt"), "\(dry.text) \(dry.stderr)")
    }
}

/// Usage errors exit 64, values are range-checked, messages name flags; keys show; list's size and age.
@Suite(.serialized) struct UsageAndMessagesTests {
    @Test func usageErrorsExit64() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let signer = try generateKey(dir + "/sign", signing: true)
        let recipient = try generateKey(dir + "/ops")
        let store = ["--store", "file://\(dir)/store", "--signer", signer]
        let cases: [[String]] = [
            ["restore"] + store + ["20261120T040000Z-1a2b3c4d", "--component", "dump", "--identity", dir + "/ops"],   // no --to
            ["restore"] + store + ["20261120T040000Z-1a2b3c4d", "--to", dir + "/out", "--identity", dir + "/ops"],    // no --component
            ["restore"] + store + ["20261120T040000Z-1a2b3c4d", "--component", "d", "--to", "x", "--identity", "k", "--jobs", "0"],
            ["upload", "--store", "file://\(dir)/store", "--node", "n", "--kind", "generic", "--epoch", "0/0",
             "--component", "other=\(dir)/ops", "--signing-key", dir + "/sign"],                                    // no --recipient
            ["upload", "--store", "file://\(dir)/store", "--node", "n", "--kind", "generic", "--epoch", "-1/0",
             "--component", "other=\(dir)/ops", "--signing-key", dir + "/sign", "--recipient", recipient],
            ["run", dir + "/p.yaml", "--epoch", "0"],
            ["run", dir + "/p.yaml", "--epoch", "-1/0"],
            ["run", dir + "/p.yaml", "--grace-period", "-1"],
            ["list"] + store + ["--epoch", "x"],
            ["prune"] + store + ["--node", "n", "--retention-period", "30d", "--keep-last", "-1"],
            ["encrypt"],
            ["decrypt"],
        ]
        for arguments in cases {
            let outcome = try cli(arguments)
            #expect(outcome.status == 64, "\(arguments.joined(separator: " ")): \(outcome.status) \(outcome.stderr)")
        }
        let margin = try cli(["prune"] + store + ["--node", "n", "--retention-period", "1d", "--margin", "2d"])
        #expect(margin.status == 1 && margin.stderr.contains("--retention-period") && margin.stderr.contains("--margin"), "\(margin.stderr)")
    }

    @Test func keysShowAndTheSigningKeyMessage() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let signing = try cli(["keys", "generate", "--signing", "--out", dir + "/sign"])
        let signer = signing.text.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(signing.stderr.contains("lives on the cluster") && signing.stderr.contains("pin"), "\(signing.stderr)")
        let recipient = try generateKey(dir + "/ops")
        let shownSigning = try cli(["keys", "show", dir + "/sign"])
        #expect(shownSigning.status == 0 && shownSigning.text.contains(signer) && shownSigning.text.contains("key id: "), "\(shownSigning.text)")
        #expect(!shownSigning.text.contains("SECRET"))
        let shownRecipient = try cli(["keys", "show", dir + "/ops", "--json"])
        struct Shown: Decodable { var schemaVersion: Int; var kind: String; var publicKey: String?; var keyId: String }
        let decoded = try JSONDecoder().decode(Shown.self, from: shownRecipient.stdout)
        #expect(decoded.kind == "x25519-private" && decoded.publicKey == recipient && decoded.keyId.count == 16)
        try "# a pinned signer\n\(signer)\n".write(toFile: dir + "/signer.pub", atomically: true, encoding: .utf8)
        let shownPublic = try cli(["keys", "show", dir + "/signer.pub"])
        #expect(shownPublic.status == 0 && shownPublic.text.contains(signer) && shownPublic.text.contains("public key"), "\(shownPublic.text)")
    }

    @Test func listShowsSizeAndAge() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let recipient = try generateKey(dir + "/ops")
        let signer = try generateKey(dir + "/sign", signing: true)
        try writePipeline(in: dir, node: "n1", recipients: [recipient], captures: ["{ name: a, role: other, command: [ \"sh\", \"-c\", \"head -c 200000 /dev/urandom\" ] }"])
        #expect(try cli(["run", dir + "/p.yaml"]).status == 0)
        let text = try cli(["list", "--store", "file://\(dir)/store", "--signer", signer]).text
        #expect(text.contains(" KiB") && text.contains(" ago"), "\(text)")
        struct Listing: Decodable { struct S: Decodable { var storedBytes: Int64 }; var sets: [S] }
        let sets = try JSONDecoder().decode(Listing.self, from: try cli(["list", "--store", "file://\(dir)/store", "--signer", signer, "--json"]).stdout).sets
        #expect(sets.count == 1 && sets[0].storedBytes > 200_000)
    }
}

/// S3 errors that cannot succeed on retry are not retried, and say what to fix.
@Suite(.serialized) struct S3AddressingAndRetriesTests {
    @Test func refusalsAreNotRetriedAndSayWhatToFix() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let signer = try generateKey(dir + "/sign", signing: true)
        for (status, code, expected) in [(403, "AccessDenied", "permissions"), (400, "InvalidAccessKeyId", "AWS_ACCESS_KEY_ID"),
                                         (403, "SignatureDoesNotMatch", "clock")] {
            let log = dir + "/requests-\(code)"
            let (endpoint, server) = try startFakeS3(status: status, code: code, log: log)
            defer { server.terminate() }
            let outcome = try cli(["list", "--store", "s3://b/p", "--endpoint", endpoint, "--signer", signer], environment: fakeCredentials)
            #expect(outcome.status == 1 && outcome.stderr.contains(expected), "\(code): \(outcome.stderr)")
            let requests = (try? String(contentsOfFile: log, encoding: .utf8))?.split(separator: "\n").count ?? 0
            #expect(requests == 1, "\(code): \(requests) requests")
        }
    }

    @Test func dnsAndTLSFailuresAreNotRetried() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let signer = try generateKey(dir + "/sign", signing: true)
        let dns = try cli(["list", "--store", "s3://b/p", "--endpoint", "https://no-such-host.invalid", "--path-style", "--signer", signer],
                          environment: fakeCredentials)
        #expect(dns.status == 1 && dns.stderr.contains("after 1 attempt(s)") && dns.stderr.contains("does not resolve"), "\(dns.stderr)")
        // https:// to a server that speaks http: a TLS protocol mismatch.
        let (endpoint, server) = try startFakeS3(status: 404, code: "NoSuchBucket", log: dir + "/requests")
        defer { server.terminate() }
        let tls = try cli(["list", "--store", "s3://b/p", "--endpoint", endpoint.replacingOccurrences(of: "http://", with: "https://"), "--signer", signer],
                          environment: fakeCredentials)
        #expect(tls.status == 1 && tls.stderr.contains("after 1 attempt(s)") && tls.stderr.contains("https"), "\(tls.stderr)")
    }
}

/// docs/schemas/NAME.schema.json, from this source tree.
func schemaPath(_ name: String) -> String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("docs/schemas/\(name).schema.json").path
}

/// Validates a command's JSON output against its schema with python3's jsonschema; returns the
/// errors (empty when valid).
func schemaErrors(_ output: Data, schema name: String, in dir: String) throws -> String {
    let file = dir + "/out-\(name).json"
    try output.write(to: URL(fileURLWithPath: file))
    let script = dir + "/validate.py"
    try """
    import json, sys, jsonschema
    doc = json.load(open(sys.argv[1]))
    validator = jsonschema.Draft202012Validator(json.load(open(sys.argv[2])))
    errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(doc)]
    print("\\n".join(errors)); sys.exit(1 if errors else 0)
    """.write(toFile: script, atomically: true, encoding: .utf8)
    let outcome = try cli(["python3", script, file, schemaPath(name)], executable: "/usr/bin/env")
    return outcome.status == 0 ? "" : outcome.text + outcome.stderr
}

/// One JSON contract: every --json output validates against its schema in docs/schemas/.
@Suite(.serialized) struct JSONContractTests {
    @Test func everyJSONOutputMatchesItsSchema() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let recipient = try generateKey(dir + "/ops")
        let signer = try generateKey(dir + "/sign", signing: true)
        try writePipeline(in: dir, node: "n1", migrationId: 2, recipients: [recipient], captures: ["{ name: a, role: other, command: [ \"printf\", \"x\" ] }"])
        for _ in 0..<3 { #expect(try cli(["run", dir + "/p.yaml"]).status == 0) }
        let store = ["--store", "file://\(dir)/store", "--signer", signer]
        struct Listing: Decodable { struct S: Decodable { var id: String }; var sets: [S] }
        let listed = try cli(["list"] + store + ["--json"])
        let ids = try JSONDecoder().decode(Listing.self, from: listed.stdout).sets.map(\.id)
        #expect(ids.count == 3)
        // An orphan (objects without a manifest) for cleanup; the newest set loses its manifest for recover.
        try FileManager.default.createDirectory(atPath: "\(dir)/store/n1/migration-2/serial-0/20200101T000000Z-0a0b0c0d", withIntermediateDirectories: true)
        try "junk".write(toFile: "\(dir)/store/n1/migration-2/serial-0/20200101T000000Z-0a0b0c0d/a.zst.cnb", atomically: true, encoding: .utf8)
        let outputs: [(String, [String])] = [
            ("list", ["list"] + store + ["--json"]),
            ("verify", ["verify"] + store + [ids[0], "--json"]),
            ("verify", ["verify"] + store + ["--all", "--json"]),
            ("restore-plan", ["restore"] + store + [ids[0], "--plan", "--json"]),
            ("prune", ["prune"] + store + ["--node", "n1", "--retention-period", "30d", "--json"]),
            ("check-freshness", ["check-freshness"] + store + ["--node", "n1", "--max-age", "4h", "--retention-period", "30d", "--json"]),
            ("cleanup", ["cleanup", "--store", "file://\(dir)/store", "--older-than", "0s", "--json"]),
            ("check-store", ["check-store", "--store", "file://\(dir)/store", "--json"]),
            ("copy", ["copy", "--from", "file://\(dir)/store", "--to", "file://\(dir)/copy", "--signer", signer, "--json"]),
            ("keys-show", ["keys", "show", dir + "/sign", "--json"]),
            ("keys-show", ["keys", "show", dir + "/ops", "--json"]),
        ]
        for (schema, arguments) in outputs {
            let outcome = try cli(arguments)
            #expect([0, 2].contains(outcome.status), "\(arguments.joined(separator: " ")): \(outcome.status) \(outcome.stderr)")
            let errors = try schemaErrors(outcome.stdout, schema: schema, in: dir)
            #expect(errors.isEmpty, "\(arguments.joined(separator: " ")): \(errors)\n\(outcome.text)")
        }
        let newest = ids[2]
        let setFolder = "\(dir)/store/n1/migration-2/serial-0/\(newest)"
        for name in try FileManager.default.contentsOfDirectory(atPath: setFolder) where name.hasPrefix("manifest") {
            try FileManager.default.removeItem(atPath: setFolder + "/" + name)
        }
        let recovered = try cli(["recover", "--store", "file://\(dir)/store", newest, "--identity", dir + "/ops", "--signing-key", dir + "/sign",
                                 "--older-than", "0s", "--dry-run", "--json"])
        #expect(recovered.status == 0, "\(recovered.stderr)")
        #expect(try schemaErrors(recovered.stdout, schema: "recover", in: dir).isEmpty)

        // Timestamps are RFC 3339 UTC strings, never seconds since 2001.
        let freshness = try cli(["check-freshness"] + store + ["--node", "n1", "--max-age", "4h", "--json"]).text
        #expect(freshness.contains("\"newestCompleteCapture\" : \"20"), "\(freshness)")
    }

    @Test func withJSONLogsFatalErrorsAreJSONLinesWithTheirCode() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let signer = try generateKey(dir + "/sign", signing: true)
        let outcome = try cli(["list", "--store", "file://\(dir)/none", "--signer", signer], environment: ["CNBACKUP_LOG_FORMAT": "json"])
        #expect(outcome.status == 1)
        let line = try #require(outcome.stderr.split(separator: "\n").last.map(String.init))
        let fields = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(fields["level"] as? String == "error" && fields["code"] as? String == "not-found" && (fields["msg"] as? String)?.contains("does not exist") == true, "\(line)")

        // Numbers in JSON logs are numbers.
        let recipient = try generateKey(dir + "/ops")
        try writePipeline(in: dir, node: "n1", recipients: [recipient], captures: ["{ name: a, role: other, command: [ \"printf\", \"x\" ] }"])
        let run = try cli(["run", dir + "/p.yaml"], environment: ["CNBACKUP_LOG_FORMAT": "json"])
        #expect(run.status == 0)
        let logged = run.stderr.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(logged.contains { $0["stored"] is NSNumber && !($0["stored"] is String) }, "\(run.stderr)")
        #expect(logged.allSatisfy { $0["node"] == nil || $0["node"] is String })
    }
}

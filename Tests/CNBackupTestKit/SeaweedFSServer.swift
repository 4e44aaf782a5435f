import Foundation
import CNBackupCore
import CNBackupHTTP
import CNBackupStorage

/// A SeaweedFS (`weed mini`) of its own for the tests: every port picked free, data in a temp
/// directory, started once per test process and stopped when it exits (and by a watchdog shell if
/// the test process dies without exiting cleanly).
package final class SeaweedFSServer: Sendable {
    package static let accessKey = "cnbackup-test"
    package static let secretKey = "cnbackup-test-secret-0123456789"
    package static let bucket = "cnbackup-test"

    package let endpoint: String
    /// The same server over TLS, with a certificate from a CA the test makes (`caFile`).
    package let httpsEndpoint: String
    package let caFile: String
    package let directory: String
    package let watchdogPID: Int32

    /// The path of `weed`, when it is on PATH.
    package static let executable: String? = {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        return path.split(separator: ":").map { "\($0)/weed" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }()

    nonisolated(unsafe) private static var cleanup: (pid: Int32, dir: String)?

    /// Started on first use; a failure to start is reported by each test that needs it.
    package static let shared: Result<SeaweedFSServer, Error> = Result { try SeaweedFSServer() }

    private init() throws {
        guard let weed = Self.executable else { throw CNBackupError(.io, "weed is not on PATH") }
        directory = NSTemporaryDirectory() + "cnbackup-weed-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory + "/data", withIntermediateDirectories: true)
        let identities = """
        {"identities":[{"name":"cnbackup-test","credentials":[{"accessKey":"\(Self.accessKey)","secretKey":"\(Self.secretKey)"}],
          "actions":["Admin","Read","Write","List","Tagging"]}]}
        """
        try identities.write(toFile: directory + "/s3.json", atomically: true, encoding: .utf8)

        try makeTestCertificates(in: directory)
        let ports = try freePorts(11)
        let s3Port = ports[0]
        let arguments = [
            "mini", "-dir=\(directory)/data", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            "-s3.port=\(s3Port)", "-s3.port.grpc=\(ports[1])", "-s3.config=\(directory)/s3.json",
            "-master.port=\(ports[2])", "-master.port.grpc=\(ports[3])",
            "-volume.port=\(ports[4])", "-volume.port.grpc=\(ports[5])",
            "-filer.port=\(ports[6])", "-filer.port.grpc=\(ports[7])",
            "-admin.port=\(ports[8])", "-admin.port.grpc=\(ports[9])",
            "-webdav=false", "-admin.ui=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
            "-master.telemetry=false", "-master.volumeSizeLimitMB=64",
            "-s3.port.https=\(ports[10])", "-s3.cert.file=\(directory)/server.pem", "-s3.key.file=\(directory)/server.key",
        ]
        // The shell stops weed when it is told to (TERM) or when the test process is gone.
        let quoted = ([weed] + arguments).map { "'\($0)'" }.joined(separator: " ")
        let script = """
        \(quoted) >'\(directory)/weed.log' 2>&1 &
        w=$!
        trap 'kill $w 2>/dev/null; wait $w; exit 0' TERM INT
        while kill -0 \(getpid()) 2>/dev/null && kill -0 $w 2>/dev/null; do sleep 1; done
        kill $w 2>/dev/null; wait $w
        """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", script]
        try process.run()
        watchdogPID = process.processIdentifier
        endpoint = "http://127.0.0.1:\(s3Port)"
        httpsEndpoint = "https://127.0.0.1:\(ports[10])"
        caFile = directory + "/ca.pem"
        Self.cleanup = (watchdogPID, directory)
        atexit {
            if let (pid, dir) = SeaweedFSServer.cleanup {
                kill(pid, SIGTERM)
                var status: Int32 = 0
                waitpid(pid, &status, 0)
                try? FileManager.default.removeItem(atPath: dir)
            }
        }

        // Ready when the bucket can be created (every component answers by then).
        let store = try Self.store(endpoint: endpoint, prefix: "")
        let deadline = Date().addingTimeInterval(40)
        while true {
            do { try store.createBucket(); break } catch {
                if Date() > deadline {
                    let log = (try? String(contentsOfFile: directory + "/weed.log", encoding: .utf8)) ?? ""
                    throw CNBackupError(.storage, "SeaweedFS did not come up: \(error)\n\(log.suffix(2000))")
                }
                Thread.sleep(forTimeInterval: 0.3)
            }
        }
    }

    package static func store(endpoint: String, prefix: String, secret: String = secretKey,
                      configure: (inout S3Settings) -> Void = { _ in }) throws -> S3Store {
        var settings = S3Settings(bucket: bucket, prefix: prefix, endpoint: endpoint, region: "us-east-1",
                                  provider: .seaweedfs)
        settings.retry = RetryPolicy(maxAttempts: 3, baseDelay: 0.05, maxDelay: 1)
        configure(&settings)
        return try S3Store(settings: settings, credentials: S3Credentials(accessKeyId: accessKey, secretAccessKey: secret))
    }

    package func store(prefix: String, secret: String = secretKey, configure: (inout S3Settings) -> Void = { _ in }) throws -> S3Store {
        try Self.store(endpoint: endpoint, prefix: prefix, secret: secret, configure: configure)
    }
}

/// A CA and a server certificate for 127.0.0.1 signed by it, made with the openssl tool.
private func makeTestCertificates(in directory: String) throws {
    let script = """
    set -e; cd '\(directory)'
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 2 -subj '/CN=cnbackup test CA'
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key -out server.csr -subj '/CN=127.0.0.1'
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile server.ext
    """
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/sh")
    process.arguments = ["-c", script]
    process.standardError = FileHandle.nullDevice
    process.standardOutput = FileHandle.nullDevice
    try process.run()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else { throw CNBackupError(.io, "openssl could not make the test certificates") }
}

/// Ports the kernel says are free now (bound to port 0, then released).
private func freePorts(_ count: Int) throws -> [Int] {
    var sockets: [Int32] = []
    defer { sockets.forEach { close($0) } }
    var ports: [Int] = []
    // gRPC ports default to port + 10000: keep every pick below 55535 so no default can clash.
    while ports.count < count {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw CNBackupError(.io, "socket() failed") }
        sockets.append(fd)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard ok else { throw CNBackupError(.io, "bind() failed") }
        let port = Int(UInt16(bigEndian: address.sin_port))
        if port < 55535 && !ports.contains(port) { ports.append(port) }
    }
    return ports
}

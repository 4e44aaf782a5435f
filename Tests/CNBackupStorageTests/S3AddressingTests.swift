import Foundation
import Testing
import CNBackupCore
import CNBackupTestKit
import CNBackupHTTP
import CNBackupStorage

/// Path-style addressing for IP and localhost endpoints, and what is never retried.
@Suite struct S3AddressingTests {
    @Test(arguments: ["http://127.0.0.1:9000", "https://10.0.0.5", "http://localhost:8333", "http://[::1]:9000", "https://minio.localhost"])
    func ipAndLocalhostEndpointsArePathStyle(_ endpoint: String) throws {
        #expect(S3Settings.endpointNeedsPathStyle(endpoint))
        #expect(S3Settings(bucket: "b", endpoint: endpoint).pathStyle)
        #expect(!S3Settings(bucket: "b", endpoint: endpoint, pathStyle: false).pathStyle, "an explicit pathStyle wins")
    }

    @Test(arguments: ["https://s3.eu-central-1.amazonaws.com", "https://storage.example.com:9000", "https://127.0.0.1.nip.io"])
    func namedEndpointsKeepTheProvidersDefault(_ endpoint: String) {
        #expect(!S3Settings.endpointNeedsPathStyle(endpoint))
        #expect(!S3Settings(bucket: "b", endpoint: endpoint).pathStyle)
    }

    @Test func refusalsAreNotRetried() {
        for (status, code) in [(403, "AccessDenied"), (400, "InvalidAccessKeyId"), (403, "SignatureDoesNotMatch"), (403, "InvalidAccessKeyId"), (404, "NoSuchBucket")] {
            #expect(!S3Store.isRetryable(status: status, code: code), "\(status) \(code)")
        }
        #expect(S3Store.isRetryable(status: 503, code: "SlowDown"))
        #expect(S3Store.isRetryable(status: 403, code: "RequestTimeTooSkewed"))
    }

    @Test func dnsAndTLSFailuresAreNotRetriedAndHaveAHint() {
        for code in [6, 35, 60, 77] {  // resolve host, TLS handshake, peer verification, CA file
            let error = HTTPTransportError(curlCode: code, message: "x", host: "h")
            #expect(!error.isRetryable && error.hint != nil, "curl \(code)")
        }
        for code in [7, 28, 55, 56] {  // connect, timeout, send, receive
            #expect(HTTPTransportError(curlCode: code, message: "x", host: "h").isRetryable, "curl \(code)")
        }
    }
}

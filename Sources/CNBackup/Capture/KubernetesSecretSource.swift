import Foundation
import CNBackupCore
import CNBackupHTTP
import CNBackupStorage

/// Reading the Secret: the API server is reached with the pod's service account token and CA.
extension KubernetesSecretDefinition {
    /// Namespace and name are DNS labels and subdomains: checked so they cannot change the path.
    func checkNames() throws {
        // \A…\z: `$` would also match before a trailing newline, which would then reach the URL path.
        let label = #"\A[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\z"#, subdomain = #"\A[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?\z"#
        guard namespace.range(of: label, options: .regularExpression) != nil else {
            throw CNBackupError(.invalidInput, "\"\(namespace)\" is not a Kubernetes namespace name")
        }
        guard name.range(of: subdomain, options: .regularExpression) != nil else {
            throw CNBackupError(.invalidInput, "\"\(name)\" is not a Kubernetes Secret name")
        }
    }

    func resolvedAPIServer(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> String {
        if let apiServer { return apiServer }
        guard let host = environment["KUBERNETES_SERVICE_HOST"], !host.isEmpty else {
            throw CNBackupError(.invalidInput, "no Kubernetes API server: KUBERNETES_SERVICE_HOST is not set (not in a pod?); give kubernetesSecret.apiServer")
        }
        let port = environment["KUBERNETES_SERVICE_PORT"] ?? "443"
        return "https://\(host.contains(":") ? "[\(host)]" : host):\(port)"
    }

    /// Fetches the Secret and returns its cleaned manifest as a stream held in memory.
    func fetch(timeoutSeconds: Int = 60) throws -> ByteStream {
        try checkNames()
        let server = try resolvedAPIServer()
        guard server.lowercased().hasPrefix("https://") else {
            throw CNBackupError(.invalidInput, "the Kubernetes API server \(server) must be https:// (it serves Secrets)")
        }
        try SecureURL.require(server, what: "the Kubernetes API server")
        let token = try HTTPSourceDefinition.readSecret(tokenFile ?? Self.serviceAccountFolder + "/token", what: "service account token")
        let ca = caFile ?? Self.serviceAccountFolder + "/ca.crt"
        let url = "\(server)/api/v1/namespaces/\(namespace)/secrets/\(name)"
        var request = HTTPRequest(method: "GET", url: url)
        request.headers = [("Authorization", "Bearer " + token.string), ("Accept", "application/json")]
        let what = "GET Secret \(namespace)/\(name) from \(server)"
        let response = try RetryPolicy.capture(deadline: TimeInterval(timeoutSeconds)).fetch(
            { request }, caFile: ca, limit: 4 << 20, what: what,
            timedOut: CNBackupError(.capture, "\(what) did not answer within \(timeoutSeconds)s"))
        let body = SecretText(response.body)
        switch response.status {
        case 200: break
        case 401:
            throw CNBackupError(.capture, "\(what): 401, the service account token was not accepted: check the pod's service account and its token mount")
        case 403:
            throw CNBackupError(.capture, "\(what): 403, the service account may not read this Secret: give it a Role with verbs [get] on secrets, resourceNames [\(name)], in namespace \(namespace) (examples/kubernetes)")
        case 404:
            throw CNBackupError(.capture, "\(what): 404, there is no Secret \(name) in namespace \(namespace): check the names")
        default:
            throw CNBackupError(.capture, "\(what): HTTP \(response.status)")
        }
        return SecretStream(try Self.cleaned(body, namespace: namespace, name: name))
    }

    /// The Secret as `kubectl apply -f` takes it back, in a stable key order.
    static func cleaned(_ body: SecretText, namespace: String, name: String) throws -> SecretText {
        guard let secret = try? JSONSerialization.jsonObject(with: Data(body.bytes)) as? [String: Any],
              secret["kind"] as? String == "Secret" else {
            throw CNBackupError(.capture, "the API server's answer for Secret \(namespace)/\(name) is not a Secret")
        }
        let metadata = secret["metadata"] as? [String: Any] ?? [:]
        var kept: [String: Any] = ["name": name, "namespace": namespace]
        if let labels = metadata["labels"] as? [String: String] { kept["labels"] = labels }
        if var annotations = metadata["annotations"] as? [String: String] {
            annotations["kubectl.kubernetes.io/last-applied-configuration"] = nil
            if !annotations.isEmpty { kept["annotations"] = annotations }
        }
        var out: [String: Any] = ["apiVersion": "v1", "kind": "Secret", "metadata": kept,
                                  "type": secret["type"] as? String ?? "Opaque", "data": secret["data"] as? [String: String] ?? [:]]
        if let immutable = secret["immutable"] as? Bool { out["immutable"] = immutable }
        let data = try JSONSerialization.data(withJSONObject: out, options: [.sortedKeys, .withoutEscapingSlashes])
        return SecretText(Array(data) + [0x0A])
    }
}

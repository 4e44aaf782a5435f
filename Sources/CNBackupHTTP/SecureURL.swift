import Foundation
import CNBackupCore

/// URLs that carry secrets (the identities dump, OAuth client secrets and tokens, STS web identity
/// tokens) must be https; plain HTTP only to this machine's loopback.
package enum SecureURL {
    /// Secrets (the dump, the client secret, the token) only travel over TLS; plain HTTP is
    /// allowed to this machine's loopback alone, compared on the parsed host, never on a prefix.
    package static func require(_ text: String, what: String) throws {
        guard let url = URLComponents(string: text), let scheme = url.scheme?.lowercased(), let host = url.host, !host.isEmpty,
              url.user == nil, url.password == nil else {
            throw CNBackupError(.invalidInput, "\(what) \(text) is not a valid https:// URL")
        }
        let loopback = ["127.0.0.1", "localhost", "::1", "[::1]"].contains(host.lowercased())
            || (host.lowercased().hasSuffix(".localhost") && resolvesToLoopbackOnly(host))
        guard scheme == "https" || (scheme == "http" && loopback) else {
            throw CNBackupError(.invalidInput, "\(what) \(text) must be https:// (it carries the node's private keys or credentials)")
        }
    }

    /// Docker-compose validators serve the endpoint at `http://wallet.localhost`: a `*.localhost`
    /// name counts as loopback only when every address it resolves to is a loopback address.
    package static func resolvesToLoopbackOnly(_ host: String) -> Bool {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &result) == 0, let first = result else { return false }
        defer { freeaddrinfo(first) }
        var node: UnsafeMutablePointer<addrinfo>? = first
        var sawOne = false
        while let current = node {
            guard let address = current.pointee.ai_addr else { return false }
            switch Int32(address.pointee.sa_family) {
            case AF_INET:
                let ipv4 = address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr.s_addr }
                guard UInt32(bigEndian: ipv4) >> 24 == 127 else { return false }
            case AF_INET6:
                let loop = address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { pointer -> Bool in
                    withUnsafeBytes(of: pointer.pointee.sin6_addr) { bytes in bytes.prefix(15).allSatisfy { $0 == 0 } && bytes[15] == 1 }
                }
                guard loop else { return false }
            default:
                return false
            }
            sawOne = true
            node = current.pointee.ai_next
        }
        return sawOne
    }
}

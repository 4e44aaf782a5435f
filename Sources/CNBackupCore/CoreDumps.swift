import Foundation

/// Turns core dumps off: key material and identities live in this process's memory.
public func disableCoreDumps() {
    var limit = rlimit(rlim_cur: 0, rlim_max: 0)
    #if os(Linux)
    _ = setrlimit(__rlimit_resource_t(RLIMIT_CORE.rawValue), &limit)
    #else
    _ = setrlimit(RLIMIT_CORE, &limit)
    #endif
}

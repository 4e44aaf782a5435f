import CMalloc
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

/// Keeps memory flat however long a stream runs. The byte path allocates and frees 1 MiB chunks
/// on several threads; glibc's dynamic mmap threshold would move such chunks into per-thread
/// heap arenas after the first free, where fragmentation makes the resident size creep up with
/// the input. A fixed threshold below the chunk size maps and unmaps each chunk directly.
public func useFlatMemoryAllocation() {
    _ = cnb_set_mmap_threshold(256 << 10)
}

/// A child that stops reading (pg_restore --list once it has the table of contents, a consumer
/// of `restore --to -` that exits) must surface as EPIPE from write(2), an error the caller
/// handles, not as SIGPIPE killing the process.
public func ignoreBrokenPipes() {
    _ = signal(SIGPIPE, SIG_IGN)
}

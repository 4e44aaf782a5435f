import CProcessHardening
import Foundation
import CNBackupCore
import CNBackupStorage

/// Keeps memory flat however long a stream runs, without paying the kernel for every chunk.
///
/// The byte path allocates and frees 1 MiB chunks on several threads. With glibc's defaults, the
/// dynamic mmap threshold moves such chunks into per-thread heap arenas after the first free, and
/// fragmentation across those arenas made the resident size creep up with the input (306 MiB for
/// 128 MiB of input). Mapping every chunk instead (a threshold below 1 MiB) kept memory flat but
/// cost an mmap, 256 page faults and an munmap per chunk: more system time than user time.
/// One arena and a fixed threshold of 5 MiB give both: chunk-sized buffers and zstd frames (4 MiB
/// of plaintext and the array's header) are reused from one heap (a handful of allocations per MiB,
/// so the single arena's lock is not contended), while S3 part buffers (8 MiB and more, grown by
/// appending) are still mapped and returned to the system whole; with them on the heap too, a
/// 2 GiB upload peaked at 137 MiB instead of 117 MiB (docs/BENCHMARKS.md). The heap keeps up to
/// 32 MiB free at its top instead of 128 KiB: a freed frame at the top was given back and its
/// next use faulted and zeroed every page again (a tenth of a restore's CPU).
func useFlatMemoryAllocation() {
    _ = cnb_set_arena_max(1)
    _ = cnb_set_mmap_threshold(5 << 20)
    _ = cnb_set_trim_threshold(32 << 20)
}

/// No other process of the same user may read this one's memory or environment through
/// /proc/<pid>/mem or ptrace (a scratch PostgreSQL run as the same user, or a child that runs code
/// from a backup), and no core dump is written: key material lives in this memory.
func makeUndumpable() {
    disableCoreDumps()
    _ = cnb_set_undumpable()
}

/// A child that stops reading (pg_restore --list once it has the table of contents, a consumer
/// of `restore --to -` that exits) must surface as EPIPE from write(2), an error the caller
/// handles, not as SIGPIPE killing the process.
func ignoreBrokenPipes() {
    _ = signal(SIGPIPE, SIG_IGN)
}

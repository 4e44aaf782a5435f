#ifndef CNB_CPROCESSHARDENING_SHIM_H
#define CNB_CPROCESSHARDENING_SHIM_H
// Process set-up for the cnbackup executable: glibc allocator tuning and the process's own
// protection. Only Sources/cnbackup-cli/ProcessHardening.swift imports this module. (prctl is
// variadic, which Swift cannot call: these wrappers fix its arguments.)
#ifdef __linux__
#include <malloc.h>
#include <sys/prctl.h>
static inline int cnb_set_mmap_threshold(int bytes) { return mallopt(M_MMAP_THRESHOLD, bytes); }
static inline int cnb_set_arena_max(int count) { return mallopt(M_ARENA_MAX, count); }
static inline int cnb_set_trim_threshold(int bytes) { return mallopt(M_TRIM_THRESHOLD, bytes); }
static inline int cnb_set_undumpable(void) { return prctl(PR_SET_DUMPABLE, 0L, 0L, 0L, 0L); }
#else
static inline int cnb_set_mmap_threshold(int bytes) { (void)bytes; return 1; }
static inline int cnb_set_arena_max(int count) { (void)count; return 1; }
static inline int cnb_set_trim_threshold(int bytes) { (void)bytes; return 1; }
static inline int cnb_set_undumpable(void) { return 0; }
#endif
#endif

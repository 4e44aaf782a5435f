#ifndef CNB_CMALLOC_SHIM_H
#define CNB_CMALLOC_SHIM_H
// glibc allocator tuning for cnbackup. Only Sources/CNBackup/Support/ProcessHardening.swift imports this module.
#ifdef __linux__
#include <malloc.h>
static inline int cnb_set_mmap_threshold(int bytes) { return mallopt(M_MMAP_THRESHOLD, bytes); }
static inline int cnb_set_arena_max(int count) { return mallopt(M_ARENA_MAX, count); }
#else
static inline int cnb_set_mmap_threshold(int bytes) { (void)bytes; return 1; }
static inline int cnb_set_arena_max(int count) { (void)count; return 1; }
#endif
#endif

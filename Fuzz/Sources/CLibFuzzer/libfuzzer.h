// libFuzzer's driver entry point (compiler-rt, FuzzerInterface.h), linked in by -sanitize=fuzzer.
// SwiftPM gives each executable its own entry symbol (`--defsym main=<Target>_main`), so
// libFuzzer's `main` cannot be used as it is: each target's @main calls this driver instead.
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*UserCb)(const uint8_t *Data, size_t Size));

// The test process's own set-up, as the `cnbackup` executable does it in main.swift: a child that
// stops reading (pg_restore --list once it has the table of contents) must surface as EPIPE from
// write(2), not kill the test runner with SIGPIPE. The library leaves signals to its executable.
#include <signal.h>
#include "test_process_setup.h"

__attribute__((constructor)) static void cnb_tests_ignore_sigpipe(void) { signal(SIGPIPE, SIG_IGN); }

int cnb_tests_process_setup_linked(void) { return 1; }

#ifndef CNB_TEST_PROCESS_SETUP_H
#define CNB_TEST_PROCESS_SETUP_H
/// Present so the target has a header; the work happens in a constructor when the test binary loads.
int cnb_tests_process_setup_linked(void);
#endif

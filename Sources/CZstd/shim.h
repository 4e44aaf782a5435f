#ifndef CNB_CZSTD_SHIM_H
#define CNB_CZSTD_SHIM_H
#include <zstd.h>
#include <zstd_errors.h>
#endif

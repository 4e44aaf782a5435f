#ifndef CNB_CCURL_SHIM_H
#define CNB_CCURL_SHIM_H
// libcurl for cnbackup. Only Sources/CNBackup/HTTP/Curl.swift imports this module.
// curl_easy_setopt and curl_easy_getinfo are variadic: Swift cannot call them, so each argument
// type gets a typed wrapper.
#include <curl/curl.h>

typedef size_t (*cnb_curl_data_fn)(char *ptr, size_t size, size_t nmemb, void *userdata);

static inline CURLcode cnb_curl_setopt_long(CURL *h, CURLoption o, long v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode cnb_curl_setopt_off(CURL *h, CURLoption o, curl_off_t v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode cnb_curl_setopt_string(CURL *h, CURLoption o, const char *v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode cnb_curl_setopt_pointer(CURL *h, CURLoption o, void *v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode cnb_curl_setopt_slist(CURL *h, CURLoption o, struct curl_slist *v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode cnb_curl_setopt_datafn(CURL *h, CURLoption o, cnb_curl_data_fn v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode cnb_curl_getinfo_long(CURL *h, CURLINFO i, long *v) { return curl_easy_getinfo(h, i, v); }
#endif

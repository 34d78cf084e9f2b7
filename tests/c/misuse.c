/* The C ABI misuse matrix: every exported function with bad handles (0, negative,
 * made-up, stale, wrong type, double destroy) and every string argument with NULL,
 * invalid UTF-8, "" and a 10 MB string; a key object that holds no key; URLs that are not
 * http(s). Each call must fail with the right code and a non-empty text, never crash.
 * Run under valgrind by tests/bindings/c_programs.rs. Prints "N passed, N failed". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dpopkit.h"

static int passed = 0, failed = 0;

static void expect(int ok, const char *what, const char *detail) {
    if (ok) {
        passed++;
    } else {
        failed++;
        fprintf(stderr, "FAILED: %s %s\n", what, detail ? detail : "");
    }
}

/* The call failed with `code` and a text that says something. */
static void expect_code(int call_failed, uint32_t code, const char *what) {
    uint32_t got = dpopkit_last_error_code(0);
    char *text = dpopkit_last_error_text(0);
    char detail[256];
    snprintf(detail, sizeof detail, "(failed=%d code=%u want %u text=%.150s)", call_failed, got, code, text ? text : "NULL");
    expect(call_failed && got == code && text != NULL && text[0] != '\0', what, detail);
    dpopkit_string_free(text);
}

static int64_t g_key, g_empty_key, g_json, g_http;
static const char *GOOD_AUTH = "{\"client_id\":\"a\",\"client_secret\":\"b\",\"token_endpoint\":\"http://127.0.0.1:1/token\"}";
static const char *GOOD_URL = "http://127.0.0.1:1/api";

/* Each wrapper calls one function with handle h and good other arguments and returns
 * 1 when the call reported failure. */
#define FAILS_INT(expr) return (expr) == 0
#define FAILS_PTR(expr) do { char *r_ = (expr); int f_ = r_ == NULL; dpopkit_string_free(r_); return f_; } while (0)
static int k_load_file(int64_t h) { FAILS_INT(dpopkit_key_load_any_format_file(h, "tests/fixtures/ec_sec1.pem", NULL)); }
static int k_load(int64_t h) { FAILS_INT(dpopkit_key_load_any_format(h, "{}", NULL)); }
static int k_generate(int64_t h) { FAILS_INT(dpopkit_key_generate(h)); }
#define NO_MODULE_URI "pkcs11:token=t;object=k?module-path=/nonexistent/dpopkit-test-module.so"
static int k_gen_pkcs11(int64_t h) { FAILS_INT(dpopkit_key_generate_pkcs11(h, NO_MODULE_URI, "1234", NULL)); }
static int k_pem(int64_t h) { FAILS_PTR(dpopkit_key_get_pkcs8_pem(h)); }
static int k_jwk(int64_t h) { FAILS_PTR(dpopkit_key_get_jwk(h)); }
static int k_pub(int64_t h) { FAILS_PTR(dpopkit_key_get_public_jwk(h)); }
static int k_jkt(int64_t h) { FAILS_PTR(dpopkit_key_get_jwk_thumbprint(h)); }
static int j_update(int64_t h) { FAILS_INT(dpopkit_json_update_string(h, "a", "b")); }
static int j_emit(int64_t h) { FAILS_PTR(dpopkit_json_emit(h)); }
static int j_load(int64_t h) { FAILS_INT(dpopkit_json_load(h, "{}")); }
static int j_string_of(int64_t h) { FAILS_PTR(dpopkit_json_string_of(h, "a")); }
static int h_set_key(int64_t h) { FAILS_INT(dpopkit_http_set_dpop_key(h, g_key)); }
static int h_set_key_arg(int64_t k) { FAILS_INT(dpopkit_http_set_dpop_key(g_http, k)); }
static int h_auth(int64_t h) { FAILS_INT(dpopkit_http_set_auth_token(h, GOOD_AUTH)); }
static int h_log(int64_t h) { FAILS_INT(dpopkit_http_set_session_log_filename(h, NULL)); }
static int h_timeouts(int64_t h) { FAILS_INT(dpopkit_http_set_timeouts(h, 1000, 1000)); }
static int h_max(int64_t h) { FAILS_INT(dpopkit_http_set_max_response_size(h, 1000)); }
static int h_redirects(int64_t h) { FAILS_INT(dpopkit_http_set_follow_redirects(h, 1)); }
static int h_ca(int64_t h) { FAILS_INT(dpopkit_http_set_ca_file(h, NULL)); }
static int h_os(int64_t h) { FAILS_INT(dpopkit_http_set_use_os_trust_store(h, 0)); }
static int h_proxy(int64_t h) { FAILS_INT(dpopkit_http_set_proxy(h, NULL)); }
static int h_get(int64_t h) { FAILS_PTR(dpopkit_http_quick_get_str(h, GOOD_URL)); }
static int h_request(int64_t h) { FAILS_PTR(dpopkit_http_quick_request_str(h, "POST", GOOD_URL, "text/plain", "x")); }
/* Byte results: a failure is NULL with *out_len 0. */
static int bytes_failed(uint8_t *p, size_t len) { int f = p == NULL && len == 0; dpopkit_bytes_free(p); return f; }
static int h_set_header(int64_t h) { FAILS_INT(dpopkit_http_set_request_header(h, "Accept", "application/json")); }
static int h_remove_header(int64_t h) { FAILS_INT(dpopkit_http_remove_request_header(h, "Accept")); }
static int h_clear_headers(int64_t h) { FAILS_INT(dpopkit_http_clear_request_headers(h)); }
static int h_header_value(int64_t h) { FAILS_PTR(dpopkit_http_last_response_header_value(h, "Location")); }
static int h_get_bytes(int64_t h) { size_t n = 99; uint8_t *p = dpopkit_http_quick_get_bytes(h, GOOD_URL, &n); return bytes_failed(p, n); }
static int h_request_bytes(int64_t h) {
    static const uint8_t body[] = {0, 1, 0xff};
    size_t n = 99;
    uint8_t *p = dpopkit_http_quick_request_bytes(h, "POST", GOOD_URL, "application/octet-stream", body, sizeof body, &n);
    return bytes_failed(p, n);
}
static int h_last_body_bytes(int64_t h) { size_t n = 99; uint8_t *p = dpopkit_http_last_response_body_bytes(h, &n); return bytes_failed(p, n); }

struct hcase { const char *name; int (*fn)(int64_t); char type; };
static const struct hcase HCASES[] = {
    {"key_load_any_format_file", k_load_file, 'k'}, {"key_load_any_format", k_load, 'k'},
    {"key_generate", k_generate, 'k'}, {"key_generate_pkcs11", k_gen_pkcs11, 'k'}, {"key_get_pkcs8_pem", k_pem, 'k'}, {"key_get_jwk", k_jwk, 'k'},
    {"key_get_public_jwk", k_pub, 'k'}, {"key_get_jwk_thumbprint", k_jkt, 'k'},
    {"json_update_string", j_update, 'j'}, {"json_emit", j_emit, 'j'}, {"json_load", j_load, 'j'},
    {"json_string_of", j_string_of, 'j'},
    {"http_set_dpop_key(http)", h_set_key, 'h'}, {"http_set_dpop_key(key)", h_set_key_arg, 'k'},
    {"http_set_auth_token", h_auth, 'h'}, {"http_set_session_log_filename", h_log, 'h'},
    {"http_set_timeouts", h_timeouts, 'h'}, {"http_set_max_response_size", h_max, 'h'},
    {"http_set_follow_redirects", h_redirects, 'h'}, {"http_set_ca_file", h_ca, 'h'},
    {"http_set_use_os_trust_store", h_os, 'h'}, {"http_set_proxy", h_proxy, 'h'},
    {"http_quick_get_str", h_get, 'h'}, {"http_quick_request_str", h_request, 'h'},
    {"http_set_request_header", h_set_header, 'h'}, {"http_remove_request_header", h_remove_header, 'h'},
    {"http_clear_request_headers", h_clear_headers, 'h'}, {"http_last_response_header_value", h_header_value, 'h'},
    {"http_quick_get_bytes", h_get_bytes, 'h'}, {"http_quick_request_bytes", h_request_bytes, 'h'},
    {"http_last_response_body_bytes", h_last_body_bytes, 'h'},
};

/* String arguments: each wrapper passes `s` in one position. */
static int s_load_file_path(const char *s) { return dpopkit_key_load_any_format_file(g_key, s, NULL); }
static int s_load_file_pw(const char *s) { return dpopkit_key_load_any_format_file(g_key, "tests/fixtures/ec_pkcs8_enc.pem", s); }
static int s_load_data(const char *s) { return dpopkit_key_load_any_format(g_key, s, NULL); }
static int s_load_pw(const char *s) { return dpopkit_key_load_any_format(g_key, "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAA==\n-----END ENCRYPTED PRIVATE KEY-----\n", s); }
static int s_gen_uri(const char *s) { return dpopkit_key_generate_pkcs11(g_key, s, "1234", NULL); }
static int s_gen_pin(const char *s) { return dpopkit_key_generate_pkcs11(g_key, NO_MODULE_URI, s, NULL); }
static int s_gen_alg(const char *s) { return dpopkit_key_generate_pkcs11(g_key, NO_MODULE_URI, "1234", s); }
static int s_update_name(const char *s) { return dpopkit_json_update_string(g_json, s, "v"); }
static int s_update_value(const char *s) { return dpopkit_json_update_string(g_json, "", s) ; }
static int s_json_load(const char *s) { return dpopkit_json_load(g_json, s); }
static int s_string_of(const char *s) { char *r = dpopkit_json_string_of(g_json, s); int ok = r != NULL; dpopkit_string_free(r); return ok; }
static int s_auth(const char *s) { return dpopkit_http_set_auth_token(g_http, s); }
static int s_log(const char *s) { return dpopkit_http_set_session_log_filename(g_http, s); }
static int s_ca(const char *s) { return dpopkit_http_set_ca_file(g_http, s); }
static int s_proxy(const char *s) { return dpopkit_http_set_proxy(g_http, s); }
static int s_get(const char *s) { char *r = dpopkit_http_quick_get_str(g_http, s); int ok = r != NULL; dpopkit_string_free(r); return ok; }
static int s_req_method(const char *s) { char *r = dpopkit_http_quick_request_str(g_http, s, GOOD_URL, NULL, NULL); int ok = r != NULL; dpopkit_string_free(r); return ok; }
static int s_req_url(const char *s) { char *r = dpopkit_http_quick_request_str(g_http, "GET", s, NULL, NULL); int ok = r != NULL; dpopkit_string_free(r); return ok; }
static int s_req_ct(const char *s) { char *r = dpopkit_http_quick_request_str(g_http, "POST", "ftp://x/", s, "b"); int ok = r != NULL; dpopkit_string_free(r); return ok; }
static int s_set_header_name(const char *s) { return dpopkit_http_set_request_header(g_http, s, "v"); }
static int s_set_header_value(const char *s) { return dpopkit_http_set_request_header(g_http, "X-Test", s); }
static int s_remove_header(const char *s) { return dpopkit_http_remove_request_header(g_http, s); }
static int s_header_value(const char *s) { char *r = dpopkit_http_last_response_header_value(g_http, s); int ok = r != NULL; dpopkit_string_free(r); return ok; }
static int s_get_bytes(const char *s) { size_t n = 9; uint8_t *r = dpopkit_http_quick_get_bytes(g_http, s, &n); int ok = r != NULL; dpopkit_bytes_free(r); return ok; }
static int s_req_bytes_method(const char *s) { size_t n = 9; uint8_t *r = dpopkit_http_quick_request_bytes(g_http, s, GOOD_URL, NULL, NULL, 0, &n); int ok = r != NULL; dpopkit_bytes_free(r); return ok; }
static int s_req_bytes_url(const char *s) { size_t n = 9; uint8_t *r = dpopkit_http_quick_request_bytes(g_http, "GET", s, NULL, NULL, 0, &n); int ok = r != NULL; dpopkit_bytes_free(r); return ok; }
static int s_req_bytes_ct(const char *s) { size_t n = 9; uint8_t *r = dpopkit_http_quick_request_bytes(g_http, "POST", "ftp://x/", s, (const uint8_t *)"b", 1, &n); int ok = r != NULL; dpopkit_bytes_free(r); return ok; }
static int s_req_body(const char *s) { char *r = dpopkit_http_quick_request_str(g_http, "POST", "ftp://x/", "text/plain", s); int ok = r != NULL; dpopkit_string_free(r); return ok; }

/* null_code: the code for NULL (0 = NULL is allowed: the call may succeed or fail on its
 * other arguments); empty_code: the code for "" (0 = "" is allowed). */
struct scase { const char *name; int (*fn)(const char *); uint32_t null_code; uint32_t empty_code; };
static const struct scase SCASES[] = {
    {"key_load_any_format_file path", s_load_file_path, DPOPKIT_RESULT_NULL_ARGUMENT, DPOPKIT_RESULT_FILE_IO},
    {"key_load_any_format_file password", s_load_file_pw, 0, 0},
    {"key_load_any_format data", s_load_data, DPOPKIT_RESULT_NULL_ARGUMENT, DPOPKIT_RESULT_KEY_FORMAT},
    {"key_load_any_format password", s_load_pw, 0, 0},
    {"key_generate_pkcs11 uri", s_gen_uri, DPOPKIT_RESULT_NULL_ARGUMENT, DPOPKIT_RESULT_INVALID_ARGUMENT},
    {"key_generate_pkcs11 pin", s_gen_pin, 0, 0},
    {"key_generate_pkcs11 alg", s_gen_alg, 0, 0},
    {"json_update_string name", s_update_name, DPOPKIT_RESULT_NULL_ARGUMENT, DPOPKIT_RESULT_INVALID_ARGUMENT},
    {"json_update_string value", s_update_value, DPOPKIT_RESULT_NULL_ARGUMENT, DPOPKIT_RESULT_INVALID_ARGUMENT},
    {"json_load text", s_json_load, DPOPKIT_RESULT_NULL_ARGUMENT, DPOPKIT_RESULT_JSON},
    {"json_string_of name", s_string_of, DPOPKIT_RESULT_NULL_ARGUMENT, DPOPKIT_RESULT_JSON},
    {"http_set_auth_token json", s_auth, DPOPKIT_RESULT_NULL_ARGUMENT, DPOPKIT_RESULT_AUTH_TOKEN},
    {"http_set_session_log_filename path", s_log, 0, 0},
    {"http_set_ca_file path", s_ca, 0, 0},
    {"http_set_proxy url", s_proxy, 0, 0},
    {"http_quick_get_str url", s_get, DPOPKIT_RESULT_NULL_ARGUMENT, DPOPKIT_RESULT_INVALID_ARGUMENT},
    {"http_quick_request_str method", s_req_method, DPOPKIT_RESULT_NULL_ARGUMENT, DPOPKIT_RESULT_INVALID_ARGUMENT},
    {"http_quick_request_str url", s_req_url, DPOPKIT_RESULT_NULL_ARGUMENT, DPOPKIT_RESULT_INVALID_ARGUMENT},
    {"http_quick_request_str content_type", s_req_ct, 0, DPOPKIT_RESULT_INVALID_ARGUMENT},
    {"http_quick_request_str body", s_req_body, 0, DPOPKIT_RESULT_INVALID_ARGUMENT},
    {"http_set_request_header name", s_set_header_name, DPOPKIT_RESULT_NULL_ARGUMENT, DPOPKIT_RESULT_INVALID_ARGUMENT},
    {"http_set_request_header value", s_set_header_value, DPOPKIT_RESULT_NULL_ARGUMENT, 0},
    {"http_remove_request_header name", s_remove_header, DPOPKIT_RESULT_NULL_ARGUMENT, DPOPKIT_RESULT_INVALID_ARGUMENT},
    {"http_last_response_header_value name", s_header_value, DPOPKIT_RESULT_NULL_ARGUMENT, DPOPKIT_RESULT_NOT_FOUND},
    {"http_quick_get_bytes url", s_get_bytes, DPOPKIT_RESULT_NULL_ARGUMENT, DPOPKIT_RESULT_INVALID_ARGUMENT},
    {"http_quick_request_bytes method", s_req_bytes_method, DPOPKIT_RESULT_NULL_ARGUMENT, DPOPKIT_RESULT_INVALID_ARGUMENT},
    {"http_quick_request_bytes url", s_req_bytes_url, DPOPKIT_RESULT_NULL_ARGUMENT, DPOPKIT_RESULT_INVALID_ARGUMENT},
    {"http_quick_request_bytes content_type", s_req_bytes_ct, 0, DPOPKIT_RESULT_INVALID_ARGUMENT},
};

int main(void) {
    g_key = dpopkit_key_new();
    g_empty_key = dpopkit_key_new();
    g_json = dpopkit_json_new();
    g_http = dpopkit_http_new();
    expect(g_key > 0 && g_empty_key > 0 && g_json > 0 && g_http > 0, "objects created", NULL);
    expect(dpopkit_key_generate(g_key) == 1, "key generated", NULL);
    expect(dpopkit_http_set_timeouts(g_http, 300, 300) == 1, "timeouts", NULL);
    int64_t stale = dpopkit_json_new();
    expect(dpopkit_destroy(stale) == 1, "destroy", NULL);
    expect(dpopkit_destroy(stale) == 0, "double destroy fails", NULL);
    expect_code(1, DPOPKIT_RESULT_INVALID_HANDLE, "double destroy code");

    const int64_t bad[] = {0, -1, -9223372036854775807LL, 1, 12345, 9223372036854775807LL, stale, g_key ^ 0x10000000000LL};
    const size_t nbad = sizeof bad / sizeof bad[0];
    for (size_t i = 0; i < sizeof HCASES / sizeof HCASES[0]; i++) {
        const struct hcase *c = &HCASES[i];
        for (size_t b = 0; b < nbad; b++) {
            char what[160];
            snprintf(what, sizeof what, "%s with bad handle %lld", c->name, (long long)bad[b]);
            expect_code(c->fn(bad[b]), DPOPKIT_RESULT_INVALID_HANDLE, what);
        }
        const int64_t others[] = {g_key, g_json, g_http};
        const char types[] = {'k', 'j', 'h'};
        for (int t = 0; t < 3; t++) {
            if (types[t] == c->type) continue;
            char what[160];
            snprintf(what, sizeof what, "%s with a handle of type %c", c->name, types[t]);
            expect_code(c->fn(others[t]), DPOPKIT_RESULT_WRONG_HANDLE_TYPE, what);
        }
    }
    /* Destroy with bad handles. */
    for (size_t b = 0; b < nbad; b++) {
        expect_code(dpopkit_destroy(bad[b]) == 0, DPOPKIT_RESULT_INVALID_HANDLE, "destroy bad handle");
    }
    /* Getters of last-call state with bad handles: failure values, no crash. */
    for (size_t b = 0; b < nbad; b++) {
        expect(dpopkit_http_last_status(bad[b]) == 0, "last_status bad handle", NULL);
        expect(dpopkit_http_last_method_success(bad[b]) == 0, "last_method_success bad handle", NULL);
        expect(dpopkit_http_last_response_body(bad[b]) == NULL, "last_response_body bad handle", NULL);
        expect(dpopkit_http_last_response_header(bad[b]) == NULL, "last_response_header bad handle", NULL);
        expect(dpopkit_http_last_status_text(bad[b]) == NULL, "last_status_text bad handle", NULL);
        char *t = dpopkit_last_error_text(bad[b]);
        expect(t != NULL, "last_error_text of a bad handle gives the thread's", NULL);
        dpopkit_string_free(t);
    }

    /* Strings: NULL, invalid UTF-8, "", 10 MB. */
    const char invalid_utf8[] = {(char)0xff, (char)0xfe, 'a', 0};
    size_t big_len = 10u << 20;
    char *big = malloc(big_len + 1);
    if (!big) return 2;
    memcpy(big, "http://127.0.0.1:1/", 19);
    memset(big + 19, 'a', big_len - 19);
    big[big_len] = 0;
    for (size_t i = 0; i < sizeof SCASES / sizeof SCASES[0]; i++) {
        const struct scase *c = &SCASES[i];
        char what[160];
        int ok = c->fn(NULL);
        if (c->null_code) {
            snprintf(what, sizeof what, "%s NULL", c->name);
            expect_code(!ok, c->null_code, what);
        }
        snprintf(what, sizeof what, "%s invalid UTF-8", c->name);
        expect_code(!c->fn(invalid_utf8), DPOPKIT_RESULT_INVALID_UTF8, what);
        ok = c->fn("");
        if (c->empty_code) {
            snprintf(what, sizeof what, "%s empty", c->name);
            expect_code(!ok, c->empty_code, what);
        }
        ok = c->fn(big);
        snprintf(what, sizeof what, "%s 10 MB", c->name);
        char *t = dpopkit_last_error_text(0);
        expect(t != NULL && strlen(t) < 2000, what, "(error text bounded)");
        dpopkit_string_free(t);
        (void)ok;
    }
    free(big);
    /* Reset what the string cases changed. */
    dpopkit_http_set_session_log_filename(g_http, NULL);
    dpopkit_http_set_ca_file(g_http, NULL);
    dpopkit_http_set_proxy(g_http, "");

    /* A key object without a key. */
    expect_code(dpopkit_http_set_dpop_key(g_http, g_empty_key) == 0, DPOPKIT_RESULT_NO_KEY, "set_dpop_key empty key");
    expect_code(k_pem(g_empty_key), DPOPKIT_RESULT_NO_KEY, "get_pkcs8_pem empty key");
    expect_code(k_jwk(g_empty_key), DPOPKIT_RESULT_NO_KEY, "get_jwk empty key");
    expect_code(k_pub(g_empty_key), DPOPKIT_RESULT_NO_KEY, "get_public_jwk empty key");
    expect_code(k_jkt(g_empty_key), DPOPKIT_RESULT_NO_KEY, "get_jwk_thumbprint empty key");
    /* An AuthToken without a key. */
    expect(dpopkit_http_set_auth_token(g_http, GOOD_AUTH) == 1, "set_auth_token", NULL);
    expect_code(s_get(GOOD_URL) == 0, DPOPKIT_RESULT_NO_KEY, "request with AuthToken but no key");
    /* URLs that are not http(s). */
    const char *urls[] = {"ftp://127.0.0.1/", "file:///etc/passwd", "javascript:alert(1)", "127.0.0.1:80/x", "http://", "http://u:p@127.0.0.1/", " "};
    for (size_t u = 0; u < sizeof urls / sizeof urls[0]; u++) {
        expect_code(s_get(urls[u]) == 0, DPOPKIT_RESULT_INVALID_ARGUMENT, urls[u]);
    }
    /* Settings out of range. */
    expect_code(dpopkit_http_set_timeouts(g_http, 0, 100) == 0, DPOPKIT_RESULT_INVALID_ARGUMENT, "timeout 0");
    expect_code(dpopkit_http_set_max_response_size(g_http, 0) == 0, DPOPKIT_RESULT_INVALID_ARGUMENT, "max size 0");
    expect_code(dpopkit_http_set_proxy(g_http, "::not a proxy::") == 0, DPOPKIT_RESULT_INVALID_ARGUMENT, "bad proxy");
    dpopkit_string_free(NULL);
    /* Bytes: NULL out_len, NULL body with a length, forbidden and injected headers. */
    {
        size_t n = 5;
        expect_code(dpopkit_http_quick_get_bytes(g_http, GOOD_URL, NULL) == NULL, DPOPKIT_RESULT_NULL_ARGUMENT, "get_bytes out_len NULL");
        expect_code(dpopkit_http_quick_request_bytes(g_http, "GET", GOOD_URL, NULL, NULL, 0, NULL) == NULL, DPOPKIT_RESULT_NULL_ARGUMENT, "request_bytes out_len NULL");
        expect_code(dpopkit_http_last_response_body_bytes(g_http, NULL) == NULL, DPOPKIT_RESULT_NULL_ARGUMENT, "last_body_bytes out_len NULL");
        uint8_t *q = dpopkit_http_quick_request_bytes(g_http, "POST", GOOD_URL, NULL, NULL, 3, &n);
        expect_code(bytes_failed(q, n), DPOPKIT_RESULT_NULL_ARGUMENT, "request_bytes body NULL with a length");
        const char *refused[] = {"Authorization", "DPoP", "Host", "Content-Length", "Transfer-Encoding", "Connection"};
        for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
            expect_code(dpopkit_http_set_request_header(g_http, refused[i], "x") == 0, DPOPKIT_RESULT_INVALID_ARGUMENT, refused[i]);
        }
        expect_code(dpopkit_http_set_request_header(g_http, "X-A", "a\r\nX-Injected: 1") == 0, DPOPKIT_RESULT_INVALID_ARGUMENT, "header injection");
        expect_code(dpopkit_http_set_request_header(g_http, "Bad Name", "v") == 0, DPOPKIT_RESULT_INVALID_ARGUMENT, "bad header name");
        /* With no response yet: an empty, non-NULL body and no header. */
        n = 5;
        uint8_t *p = dpopkit_http_last_response_body_bytes(g_http, &n);
        expect(p != NULL && n == 0, "last body bytes without a response: non-NULL, length 0", NULL);
        dpopkit_bytes_free(p);
        dpopkit_bytes_free(NULL);
    }

    /* A string may be wiped by the caller before it is freed. */
    char *pem = dpopkit_key_get_pkcs8_pem(g_key);
    expect(pem != NULL, "export pem", NULL);
    if (pem) memset(pem, 0, strlen(pem));
    dpopkit_string_free(pem);

    int64_t objs[] = {g_key, g_empty_key, g_json, g_http};
    for (int i = 0; i < 4; i++) expect(dpopkit_destroy(objs[i]) == 1, "final destroy", NULL);
    expect(dpopkit_live_handles() == 0, "no live handle left", NULL);
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}

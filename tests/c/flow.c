/* The sample flow through the C ABI, as a C user writes it.
 * Usage: flow KEY_FILE KEY_PASSWORD TOKEN_URL API_URL SESSION_LOG
 * Prints "status: N" and the body of each call; exits 0 only if every check passes. */
#include <stdio.h>
#include <string.h>
#include "dpopkit.h"

static int failures = 0;
#define CHECK(cond, what)                                                        \
    do {                                                                         \
        if (!(cond)) {                                                           \
            char *err_ = dpopkit_last_error_text(0);                             \
            fprintf(stderr, "FAILED: %s (last error: %s)\n", what, err_ ? err_ : "?"); \
            dpopkit_string_free(err_);                                           \
            failures++;                                                          \
        }                                                                        \
    } while (0)

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: flow KEY_FILE KEY_PASSWORD TOKEN_URL API_URL SESSION_LOG\n");
        return 2;
    }
    char *version = dpopkit_version();
    CHECK(version != NULL && strcmp(version, DPOPKIT_VERSION) == 0, "version matches header");
    dpopkit_string_free(version);

    int64_t key = dpopkit_key_new();
    CHECK(key > 0, "key_new");
    CHECK(dpopkit_key_load_any_format_file(key, argv[1], argv[2]) == 1, "load key");

    int64_t json = dpopkit_json_new();
    CHECK(json > 0, "json_new");
    CHECK(dpopkit_json_update_string(json, "client_secret", "secret") == 1, "update client_secret");
    CHECK(dpopkit_json_update_string(json, "client_id", "m2m.dpop") == 1, "update client_id");
    CHECK(dpopkit_json_update_string(json, "token_endpoint", argv[3]) == 1, "update token_endpoint");
    CHECK(dpopkit_json_update_string(json, "scope", "api") == 1, "update scope");

    int64_t http = dpopkit_http_new();
    CHECK(http > 0, "http_new");
    CHECK(dpopkit_http_set_dpop_key(http, key) == 1, "set_dpop_key");
    char *auth = dpopkit_json_emit(json);
    CHECK(auth != NULL, "emit");
    CHECK(dpopkit_http_set_auth_token(http, auth) == 1, "set_auth_token");
    dpopkit_string_free(auth);
    CHECK(dpopkit_http_set_session_log_filename(http, argv[5]) == 1, "session log");

    for (int i = 0; i < 3; i++) {
        char *resp = dpopkit_http_quick_get_str(http, argv[4]);
        int status = dpopkit_http_last_status(http);
        printf("status: %d\n", status);
        if (resp) printf("%s\n", resp);
        CHECK(resp != NULL && status == 200, "quick_get_str gets 200");
        CHECK(dpopkit_http_last_method_success(http) == 1, "last_method_success");
        CHECK(resp != NULL && strstr(resp, "m2m.dpop") != NULL, "claims name the client");
        dpopkit_string_free(resp);
    }

    /* Misuse is an error, never a crash. */
    CHECK(dpopkit_http_quick_get_str(key, argv[4]) == NULL, "wrong handle type fails");
    CHECK(dpopkit_last_error_code(0) == DPOPKIT_RESULT_WRONG_HANDLE_TYPE, "WRONG_HANDLE_TYPE");
    CHECK(dpopkit_http_quick_get_str(http, NULL) == NULL, "NULL url fails");
    CHECK(dpopkit_last_error_code(http) == DPOPKIT_RESULT_NULL_ARGUMENT, "NULL_ARGUMENT");
    CHECK(dpopkit_http_quick_get_str(http, "ftp://example/") == NULL, "ftp url fails");
    CHECK(dpopkit_last_error_code(http) == DPOPKIT_RESULT_INVALID_ARGUMENT, "INVALID_ARGUMENT");
    CHECK(dpopkit_http_last_method_success(http) == 0, "last_method_success after failure");

    CHECK(dpopkit_destroy(json) == 1, "destroy json");
    CHECK(dpopkit_destroy(json) == 0, "double destroy fails");
    CHECK(dpopkit_last_error_code(0) == DPOPKIT_RESULT_INVALID_HANDLE, "INVALID_HANDLE");
    CHECK(dpopkit_json_emit(json) == NULL, "stale handle fails");
    CHECK(dpopkit_destroy(key) == 1, "destroy key");
    /* The Http keeps its own reference to the key. */
    char *again = dpopkit_http_quick_get_str(http, argv[4]);
    CHECK(again != NULL, "http still works after its key object is destroyed");
    dpopkit_string_free(again);
    CHECK(dpopkit_destroy(http) == 1, "destroy http");

    printf("%d passed, %d failed\n", failures ? 0 : 1, failures ? 1 : 0);
    return failures == 0 ? 0 : 1;
}

/* One worker of a fleet (tests/servers/shared_token_cache.rs): a process that makes CALLS requests with the
 * sample client, sharing its access token through CACHE_DIR ("-": no shared cache).
 * Usage: fleet KEY_FILE TOKEN_URL API_URL CACHE_DIR CALLS
 * It waits for a line on stdin before the first call, so that the test can start all
 * workers at the same moment. Prints "status: N" per call; exits 0 only if every call
 * got 200. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dpopkit.h"

static int fail(const char *what) {
    char *err = dpopkit_last_error_text(0);
    fprintf(stderr, "FAILED: %s (last error: %s)\n", what, err ? err : "?");
    dpopkit_string_free(err);
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: fleet KEY_FILE TOKEN_URL API_URL CACHE_DIR CALLS\n");
        return 2;
    }
    int calls = atoi(argv[5]);
    int64_t key = dpopkit_key_new();
    if (key <= 0 || dpopkit_key_load_any_format_file(key, argv[1], "") != 1) return fail("load key");
    int64_t json = dpopkit_json_new();
    if (json <= 0) return fail("json_new");
    if (dpopkit_json_update_string(json, "client_secret", "secret") != 1 ||
        dpopkit_json_update_string(json, "client_id", "m2m.dpop") != 1 ||
        dpopkit_json_update_string(json, "token_endpoint", argv[2]) != 1 ||
        dpopkit_json_update_string(json, "scope", "api") != 1)
        return fail("json_update_string");
    if (strcmp(argv[4], "-") != 0 && dpopkit_json_update_string(json, "token_cache_dir", argv[4]) != 1)
        return fail("json_update_string token_cache_dir");
    int64_t http = dpopkit_http_new();
    if (http <= 0 || dpopkit_http_set_dpop_key(http, key) != 1) return fail("set_dpop_key");
    char *auth = dpopkit_json_emit(json);
    if (auth == NULL) return fail("emit");
    int ok = dpopkit_http_set_auth_token(http, auth);
    dpopkit_string_free(auth);
    if (ok != 1) {
        char *err = dpopkit_last_error_text(http);
        fprintf(stderr, "set_auth_token: %s\n", err ? err : "?");
        dpopkit_string_free(err);
        return 3;
    }

    char line[16];
    if (fgets(line, sizeof line, stdin) == NULL) return fail("waiting for the start line");

    int failures = 0;
    for (int i = 0; i < calls; i++) {
        char *resp = dpopkit_http_quick_get_str(http, argv[3]);
        int status = dpopkit_http_last_status(http);
        printf("status: %d\n", status);
        if (resp == NULL || status != 200) {
            char *err = dpopkit_last_error_text(http);
            fprintf(stderr, "call %d: %s\n", i, err ? err : "?");
            dpopkit_string_free(err);
            failures++;
        }
        dpopkit_string_free(resp);
    }
    dpopkit_destroy(json);
    dpopkit_destroy(key);
    dpopkit_destroy(http);
    return failures == 0 ? 0 : 1;
}

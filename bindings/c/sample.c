/* dpopkit sample in C: client_credentials + DPoP, then one GET to a protected API.
 *
 * Usage: sample KEY_FILE TOKEN_ENDPOINT API_URL [KEY_PASSWORD [SESSION_LOG]]
 *
 * The client id and secret come from DPOPKIT_CLIENT_ID / DPOPKIT_CLIENT_SECRET (and the
 * scope from DPOPKIT_SCOPE). Without them the sample uses the demo client of the test
 * peers (m2m.dpop / secret, scope api): never hard-code a real secret.
 *
 * Prints "status: N" and the response body; exits 0 on a 2xx, 1 otherwise.
 * Build: cc -std=c11 sample.c $(pkg-config --cflags --libs dpopkit) -o sample */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "dpopkit.h"

/* Prints the last error of `handle` (0: this thread's latest call) and its code. */
static void print_error(const char *what, int64_t handle) {
    char *text = dpopkit_last_error_text(handle);
    fprintf(stderr, "%s failed (code %u): %s\n", what, (unsigned)dpopkit_last_error_code(handle),
            text ? text : "(no text)");
    dpopkit_string_free(text);
}

static const char *env_or(const char *name, const char *fallback) {
    const char *v = getenv(name);
    return (v != NULL && v[0] != '\0') ? v : fallback;
}

int main(int argc, char **argv) {
    if (argc < 4 || argc > 6) {
        fprintf(stderr, "usage: %s KEY_FILE TOKEN_ENDPOINT API_URL [KEY_PASSWORD [SESSION_LOG]]\n",
                argc > 0 ? argv[0] : "sample");
        return 2;
    }
    const char *key_path = argv[1];
    const char *token_endpoint = argv[2];
    const char *api_url = argv[3];
    const char *password = argc > 4 ? argv[4] : NULL;
    const char *session_log = argc > 5 ? argv[5] : NULL;

    int rc = 1;
    int64_t key = 0, json = 0, http = 0;
    char *auth = NULL, *body = NULL;

    /* 1. The DPoP key: any format (PEM/DER SEC1, PKCS#8, encrypted PKCS#8, JWK). */
    key = dpopkit_key_new();
    if (key == 0) { print_error("dpopkit_key_new", 0); goto cleanup; }
    if (!dpopkit_key_load_any_format_file(key, key_path, password)) {
        print_error("loading the key", key);
        goto cleanup;
    }

    /* 2. The AuthToken description, built as a JSON object. */
    json = dpopkit_json_new();
    if (json == 0) { print_error("dpopkit_json_new", 0); goto cleanup; }
    if (!dpopkit_json_update_string(json, "client_secret", env_or("DPOPKIT_CLIENT_SECRET", "secret")) ||
        !dpopkit_json_update_string(json, "client_id", env_or("DPOPKIT_CLIENT_ID", "m2m.dpop")) ||
        !dpopkit_json_update_string(json, "token_endpoint", token_endpoint) ||
        !dpopkit_json_update_string(json, "scope", env_or("DPOPKIT_SCOPE", "api"))) {
        print_error("building the AuthToken JSON", json);
        goto cleanup;
    }

    /* 3. The Http object: DPoP key, AuthToken, optional session log (secrets masked). */
    http = dpopkit_http_new();
    if (http == 0) { print_error("dpopkit_http_new", 0); goto cleanup; }
    if (!dpopkit_http_set_dpop_key(http, key)) { print_error("setting the DPoP key", http); goto cleanup; }
    auth = dpopkit_json_emit(json);
    if (auth == NULL) { print_error("emitting the AuthToken JSON", json); goto cleanup; }
    if (!dpopkit_http_set_auth_token(http, auth)) { print_error("setting the AuthToken", http); goto cleanup; }
    if (session_log != NULL && session_log[0] != '\0' &&
        !dpopkit_http_set_session_log_filename(http, session_log)) {
        print_error("opening the session log", http);
        goto cleanup;
    }

    /* 4. The call: fetches the token (DPoP-bound, nonces handled), then GETs the API. */
    body = dpopkit_http_quick_get_str(http, api_url);
    printf("status: %d\n", dpopkit_http_last_status(http));
    if (body == NULL) {
        print_error("GET", http);
        char *error_doc = dpopkit_http_last_response_body(http);
        if (error_doc != NULL && error_doc[0] != '\0') fprintf(stderr, "response body: %s\n", error_doc);
        dpopkit_string_free(error_doc);
        goto cleanup;
    }
    printf("%s\n", body);
    rc = 0;

cleanup:
    /* Every returned string is freed with dpopkit_string_free (NULL is fine), every handle
     * with dpopkit_destroy (0 is harmless: it only fails). */
    dpopkit_string_free(body);
    dpopkit_string_free(auth);
    if (http) dpopkit_destroy(http);
    if (json) dpopkit_destroy(json);
    if (key) dpopkit_destroy(key);
    return rc;
}

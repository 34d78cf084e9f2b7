/* The porting flow of issue 12 through the C ABI, as a C user writes it: custom request
 * headers, a POST of JSON with an Idempotency-Key (201 + Location), a binary download of
 * the bytes 0..255, status text and header lookup, an empty body.
 * Usage: porting TOKEN_URL RS_ORIGIN
 * Prints one line per step; exits 0 only if every check passes. */
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
    if (argc != 3) {
        fprintf(stderr, "usage: porting TOKEN_URL RS_ORIGIN\n");
        return 2;
    }
    char url[512], auth[1024];
    const char *rs = argv[2];
    int64_t key = dpopkit_key_new();
    CHECK(dpopkit_key_generate(key) == 1, "generate key");
    int64_t http = dpopkit_http_new();
    CHECK(dpopkit_http_set_dpop_key(http, key) == 1, "set_dpop_key");
    snprintf(auth, sizeof auth,
             "{\"client_id\":\"m2m.dpop\",\"client_secret\":\"secret\",\"token_endpoint\":\"%s\",\"scope\":\"api\"}", argv[1]);
    CHECK(dpopkit_http_set_auth_token(http, auth) == 1, "set_auth_token");

    /* Headers sent on every API request from now on. */
    CHECK(dpopkit_http_set_request_header(http, "Accept", "application/json") == 1, "Accept");
    CHECK(dpopkit_http_set_request_header(http, "X-Correlation-Id", "c-from-c") == 1, "X-Correlation-Id");
    CHECK(dpopkit_http_set_request_header(http, "Authorization", "Bearer x") == 0, "Authorization is refused");
    CHECK(dpopkit_last_error_code(http) == DPOPKIT_RESULT_INVALID_ARGUMENT, "refused with INVALID_ARGUMENT");

    snprintf(url, sizeof url, "%s/api/echo-headers", rs);
    char *echo = dpopkit_http_quick_get_str(http, url);
    CHECK(echo != NULL, "echo headers");
    CHECK(echo && strstr(echo, "\"accept\":\"application/json\"") != NULL, "Accept arrived");
    CHECK(echo && strstr(echo, "\"x-correlation-id\":\"c-from-c\"") != NULL, "correlation id arrived");
    printf("echo: %d\n", dpopkit_http_last_status(http));
    dpopkit_string_free(echo);

    /* POST JSON with an Idempotency-Key: 201 Created and a Location. */
    CHECK(dpopkit_http_set_request_header(http, "Idempotency-Key", "idem-c-1") == 1, "Idempotency-Key");
    snprintf(url, sizeof url, "%s/api/items", rs);
    const char *json = "{\"name\":\"widget\"}";
    size_t n = 0;
    uint8_t *created = dpopkit_http_quick_request_bytes(http, "POST", url, "application/json",
                                                        (const uint8_t *)json, strlen(json), &n);
    CHECK(created != NULL && n > 0, "POST");
    CHECK(dpopkit_http_last_status(http) == 201, "201");
    char *status_text = dpopkit_http_last_status_text(http);
    CHECK(status_text && strcmp(status_text, "Created") == 0, "status text Created");
    char *location = dpopkit_http_last_response_header_value(http, "location");
    CHECK(location && strncmp(location, "/api/items/", 11) == 0, "Location");
    char *missing = dpopkit_http_last_response_header_value(http, "X-Nope");
    CHECK(missing == NULL && dpopkit_last_error_code(http) == DPOPKIT_RESULT_NOT_FOUND, "absent header: NULL + NOT_FOUND");
    printf("created: %d %s location %s\n", dpopkit_http_last_status(http), status_text ? status_text : "?", location ? location : "?");
    dpopkit_string_free(status_text);
    dpopkit_string_free(location);
    dpopkit_bytes_free(created);
    CHECK(dpopkit_http_remove_request_header(http, "Idempotency-Key") == 1, "remove Idempotency-Key");

    /* Binary download: every byte value. */
    snprintf(url, sizeof url, "%s/api/bytes", rs);
    n = 12345;
    uint8_t *bytes = dpopkit_http_quick_get_bytes(http, url, &n);
    CHECK(bytes != NULL && n == 256, "256 bytes");
    int all = bytes != NULL && n == 256;
    for (size_t i = 0; all && i < 256; i++) all = bytes[i] == (uint8_t)i;
    CHECK(all, "bytes 0..255 in order");
    printf("bytes: %zu\n", n);
    dpopkit_bytes_free(bytes);

    /* An empty body is a valid non-NULL result of length 0. */
    snprintf(url, sizeof url, "%s/api/empty", rs);
    n = 12345;
    uint8_t *empty = dpopkit_http_quick_get_bytes(http, url, &n);
    CHECK(empty != NULL && n == 0 && dpopkit_http_last_status(http) == 204, "empty body");
    dpopkit_bytes_free(empty);

    CHECK(dpopkit_http_clear_request_headers(http) == 1, "clear");
    CHECK(dpopkit_destroy(http) == 1 && dpopkit_destroy(key) == 1, "destroy");
    printf("%s\n", failures == 0 ? "porting: ok" : "porting: FAILED");
    return failures == 0 ? 0 : 1;
}

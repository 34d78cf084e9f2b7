/* RSA and Ed25519 keys through the C ABI (issue 23): each key is loaded from its file (or
 * generated), used against the peers by discovery (the issuer's metadata says which
 * algorithms it takes), and one line reports what happened.
 * Usage: algs ISSUER API_URL KEY PASSWORD [KEY PASSWORD ...]
 *   KEY is a key file or "generate:ALG" (dpopkit_key_generate_alg); PASSWORD "-" for none.
 * Prints per key: "KEY load=0|1 alg=ALG status=N code=N" and, on failure, "error: TEXT".
 * Exits 0 when the program ran (the caller judges the lines), 2 on bad usage. */
#include <stdio.h>
#include <string.h>
#include "dpopkit.h"

int main(int argc, char **argv) {
    if (argc < 5 || (argc - 3) % 2 != 0) {
        fprintf(stderr, "usage: algs ISSUER API_URL KEY PASSWORD [KEY PASSWORD ...]\n");
        return 2;
    }
    for (int i = 3; i + 1 < argc; i += 2) {
        const char *file = argv[i];
        const char *password = strcmp(argv[i + 1], "-") == 0 ? NULL : argv[i + 1];
        int64_t key = dpopkit_key_new();
        int loaded = strncmp(file, "generate:", 9) == 0 ? dpopkit_key_generate_alg(key, file + 9)
                                                         : dpopkit_key_load_any_format_file(key, file, password);
        char *alg = loaded ? dpopkit_key_get_alg(key) : NULL;
        int status = 0;
        int code = dpopkit_last_error_code(key);
        char *error = NULL;
        if (loaded) {
            int64_t json = dpopkit_json_new();
            dpopkit_json_update_string(json, "client_secret", "secret");
            dpopkit_json_update_string(json, "client_id", "m2m.dpop");
            dpopkit_json_update_string(json, "issuer", argv[1]);
            dpopkit_json_update_string(json, "scope", "api");
            char *auth = dpopkit_json_emit(json);
            int64_t http = dpopkit_http_new();
            dpopkit_http_set_dpop_key(http, key);
            dpopkit_http_set_auth_token(http, auth);
            dpopkit_string_free(auth);
            char *resp = dpopkit_http_quick_get_str(http, argv[2]);
            status = dpopkit_http_last_status(http);
            code = dpopkit_last_error_code(http);
            if (resp == NULL) error = dpopkit_last_error_text(http);
            dpopkit_string_free(resp);
            dpopkit_destroy(http);
            dpopkit_destroy(json);
        } else {
            error = dpopkit_last_error_text(key);
        }
        printf("%s load=%d alg=%s status=%d code=%d\n", file, loaded, alg ? alg : "-", status, code);
        if (error) printf("error: %s\n", error);
        dpopkit_string_free(alg);
        dpopkit_string_free(error);
        dpopkit_destroy(key);
    }
    return 0;
}

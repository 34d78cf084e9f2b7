/* Windows-only checks of the C ABI, built with mingw and run under Wine by
 * scripts/windows.sh test (tests/c/flow.c, porting.c and misuse.c run there unchanged).
 *
 *   wintest tls TOKEN_URL API CA_FILE       https trusting only CA_FILE: 200s; the bundled
 *                                           roots refuse the test CA with DPOPKIT_RESULT_TLS
 *   wintest ostrust TOKEN_URL API           https with the OS trust store (CryptoAPI through
 *                                           rustls-platform-verifier): a CA the store does
 *                                           not hold is refused with DPOPKIT_RESULT_TLS
 *   wintest deadline URL                    a server that never answers: the call fails with
 *                                           DPOPKIT_RESULT_TIMEOUT within its 1.5 s deadline
 *   wintest paths BASE TOKEN_URL API        key, CA file, session log and token cache dir
 *                                           under BASE\Zoë\日本 (UTF-8 through the C ABI)
 *   wintest logrefuse DIR                   the session log refuses devices, a pipe and a
 *                                           hard-linked file (DIR\hardlink.log); a new log
 *                                           (DIR\fresh.log) gives Everyone, Users and
 *                                           Authenticated Users nothing
 *
 * Prints one line per check; exits 0 only if every check passes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <windows.h>
#include <sddl.h>
#include <aclapi.h>
#include "dpopkit.h"

static int failures = 0;
#define CHECK(cond, what)                                                                  \
    do {                                                                                   \
        if (cond) {                                                                        \
            printf("ok: %s\n", what);                                                      \
        } else {                                                                           \
            char *err_ = dpopkit_last_error_text(0);                                       \
            fprintf(stderr, "FAILED: %s (code %u, last error: %s)\n", what,                \
                    dpopkit_last_error_code(0), err_ ? err_ : "?");                         \
            dpopkit_string_free(err_);                                                     \
            failures++;                                                                    \
        }                                                                                  \
    } while (0)

static int64_t client(const char *token_url, const char *key_file, const char *key_password) {
    char auth[1024];
    int64_t key = dpopkit_key_new();
    if (key_file) {
        CHECK(dpopkit_key_load_any_format_file(key, key_file, key_password) == 1, "load key file");
    } else {
        CHECK(dpopkit_key_generate(key) == 1, "generate key");
    }
    int64_t http = dpopkit_http_new();
    CHECK(dpopkit_http_set_dpop_key(http, key) == 1, "set_dpop_key");
    CHECK(dpopkit_destroy(key) == 1, "destroy key (the Http keeps its own reference)");
    snprintf(auth, sizeof auth,
             "{\"client_id\":\"m2m.dpop\",\"client_secret\":\"secret\",\"token_endpoint\":\"%s\",\"scope\":\"api\"}", token_url);
    CHECK(dpopkit_http_set_auth_token(http, auth) == 1, "set_auth_token");
    /* No proxy from the environment: the peers are on 127.0.0.1. */
    CHECK(dpopkit_http_set_proxy(http, "") == 1, "no proxy");
    return http;
}

/* n GETs of api, each 200 with the client's claims. */
static void get_n(int64_t http, const char *api, int n, const char *what) {
    for (int i = 0; i < n; i++) {
        char *body = dpopkit_http_quick_get_str(http, api);
        char line[256];
        snprintf(line, sizeof line, "%s: GET %d is 200 with the client's claims", what, i + 1);
        CHECK(body != NULL && dpopkit_http_last_status(http) == 200 && strstr(body, "m2m.dpop") != NULL, line);
        dpopkit_string_free(body);
    }
}

static int cmd_tls(const char *token_url, const char *api, const char *ca) {
    int64_t http = client(token_url, NULL, NULL);
    /* Bundled Mozilla roots (the default): the test CA is not among them. */
    char *body = dpopkit_http_quick_get_str(http, api);
    CHECK(body == NULL && dpopkit_last_error_code(http) == DPOPKIT_RESULT_TLS, "bundled roots refuse the test CA with DPOPKIT_RESULT_TLS");
    dpopkit_string_free(body);
    CHECK(dpopkit_http_set_ca_file(http, ca) == 1, "set_ca_file");
    get_n(http, api, 2, "CA file");
    CHECK(dpopkit_http_set_ca_file(http, "Z:\\nonexistent\\dpopkit-ca.pem") == 0 && dpopkit_last_error_code(http) != DPOPKIT_RESULT_OK,
          "a missing CA file is refused");
    CHECK(dpopkit_destroy(http) == 1, "destroy http");
    return failures == 0 ? 0 : 1;
}

static int cmd_ostrust(const char *token_url, const char *api) {
    int64_t http = client(token_url, NULL, NULL);
    CHECK(dpopkit_http_set_use_os_trust_store(http, 1) == 1, "set_use_os_trust_store(1)");
    char *body = dpopkit_http_quick_get_str(http, api);
    CHECK(body == NULL && dpopkit_last_error_code(http) == DPOPKIT_RESULT_TLS, "OS trust store without the test CA: DPOPKIT_RESULT_TLS");
    dpopkit_string_free(body);
    /* Back to the bundled roots. */
    CHECK(dpopkit_http_set_use_os_trust_store(http, 0) == 1, "set_use_os_trust_store(0)");
    CHECK(dpopkit_destroy(http) == 1, "destroy http");
    return failures == 0 ? 0 : 1;
}

static int cmd_deadline(const char *url) {
    int64_t http = dpopkit_http_new();
    CHECK(dpopkit_http_set_proxy(http, "") == 1, "no proxy");
    CHECK(dpopkit_http_set_timeouts(http, 1000, 1500) == 1, "set_timeouts 1000 1500");
    ULONGLONG start = GetTickCount64();
    char *body = dpopkit_http_quick_get_str(http, url);
    ULONGLONG took = GetTickCount64() - start;
    printf("hanging server: call took %llu ms\n", (unsigned long long)took);
    CHECK(body == NULL && dpopkit_last_error_code(http) == DPOPKIT_RESULT_TIMEOUT, "a server that never answers: DPOPKIT_RESULT_TIMEOUT");
    CHECK(took >= 1000 && took < 3000, "the call ends at its 1.5 s deadline (1.0 s .. 3.0 s)");
    dpopkit_string_free(body);
    CHECK(dpopkit_destroy(http) == 1, "destroy http");
    return failures == 0 ? 0 : 1;
}

/* BASE\Zoë\日本 in UTF-8: the C ABI takes UTF-8; the library converts to UTF-16. */
#define NON_ASCII "\\Zo\xc3\xab\\\xe6\x97\xa5\xe6\x9c\xac"

static int cmd_paths(const char *base, const char *token_url, const char *api) {
    char key[1024], ca[1024], log[1024];
    snprintf(key, sizeof key, "%s" NON_ASCII "\\ec_pkcs8_enc.pem", base);
    snprintf(ca, sizeof ca, "%s" NON_ASCII "\\ca.pem", base);
    snprintf(log, sizeof log, "%s" NON_ASCII "\\session.log", base);
    int64_t http = client(token_url, key, "test-password");
    CHECK(dpopkit_http_set_ca_file(http, ca) == 1, "CA file under Zo\xc3\xab\\\xe6\x97\xa5\xe6\x9c\xac");
    CHECK(dpopkit_http_set_session_log_filename(http, log) == 1, "session log under Zo\xc3\xab\\\xe6\x97\xa5\xe6\x9c\xac");
    get_n(http, api, 2, "non-ASCII paths");
    CHECK(dpopkit_http_set_session_log_filename(http, NULL) == 1, "stop logging");
    CHECK(dpopkit_destroy(http) == 1, "destroy http");
    /* The shared token cache in BASE\Zoë\日本\cache (made by the script, this user's only). */
    char cache[1024], auth[2048];
    snprintf(cache, sizeof cache, "%s" NON_ASCII "\\cache", base);
    int64_t json = dpopkit_json_new();
    CHECK(dpopkit_json_update_string(json, "client_id", "m2m.dpop") == 1 && dpopkit_json_update_string(json, "client_secret", "secret") == 1 &&
          dpopkit_json_update_string(json, "token_endpoint", token_url) == 1 && dpopkit_json_update_string(json, "scope", "api") == 1 &&
          dpopkit_json_update_string(json, "token_cache_dir", cache) == 1, "AuthToken with token_cache_dir");
    char *emitted = dpopkit_json_emit(json);
    snprintf(auth, sizeof auth, "%s", emitted ? emitted : "");
    dpopkit_string_free(emitted);
    CHECK(dpopkit_destroy(json) == 1, "destroy json");
    /* Forget this process's token, so that this client fetches one and writes the record. */
    CHECK(dpopkit_token_cache_clear() == 1, "token_cache_clear");
    int64_t cached = client(token_url, key, "test-password");
    CHECK(dpopkit_http_set_auth_token(cached, auth) == 1, "token_cache_dir under Zo\xc3\xab\\\xe6\x97\xa5\xe6\x9c\xac is accepted");
    CHECK(dpopkit_http_set_ca_file(cached, ca) == 1, "CA file");
    get_n(cached, api, 1, "token cache under non-ASCII path");
    CHECK(dpopkit_destroy(cached) == 1, "destroy http");
    /* The log file is where the UTF-8 name says, read back through the wide API. */
    wchar_t wlog[1024];
    CHECK(MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, log, -1, wlog, 1024) > 0, "UTF-8 to UTF-16");
    HANDLE h = CreateFileW(wlog, GENERIC_READ, FILE_SHARE_READ, NULL, OPEN_EXISTING, 0, NULL);
    CHECK(h != INVALID_HANDLE_VALUE, "the session log exists under its UTF-16 name");
    if (h != INVALID_HANDLE_VALUE) {
        LARGE_INTEGER size;
        CHECK(GetFileSizeEx(h, &size) && size.QuadPart > 0, "the session log has content");
        CloseHandle(h);
    }
    return failures == 0 ? 0 : 1;
}

/* set_session_log_filename(path) fails with FILE_IO and a text that contains `says`. */
static void log_refused(int64_t http, const char *path, const char *says) {
    char what[512];
    int rc = dpopkit_http_set_session_log_filename(http, path);
    uint32_t code = dpopkit_last_error_code(http);
    char *text = dpopkit_last_error_text(http);
    printf("%s -> %d, code %u: %s\n", path, rc, code, text ? text : "NULL");
    snprintf(what, sizeof what, "session log '%s' refused with FILE_IO, the text says '%s'", path, says);
    CHECK(rc == 0 && code == DPOPKIT_RESULT_FILE_IO && text && strstr(text, says) != NULL, what);
    dpopkit_string_free(text);
}

static int cmd_logrefuse(const char *dir) {
    char path[1024];
    int64_t http = dpopkit_http_new();
    log_refused(http, "NUL", "not a file on disk");
    log_refused(http, "CON", "not a file on disk");
    log_refused(http, "COM1", "not a file on disk");
    log_refused(http, "nul.txt", "not a file on disk");
    log_refused(http, "C:\\logs\\CON:", "not a file on disk");
    log_refused(http, "\\\\.\\NUL", "not a file on disk");
    log_refused(http, "\\\\?\\GLOBALROOT\\Device\\Null", "not a file on disk");
    /* A drive path that is a device all the same (Wine's Z: is /): the GetFileType check. */
    log_refused(http, "Z:\\dev\\null", "not a file on disk");
    /* A pipe with a server behind it: opening it would connect. */
    char pipe[128];
    snprintf(pipe, sizeof pipe, "\\\\.\\pipe\\dpopkit-test-%lu", (unsigned long)GetCurrentProcessId());
    HANDLE server = CreateNamedPipeA(pipe, PIPE_ACCESS_DUPLEX, PIPE_TYPE_BYTE, 4, 4096, 4096, 0, NULL);
    CHECK(server != INVALID_HANDLE_VALUE, "CreateNamedPipe");
    log_refused(http, pipe, "not a file on disk");
    CloseHandle(server);
    snprintf(path, sizeof path, "%s\\hardlink.log", dir);
    log_refused(http, path, "hard links");
    /* A new log: a protected DACL with the owner, SYSTEM and Administrators only. */
    snprintf(path, sizeof path, "%s\\fresh.log", dir);
    CHECK(dpopkit_http_set_session_log_filename(http, path) == 1, "a new session log opens");
    CHECK(dpopkit_http_set_session_log_filename(http, NULL) == 1, "stop logging");
    PSECURITY_DESCRIPTOR sd = NULL;
    PACL dacl = NULL;
    DWORD rc = GetNamedSecurityInfoA(path, SE_FILE_OBJECT, DACL_SECURITY_INFORMATION, NULL, NULL, &dacl, NULL, &sd);
    CHECK(rc == ERROR_SUCCESS, "GetNamedSecurityInfo of the new log");
    LPSTR sddl = NULL;
    if (rc == ERROR_SUCCESS) {
        CHECK(ConvertSecurityDescriptorToStringSecurityDescriptorA(sd, SDDL_REVISION_1, DACL_SECURITY_INFORMATION, &sddl, NULL),
              "DACL as SDDL");
        printf("new log's DACL: %s\n", sddl ? sddl : "?");
        CHECK(strstr(sddl, ";WD)") == NULL && strstr(sddl, ";AU)") == NULL && strstr(sddl, ";BU)") == NULL,
              "nothing for Everyone, Authenticated Users or Users");
        LocalFree(sddl);
        LocalFree(sd);
    }
    CHECK(dpopkit_destroy(http) == 1, "destroy http");
    /* The control: a file created without a security descriptor (as before dpopkit set
     * one); scripts/windows.sh compares the Unix modes Wine derives from the two DACLs. */
    snprintf(path, sizeof path, "%s\\default.log", dir);
    HANDLE h = CreateFileA(path, GENERIC_WRITE, 0, NULL, CREATE_ALWAYS, FILE_ATTRIBUTE_NORMAL, NULL);
    CHECK(h != INVALID_HANDLE_VALUE, "the control file");
    if (h != INVALID_HANDLE_VALUE) CloseHandle(h);
    return failures == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
    int rc = 2;
    if (argc == 5 && strcmp(argv[1], "tls") == 0) rc = cmd_tls(argv[2], argv[3], argv[4]);
    else if (argc == 4 && strcmp(argv[1], "ostrust") == 0) rc = cmd_ostrust(argv[2], argv[3]);
    else if (argc == 3 && strcmp(argv[1], "deadline") == 0) rc = cmd_deadline(argv[2]);
    else if (argc == 5 && strcmp(argv[1], "paths") == 0) rc = cmd_paths(argv[2], argv[3], argv[4]);
    else if (argc == 3 && strcmp(argv[1], "logrefuse") == 0) rc = cmd_logrefuse(argv[2]);
    else fprintf(stderr, "usage: wintest tls|ostrust|deadline|paths|logrefuse ...\n");
    printf("%s\n", rc == 0 ? "wintest: ok" : "wintest: FAILED");
    return rc;
}

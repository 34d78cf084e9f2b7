// The sample flow through bindings/cpp/dpopkit.hpp, plus error cases and move semantics.
// Usage: sample KEY_FILE TOKEN_ENDPOINT API_URL [KEY_PASSWORD [SESSION_LOG]]
// Prints "status: N" and the body of the call, then one line per failed check;
// exits 0 only if every check passes.
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <utility>

#include "dpopkit.hpp"

static int failures = 0;

static void check(bool cond, const char* what) {
    if (!cond) {
        std::cerr << "FAILED: " << what << "\n";
        failures++;
    }
}

// Runs `f`, which must throw dpopkit::error with `code`; returns the error's text.
template <typename F>
static std::string expect_error(dpopkit::result code, const char* what, F f) {
    try {
        f();
        std::cerr << "FAILED: " << what << ": no exception\n";
        failures++;
    } catch (const dpopkit::error& e) {
        if (e.code() != code) {
            std::cerr << "FAILED: " << what << ": code " << e.code() << " (" << e.what() << "), expected " << code
                      << "\n";
            failures++;
        }
        return e.text();
    }
    return "";
}

static std::string origin_of(const std::string& url) {
    auto scheme = url.find("://");
    auto slash = url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
    return slash == std::string::npos ? url : url.substr(0, slash);
}

static void run(int argc, char** argv) {
    const std::string key_path = argv[1], token_endpoint = argv[2], api = argv[3];
    const std::string password = argc > 4 ? argv[4] : "";
    const std::string session_log = argc > 5 ? argv[5] : "";

    check(dpopkit::version() == DPOPKIT_VERSION, "version matches the header");

    // The sample flow.
    dpopkit::PrivateKey key = dpopkit::PrivateKey::from_file(key_path, password);
    dpopkit::JsonObject json;
    json.update_string("client_secret", "secret")
        .update_string("client_id", "m2m.dpop")
        .update_string("token_endpoint", token_endpoint)
        .update_string("scope", "api");
    check(json.string_of("client_id") == "m2m.dpop", "string_of");
    check(!json.find_string("audience").has_value(), "find_string of a missing member");

    dpopkit::Http http;
    http.set_dpop_key(key);
    http.set_auth_token(json);
    if (!session_log.empty()) http.set_session_log_filename(session_log);
    http.set_timeouts(5000, 20000);
    http.set_max_response_size(1 << 20);

    std::string body = http.quick_get_str(api);
    std::cout << "status: " << http.last_status() << "\n" << body << "\n";
    check(http.last_status() == 200, "status 200");
    check(http.last_method_success(), "last_method_success");
    check(body.find("m2m.dpop") != std::string::npos, "claims name the client");
    check(http.last_response_body() == body, "last_response_body");
    check(http.last_response_header().find("Content-Type:") != std::string::npos, "last_response_header");
    check(http.last_error_code() == DPOPKIT_RESULT_OK && http.last_error_text().empty(), "no error after success");

    std::string posted = http.quick_request_str("POST", api, "application/json", "{\"hello\":\"world\"}");
    check(posted.find("request_body") != std::string::npos, "POST echoes the request body");

    // Key exports.
    check(key.get_jwk_thumbprint().size() == 43, "jkt is 43 base64url characters");
    check(key.get_public_jwk().find("\"d\"") == std::string::npos, "public JWK has no d");
    check(key.get_jwk().find("\"d\"") != std::string::npos, "private JWK has d");
    check(key.get_pkcs8_pem().rfind("-----BEGIN PRIVATE KEY-----", 0) == 0, "PKCS#8 PEM");
    dpopkit::PrivateKey copy;
    copy.load_any_format(key.get_jwk());
    check(copy.get_jwk_thumbprint() == key.get_jwk_thumbprint(), "load_any_format of the JWK");

    // Errors are exceptions with the C result code.
    std::string text = expect_error(DPOPKIT_RESULT_FILE_IO, "missing key file",
                                    [] { dpopkit::PrivateKey::from_file("/nonexistent/dpopkit-key.pem"); });
    check(text.find("/nonexistent/dpopkit-key.pem") != std::string::npos, "error text names the file");
    expect_error(DPOPKIT_RESULT_KEY_FORMAT, "garbage key", [] {
        dpopkit::PrivateKey k;
        k.load_any_format("not a key");
    });
    expect_error(DPOPKIT_RESULT_NO_KEY, "empty key object", [] { dpopkit::PrivateKey().get_jwk_thumbprint(); });
    expect_error(DPOPKIT_RESULT_JSON, "missing member", [&] { json.string_of("nope"); });
    expect_error(DPOPKIT_RESULT_JSON, "not a JSON object", [&] { json.load("[1,2]"); });
    check(json.string_of("client_id") == "m2m.dpop", "a failed load leaves the object unchanged");
    expect_error(DPOPKIT_RESULT_AUTH_TOKEN, "AuthToken without client_id",
                 [&] { http.set_auth_token("{\"client_secret\":\"x\"}"); });
    expect_error(DPOPKIT_RESULT_INVALID_ARGUMENT, "ftp URL", [&] { http.quick_get_str("ftp://example.com/"); });
    check(!http.last_method_success(), "last_method_success after a failure");
    check(http.last_error_code() == DPOPKIT_RESULT_INVALID_ARGUMENT, "Http's last error code");
    check(dpopkit::last_error_code() == DPOPKIT_RESULT_INVALID_ARGUMENT, "thread's last error code");
    check(!http.last_error_text().empty() && http.last_error_text() == dpopkit::last_error_text(),
          "last error text, per object and per thread");
    expect_error(DPOPKIT_RESULT_INVALID_ARGUMENT, "embedded NUL",
                 [&] { http.quick_get_str(std::string("http://a/\0b", 11)); });
    expect_error(DPOPKIT_RESULT_INVALID_ARGUMENT, "zero timeout", [&] { http.set_timeouts(0, 1000); });

    // A non-2xx status: code HTTP_STATUS, status() and the error document.
    try {
        http.quick_get_str(origin_of(api) + "/missing");
        check(false, "404 throws");
    } catch (const dpopkit::error& e) {
        check(e.code() == DPOPKIT_RESULT_HTTP_STATUS, "404 is HTTP_STATUS");
        check(e.status() == 404 && http.last_status() == 404, "status() is 404");
        check(http.last_response_body().find("not_found") != std::string::npos, "error document readable");
        check(std::strstr(e.what(), "404") != nullptr, "what() names the status");
    }

    // Wrong handle type: a key handle adopted as an Http.
    {
        dpopkit::PrivateKey k2 = dpopkit::PrivateKey::generate_new();
        dpopkit::Http wrong = dpopkit::Http::adopt(k2.release());
        check(!k2 && k2.handle() == 0, "release leaves no handle");
        expect_error(DPOPKIT_RESULT_WRONG_HANDLE_TYPE, "key handle used as Http", [&] { wrong.quick_get_str(api); });
    }  // `wrong` destroys the key handle

    // Move semantics: the handle moves, the moved-from object is empty and throws.
    const std::int64_t live = dpopkit::live_handles();
    dpopkit::Http moved = std::move(http);
    check(!http && http.handle() == 0 && moved, "move construction transfers the handle");
    expect_error(DPOPKIT_RESULT_INVALID_HANDLE, "moved-from Http", [&] { http.quick_get_str(api); });
    expect_error(DPOPKIT_RESULT_INVALID_HANDLE, "moved-from last_response_body",
                 [&] { http.last_response_body(); });
    check(moved.quick_get_str(api).find("m2m.dpop") != std::string::npos, "moved-to Http works (cached token)");
    check(dpopkit::live_handles() == live, "a move creates no handle");
    dpopkit::JsonObject other = dpopkit::JsonObject::parse("{\"a\":\"1\"}");
    check(dpopkit::live_handles() == live + 1, "parse creates one handle");
    other = std::move(json);  // destroys the {"a":"1"} object
    check(dpopkit::live_handles() == live, "move assignment destroys the old object");
    check(other.string_of("client_id") == "m2m.dpop", "move assignment transfers the object");
    key.reset();
    check(!key, "reset");
    check(moved.quick_get_str(api).find("m2m.dpop") != std::string::npos, "Http keeps its own key reference");
}

int main(int argc, char** argv) {
    if (argc < 4 || argc > 6) {
        std::cerr << "usage: sample KEY_FILE TOKEN_ENDPOINT API_URL [KEY_PASSWORD [SESSION_LOG]]\n";
        return 2;
    }
    try {
        run(argc, argv);
    } catch (const dpopkit::error& e) {
        std::cerr << "FAILED: dpopkit error " << e.code() << " (status " << e.status() << "): " << e.what() << "\n";
        failures++;
    }
    check(dpopkit::live_handles() == 0, "every handle destroyed by RAII");
    std::cout << "cpp checks: " << (failures == 0 ? "all passed" : "FAILED") << "\n";
    return failures == 0 ? 0 : 1;
}

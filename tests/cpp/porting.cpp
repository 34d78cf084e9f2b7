// The porting flow of issue 12 through bindings/cpp/dpopkit.hpp: request headers, a POST of
// JSON with an Idempotency-Key (201 + Location), a binary download (bytes 0..255) as
// std::vector<uint8_t>, status text, header lookup (std::optional), every transport setting
// (redirects, CA file, OS trust store, proxy, timeouts), PKCS#11 keygen's error path, and
// configuration errors that carry no earlier HTTP status.
// Usage: porting TOKEN_ENDPOINT RS_ORIGIN CA_PEM
// Prints one line per step; exits 0 only if every check passes.
#include <cstdint>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "dpopkit.hpp"

static int failures = 0;

static void check(bool cond, const char* what) {
    if (!cond) {
        std::cerr << "FAILED: " << what << "\n";
        failures++;
    }
}

template <typename F>
static dpopkit::error expect_error(dpopkit::result code, const char* what, F f) {
    try {
        f();
        std::cerr << "FAILED: " << what << ": no exception\n";
        failures++;
    } catch (const dpopkit::error& e) {
        if (e.code() != code) {
            std::cerr << "FAILED: " << what << ": code " << e.code() << " (" << e.what() << "), expected " << code << "\n";
            failures++;
        }
        return e;
    }
    return dpopkit::error(DPOPKIT_RESULT_OK, 0, "");
}

static bool contains(const std::vector<std::uint8_t>& v, const std::string& s) {
    return std::string(v.begin(), v.end()).find(s) != std::string::npos;
}

static void run(const std::string& token_endpoint, const std::string& rs, const std::string& ca_pem) {
    dpopkit::PrivateKey key = dpopkit::PrivateKey::generate_new();
    dpopkit::Http http;
    http.set_dpop_key(key);
    http.set_auth_token(dpopkit::JsonObject()
                            .update_string("client_id", "m2m.dpop")
                            .update_string("client_secret", "secret")
                            .update_string("token_endpoint", token_endpoint)
                            .update_string("scope", "api")
                            .emit());
    // Every transport setting, ending on ones that work for the plain-http peers.
    http.set_timeouts(5000, 30000);
    http.set_max_response_size(1 << 20);
    http.set_follow_redirects(false);
    http.set_follow_redirects(true);
    http.set_ca_file(ca_pem);
    http.clear_ca_file();
    http.set_use_os_trust_store(true);
    http.set_use_os_trust_store(false);
    http.set_proxy("http://127.0.0.1:3128");
    http.set_proxy("");
    expect_error(DPOPKIT_RESULT_INVALID_ARGUMENT, "socks proxy refused", [&] { http.set_proxy("socks5://127.0.0.1:1080"); });
    expect_error(DPOPKIT_RESULT_FILE_IO, "missing CA file", [&] { http.set_ca_file("/nonexistent/ca.pem"); });
    http.use_environment_proxy();
    http.set_proxy("");

    check(http.last_status_text().empty(), "no status text before a response");
    check(!http.last_response_header_value("Location").has_value(), "no header before a response");
    check(http.last_response_body_bytes().empty(), "no body before a response");

    http.set_request_header("Accept", "application/json");
    http.set_request_header("X-Correlation-Id", "cpp-corr-1");
    expect_error(DPOPKIT_RESULT_INVALID_ARGUMENT, "Authorization refused", [&] { http.set_request_header("Authorization", "x"); });
    expect_error(DPOPKIT_RESULT_INVALID_ARGUMENT, "header injection refused",
                 [&] { http.set_request_header("X-A", "a\r\nX-Injected: 1"); });
    std::vector<std::uint8_t> echo = http.quick_get_bytes(rs + "/api/echo-headers");
    check(contains(echo, "\"accept\":\"application/json\""), "Accept arrived");
    check(contains(echo, "\"x-correlation-id\":\"cpp-corr-1\""), "correlation id arrived");
    check(http.last_response_header_value("X-REPEATED") == std::optional<std::string>("first, second"), "joined header");
    std::cout << "echo: " << http.last_status() << " " << http.last_status_text() << "\n";

    http.set_request_header("Idempotency-Key", "cpp-idem-1");
    const std::string json = "{\"name\":\"widget\"}";
    std::vector<std::uint8_t> created = http.quick_request_bytes("POST", rs + "/api/items", std::string("application/json"),
                                                                 std::vector<std::uint8_t>(json.begin(), json.end()));
    check(contains(created, "\"idempotency_key\":\"cpp-idem-1\""), "Idempotency-Key arrived");
    std::optional<std::string> location = http.last_response_header_value("Location");
    check(location && location->rfind("/api/items/", 0) == 0, "Location");
    check(!http.last_response_header_value("X-Nope").has_value(), "absent header is nullopt");
    std::cout << "created: " << http.last_status() << " " << http.last_status_text() << " location "
              << location.value_or("?") << "\n";
    http.remove_request_header("Idempotency-Key");

    std::vector<std::uint8_t> bytes = http.quick_get_bytes(rs + "/api/bytes");
    bool in_order = bytes.size() == 256;
    for (std::size_t i = 0; in_order && i < bytes.size(); i++) in_order = bytes[i] == static_cast<std::uint8_t>(i);
    check(in_order, "bytes 0..255");
    check(http.last_response_body_bytes() == bytes, "last body bytes");
    expect_error(DPOPKIT_RESULT_RESPONSE_NOT_TEXT, "str API refuses binary", [&] { http.quick_get_str(rs + "/api/bytes"); });
    std::cout << "bytes: " << bytes.size() << "\n";

    const std::vector<std::uint8_t> odd = {0, 0xff, 0xfe, 'a', 0, 0xc3, 0x28};
    check(http.quick_request_bytes("PUT", rs + "/api/echo-bytes", std::nullopt, odd) == odd, "binary upload round-trips");
    check(http.quick_get_bytes(rs + "/api/empty").empty() && http.last_status() == 204, "empty body");
    check(http.quick_request_bytes("POST", rs + "/api/echo-bytes", std::nullopt, nullptr, 0).empty(), "no body");

    // A failed request carries its status; a failed setting after it does not.
    dpopkit::error e = expect_error(DPOPKIT_RESULT_HTTP_STATUS, "404", [&] { http.quick_get_bytes(rs + "/nowhere"); });
    check(e.status() == 404, "the failed request's status");
    check(http.last_response_header_value("content-type").has_value(), "headers of the failed response");
    check(http.last_error_code() == DPOPKIT_RESULT_HTTP_STATUS, "lookup keeps the failed call's error");
    check(http.last_status_text() == "Not Found", "status text of the failure");
    e = expect_error(DPOPKIT_RESULT_INVALID_ARGUMENT, "bad timeouts", [&] { http.set_timeouts(0, 1); });
    check(e.status() == 0, "a configuration error carries no earlier HTTP status");

    http.clear_request_headers();
    echo = http.quick_get_bytes(rs + "/api/echo-headers");
    check(!contains(echo, "cpp-corr-1"), "cleared");

    // PKCS#11 keygen: a module that does not exist is an error that says so.
    dpopkit::PrivateKey hsm;
    e = expect_error(DPOPKIT_RESULT_FILE_IO, "pkcs11 module missing", [&] {
        hsm.generate_pkcs11("pkcs11:token=t;object=k?module-path=/nonexistent/dpopkit-test-module.so", std::string("1234"));
    });
    check(std::string(e.what()).find("module") != std::string::npos, "pkcs11 error names the module");
    http.clear_client_assertion_key();
}

int main(int argc, char** argv) {
    if (argc != 4) {
        std::cerr << "usage: porting TOKEN_ENDPOINT RS_ORIGIN CA_PEM\n";
        return 2;
    }
    try {
        run(argv[1], argv[2], argv[3]);
    } catch (const dpopkit::error& e) {
        std::cerr << "FAILED: unexpected dpopkit::error " << e.code() << " status " << e.status() << ": " << e.what() << "\n";
        failures++;
    }
    check(dpopkit::live_handles() == 0, "no handle left");
    std::cout << (failures == 0 ? "cpp porting: ok" : "cpp porting: FAILED") << "\n";
    return failures == 0 ? 0 : 1;
}

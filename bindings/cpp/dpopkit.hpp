// dpopkit.hpp: header-only C++17 binding of the dpopkit C ABI (include/dpopkit.h).
//
// OAuth 2.0 client_credentials + DPoP (RFC 9449). Every C function is wrapped:
//   * PrivateKey, JsonObject and Http are move-only RAII owners of a handle; the destructor
//     calls dpopkit_destroy. A moved-from object holds no handle (handle() == 0) and every
//     call on it throws dpopkit::error with DPOPKIT_RESULT_INVALID_HANDLE.
//   * Strings go in and out as std::string (UTF-8). Each char* the library returns is copied
//     and freed with dpopkit_string_free at once, also when an exception is thrown. Binary
//     bodies go in and out as std::vector<std::uint8_t> (any byte values); each uint8_t* the
//     library returns is copied and freed with dpopkit_bytes_free at once.
//   * A failed call throws dpopkit::error (a std::runtime_error) with code() (the
//     dpopkit_result), status() (the HTTP status of a failed request, else 0: a failed
//     setting never reports an earlier request's status) and text().
//   * Chilkat-style accessors are kept for code ported from Chilkat: last_status(),
//     last_method_success(), last_error_text(), last_error_code(), last_response_body().
//   * Thread safety is the C library's: an Http may be used from many threads at once;
//     the last_* accessors report the calling thread's last call on that object.
//
// Link with -ldpopkit (see bindings/c/install.sh and `pkg-config --libs dpopkit`).
#ifndef DPOPKIT_HPP
#define DPOPKIT_HPP

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "dpopkit.h"

namespace dpopkit {

/// The result codes of the C ABI (`DPOPKIT_RESULT_OK`, `DPOPKIT_RESULT_FILE_IO`, ...).
using result = ::dpopkit_result;

/// A failed dpopkit call. what() is the library's error text (never contains a secret).
class error : public std::runtime_error {
public:
    error(result code, int status, const std::string& text)
        : std::runtime_error(text), code_(code), status_(status) {}

    /// The dpopkit_result of the failed call, e.g. DPOPKIT_RESULT_HTTP_STATUS.
    result code() const noexcept { return code_; }
    /// The HTTP status of the response the failure came from, 0 when there was none.
    int status() const noexcept { return status_; }
    /// The error text (same as what()).
    std::string text() const { return what(); }

private:
    result code_;
    int status_;
};

namespace detail {

struct string_deleter {
    void operator()(char* s) const noexcept { dpopkit_string_free(s); }
};
using owned_string = std::unique_ptr<char, string_deleter>;

struct bytes_deleter {
    void operator()(std::uint8_t* p) const noexcept { dpopkit_bytes_free(p); }
};
using owned_bytes = std::unique_ptr<std::uint8_t, bytes_deleter>;

/// Copies and frees a string returned by dpopkit; NULL becomes nullopt.
inline std::optional<std::string> take_opt(char* s) {
    owned_string owner(s);
    if (s == nullptr) return std::nullopt;
    return std::string(s);
}

/// The failure of the call just made on this thread (the library records every call's
/// outcome per thread, so handle 0 reads exactly that call). `http` adds the HTTP status.
[[noreturn]] inline void throw_last(std::int64_t http = 0) {
    auto code = static_cast<result>(dpopkit_last_error_code(0));
    std::optional<std::string> text = take_opt(dpopkit_last_error_text(0));
    if (code == DPOPKIT_RESULT_OK) code = DPOPKIT_RESULT_INTERNAL;
    int status = http != 0 ? dpopkit_http_last_status(http) : 0;
    throw error(code, status, text && !text->empty() ? *text : std::string("dpopkit call failed"));
}

/// A returned string, or the error of the call that returned NULL.
inline std::string take(char* s, std::int64_t http = 0) {
    if (s == nullptr) throw_last(http);
    owned_string owner(s);
    return std::string(s);
}

/// Calls `f(&len)` (a dpopkit function returning uint8_t* with its length in *out_len) and
/// returns a copy of the bytes, freed at once; NULL throws the error of the call (`http`
/// adds the HTTP status: pass it for requests only).
template <typename F>
inline std::vector<std::uint8_t> take_bytes(F f, std::int64_t http = 0) {
    std::size_t len = 0;
    owned_bytes owner(f(&len));
    if (!owner) throw_last(http);
    return std::vector<std::uint8_t>(owner.get(), owner.get() + len);
}

/// For the last_* getters, which return NULL without recording an error.
[[noreturn]] inline void throw_getter(std::int64_t http, result code, const char* text) {
    if (http == 0) throw error(DPOPKIT_RESULT_INVALID_HANDLE, 0, "the Http object holds no handle (moved from or reset)");
    throw error(code, dpopkit_http_last_status(http), std::string(text) + " (or the Http handle is not valid)");
}

/// std::string to a C argument. An embedded NUL would silently cut the string short in C,
/// so it is refused here.
inline const char* arg(const std::string& s, const char* name) {
    if (s.find('\0') != std::string::npos) {
        throw error(DPOPKIT_RESULT_INVALID_ARGUMENT, 0, std::string("argument '") + name + "' contains a NUL byte");
    }
    return s.c_str();
}

inline void check(int ok, std::int64_t http = 0) {
    if (ok != 1) throw_last(http);
}

inline std::int64_t check_new(std::int64_t h) {
    if (h <= 0) throw_last();
    return h;
}

/// Move-only owner of one handle; the destructor destroys it.
class handle_owner {
public:
    handle_owner(const handle_owner&) = delete;
    handle_owner& operator=(const handle_owner&) = delete;
    handle_owner(handle_owner&& other) noexcept : h_(std::exchange(other.h_, 0)) {}
    handle_owner& operator=(handle_owner&& other) noexcept {
        if (this != &other) {
            reset();
            h_ = std::exchange(other.h_, 0);
        }
        return *this;
    }
    ~handle_owner() { reset(); }

    /// The raw dpopkit handle (0 once moved from, released or reset), for the C API.
    std::int64_t handle() const noexcept { return h_; }
    explicit operator bool() const noexcept { return h_ != 0; }
    /// Gives up ownership: the caller must dpopkit_destroy the returned handle.
    std::int64_t release() noexcept { return std::exchange(h_, 0); }
    /// Destroys the object now (dpopkit_destroy); later calls throw INVALID_HANDLE.
    void reset() noexcept {
        if (h_ != 0) dpopkit_destroy(std::exchange(h_, 0));
    }

    /// Text of this object's last error on the calling thread ("" after a success).
    std::string last_error_text() const { return take_opt(dpopkit_last_error_text(h_)).value_or(""); }
    /// Code of this object's last call on the calling thread (DPOPKIT_RESULT_OK = 0).
    result last_error_code() const noexcept { return static_cast<result>(dpopkit_last_error_code(h_)); }

protected:
    explicit handle_owner(std::int64_t h) noexcept : h_(h) {}
    std::int64_t h_;
};

}  // namespace detail

/// The library version, e.g. "0.1.0" (DPOPKIT_VERSION is the header's).
inline std::string version() { return detail::take(dpopkit_version()); }

/// Number of live handles in the process (leak checks).
inline std::int64_t live_handles() noexcept { return dpopkit_live_handles(); }

/// Forgets every cached access token and DPoP nonce of the process (after rotating a
/// secret or key): the next request fetches a new token.
inline void token_cache_clear() noexcept { dpopkit_token_cache_clear(); }

/// The calling thread's latest error text / code, whatever the object.
inline std::string last_error_text() { return detail::take_opt(dpopkit_last_error_text(0)).value_or(""); }
inline result last_error_code() noexcept { return static_cast<result>(dpopkit_last_error_code(0)); }

/// The DPoP private key: EC P-256 (ES256), EC P-384 (ES384), Ed25519 (EdDSA / Ed25519) or
/// RSA of 2048 to 4096 bits (RS256 / PS256).
class PrivateKey : public detail::handle_owner {
public:
    /// An empty key object: load or generate a key into it.
    PrivateKey() : handle_owner(detail::check_new(dpopkit_key_new())) {}
    /// Takes ownership of a handle from dpopkit_key_new().
    static PrivateKey adopt(std::int64_t key) noexcept { return PrivateKey(key); }

    /// A new random key.
    static PrivateKey generate_new() {
        PrivateKey k;
        k.generate();
        return k;
    }
    /// A key loaded from a file (PEM/DER SEC1, PKCS#8, encrypted PKCS#8, or JWK).
    static PrivateKey from_file(const std::string& path, const std::string& password = "") {
        PrivateKey k;
        k.load_any_format_file(path, password);
        return k;
    }

    void load_any_format_file(const std::string& path, const std::string& password = "") {
        detail::check(dpopkit_key_load_any_format_file(h_, detail::arg(path, "path"),
                                                       detail::arg(password, "password")));
    }
    /// From text in memory (PEM or JWK).
    void load_any_format(const std::string& data, const std::string& password = "") {
        detail::check(dpopkit_key_load_any_format(h_, detail::arg(data, "data"), detail::arg(password, "password")));
    }
    void generate() { detail::check(dpopkit_key_generate(h_)); }
    /// A new random key for "ES256" (P-256), "ES384" (P-384), "EdDSA" / "Ed25519" (Ed25519),
    /// "RS256" or "PS256" (RSA, 2048 bits).
    void generate(const std::string& alg) { detail::check(dpopkit_key_generate_alg(h_, detail::arg(alg, "alg"))); }
    /// Creates a new key pair inside a PKCS#11 token (the private key never leaves it):
    /// `uri` a pkcs11: URI naming the token and the new object (with module-path), `pin`
    /// the user PIN (nullopt: pin-value / pin-source in the URI), `alg` "ES256" (nullopt:
    /// the default), "ES384", "RS256" or "PS256".
    void generate_pkcs11(const std::string& uri, const std::optional<std::string>& pin = std::nullopt,
                         const std::optional<std::string>& alg = std::nullopt) {
        detail::check(dpopkit_key_generate_pkcs11(h_, detail::arg(uri, "uri"), pin ? detail::arg(*pin, "pin") : nullptr,
                                                  alg ? detail::arg(*alg, "alg") : nullptr));
    }
    /// The preferred algorithm: "ES256", "ES384", "EdDSA", "RS256" or "PS256".
    std::string get_alg() const { return detail::take(dpopkit_key_get_alg(h_)); }

    /// Unencrypted PKCS#8 PEM. Secret material: the std::string is not wiped on destruction.
    std::string get_pkcs8_pem() const { return detail::take(dpopkit_key_get_pkcs8_pem(h_)); }
    /// The private JWK (with `d`). Secret material, as get_pkcs8_pem().
    std::string get_jwk() const { return detail::take(dpopkit_key_get_jwk(h_)); }
    /// The public JWK (RFC 7638 members).
    std::string get_public_jwk() const { return detail::take(dpopkit_key_get_public_jwk(h_)); }
    /// The RFC 7638 thumbprint (base64url), the `jkt` tokens are bound to.
    std::string get_jwk_thumbprint() const { return detail::take(dpopkit_key_get_jwk_thumbprint(h_)); }

private:
    explicit PrivateKey(std::int64_t h) noexcept : handle_owner(h) {}
};

/// A flat JSON object of string members, e.g. the AuthToken description.
class JsonObject : public detail::handle_owner {
public:
    /// An empty object `{}`.
    JsonObject() : handle_owner(detail::check_new(dpopkit_json_new())) {}
    static JsonObject adopt(std::int64_t json) noexcept { return JsonObject(json); }
    /// An object parsed from JSON text.
    static JsonObject parse(const std::string& text) {
        JsonObject j;
        j.load(text);
        return j;
    }

    /// Sets (adds or replaces) member `name` to the string `value`. Returns *this.
    JsonObject& update_string(const std::string& name, const std::string& value) {
        detail::check(dpopkit_json_update_string(h_, detail::arg(name, "name"), detail::arg(value, "value")));
        return *this;
    }
    /// Compact JSON text, members in insertion order.
    std::string emit() const { return detail::take(dpopkit_json_emit(h_)); }
    /// Replaces the content with the JSON object in `text` (unchanged on error).
    void load(const std::string& text) { detail::check(dpopkit_json_load(h_, detail::arg(text, "text"))); }
    /// Member `name` as a string; throws DPOPKIT_RESULT_JSON when there is none.
    std::string string_of(const std::string& name) const {
        return detail::take(dpopkit_json_string_of(h_, detail::arg(name, "name")));
    }
    /// Member `name` as a string, or nullopt when there is none (other errors still throw).
    std::optional<std::string> find_string(const std::string& name) const {
        char* s = dpopkit_json_string_of(h_, detail::arg(name, "name"));
        if (s == nullptr && dpopkit_last_error_code(0) == DPOPKIT_RESULT_JSON) return std::nullopt;
        return detail::take(s);
    }

private:
    explicit JsonObject(std::int64_t h) noexcept : handle_owner(h) {}
};

/// HTTP with DPoP-bound client_credentials tokens, keep-alive pool, optional session log.
class Http : public detail::handle_owner {
public:
    Http() : handle_owner(detail::check_new(dpopkit_http_new())) {}
    static Http adopt(std::int64_t http) noexcept { return Http(http); }

    /// The DPoP key (the Http keeps its own reference; the PrivateKey may be destroyed).
    void set_dpop_key(const PrivateKey& key) { detail::check(dpopkit_http_set_dpop_key(h_, key.handle())); }
    /// The key that signs private_key_jwt client assertions (the DPoP key unless set).
    void set_client_assertion_key(const PrivateKey& key) {
        detail::check(dpopkit_http_set_client_assertion_key(h_, key.handle()));
    }
    /// Back to the default: the DPoP key signs client assertions.
    void clear_client_assertion_key() { detail::check(dpopkit_http_set_client_assertion_key(h_, 0)); }
    /// The AuthToken description as JSON text (token_endpoint, client_id, client_secret, ...).
    void set_auth_token(const std::string& auth_token_json) {
        detail::check(dpopkit_http_set_auth_token(h_, detail::arg(auth_token_json, "auth_token_json")));
    }
    void set_auth_token(const JsonObject& auth_token) { set_auth_token(auth_token.emit()); }
    /// Appends a session log (secrets shown as ****) to `path`; "" stops logging.
    void set_session_log_filename(const std::string& path) {
        detail::check(dpopkit_http_set_session_log_filename(h_, detail::arg(path, "path")));
    }
    void clear_session_log() { detail::check(dpopkit_http_set_session_log_filename(h_, nullptr)); }
    void set_timeouts(std::uint32_t connect_ms, std::uint32_t request_ms) {
        detail::check(dpopkit_http_set_timeouts(h_, connect_ms, request_ms));
    }
    void set_max_response_size(std::uint64_t max_bytes) {
        detail::check(dpopkit_http_set_max_response_size(h_, max_bytes));
    }
    /// true (the default): follow up to 5 redirects of API requests (credentials only to
    /// the original origin); false: a 3xx throws DPOPKIT_RESULT_HTTP_STATUS.
    void set_follow_redirects(bool follow) { detail::check(dpopkit_http_set_follow_redirects(h_, follow ? 1 : 0)); }
    /// Trusts only the CA certificates of the PEM file at `path` for https; "" goes back
    /// to the bundled Mozilla roots.
    void set_ca_file(const std::string& path) { detail::check(dpopkit_http_set_ca_file(h_, detail::arg(path, "path"))); }
    /// Back to the bundled Mozilla roots.
    void clear_ca_file() { detail::check(dpopkit_http_set_ca_file(h_, nullptr)); }
    /// true: verify https servers with the operating system's trust store; false: the
    /// bundled Mozilla roots.
    void set_use_os_trust_store(bool use_os) {
        detail::check(dpopkit_http_set_use_os_trust_store(h_, use_os ? 1 : 0));
    }
    /// Sends requests through this HTTP proxy, e.g. "http://127.0.0.1:3128"; "": no
    /// proxy at all.
    void set_proxy(const std::string& proxy_url) {
        detail::check(dpopkit_http_set_proxy(h_, detail::arg(proxy_url, "proxy_url")));
    }
    /// The proxy from the environment (https_proxy, http_proxy, all_proxy, no_proxy): the
    /// default.
    void use_environment_proxy() { detail::check(dpopkit_http_set_proxy(h_, nullptr)); }

    /// Sends `name: value` on every API request from now on (replacing an earlier value of
    /// that name, any spelling): Accept, Idempotency-Key, If-Match, an API key. Never on
    /// token or metadata requests, never to another origin. Authorization, DPoP, Host,
    /// Content-Length, Transfer-Encoding, Connection, names that are not RFC 9110 tokens
    /// and values with CR/LF/NUL throw DPOPKIT_RESULT_INVALID_ARGUMENT with the reason.
    void set_request_header(const std::string& name, const std::string& value) {
        detail::check(dpopkit_http_set_request_header(h_, detail::arg(name, "name"), detail::arg(value, "value")));
    }
    /// Stops sending the header `name` (no error when it was not set).
    void remove_request_header(const std::string& name) {
        detail::check(dpopkit_http_remove_request_header(h_, detail::arg(name, "name")));
    }
    /// Stops sending every header set with set_request_header().
    void clear_request_headers() { detail::check(dpopkit_http_clear_request_headers(h_)); }

    /// GET `url`; the body of a 2xx response. Any other status throws
    /// DPOPKIT_RESULT_HTTP_STATUS with status() set (and last_response_body() available).
    std::string quick_get_str(const std::string& url) {
        return detail::take(dpopkit_http_quick_get_str(h_, detail::arg(url, "url")), h_);
    }
    /// Any method, no body.
    std::string quick_request_str(const std::string& method, const std::string& url) {
        return detail::take(dpopkit_http_quick_request_str(h_, detail::arg(method, "method"), detail::arg(url, "url"),
                                                           nullptr, nullptr),
                            h_);
    }
    /// Any method with a body of the given content type, e.g. POST application/json.
    std::string quick_request_str(const std::string& method, const std::string& url,
                                  const std::string& content_type, const std::string& body) {
        return detail::take(
            dpopkit_http_quick_request_str(h_, detail::arg(method, "method"), detail::arg(url, "url"),
                                           detail::arg(content_type, "content_type"), detail::arg(body, "body")),
            h_);
    }

    /// GET `url`; the body of a 2xx response as bytes (any byte values; empty when the body
    /// is). Other statuses throw as quick_get_str().
    std::vector<std::uint8_t> quick_get_bytes(const std::string& url) {
        const char* u = detail::arg(url, "url");
        return detail::take_bytes([&](std::size_t* n) { return dpopkit_http_quick_get_bytes(h_, u, n); }, h_);
    }
    /// Any method with a binary body (any byte values) of the given content type ("" or
    /// nullopt: none); the body of a 2xx response as bytes.
    std::vector<std::uint8_t> quick_request_bytes(const std::string& method, const std::string& url,
                                                  const std::optional<std::string>& content_type,
                                                  const std::vector<std::uint8_t>& body) {
        return quick_request_bytes(method, url, content_type, body.data(), body.size());
    }
    /// As above, from a pointer and a length (`body` may be nullptr when `len` is 0: no body).
    std::vector<std::uint8_t> quick_request_bytes(const std::string& method, const std::string& url,
                                                  const std::optional<std::string>& content_type,
                                                  const std::uint8_t* body, std::size_t len) {
        const char* m = detail::arg(method, "method");
        const char* u = detail::arg(url, "url");
        const char* ct = content_type ? detail::arg(*content_type, "content_type") : nullptr;
        return detail::take_bytes(
            [&](std::size_t* n) { return dpopkit_http_quick_request_bytes(h_, m, u, ct, body, len, n); }, h_);
    }

    /// HTTP status of this thread's last request through this object (0: no response).
    int last_status() const noexcept { return dpopkit_http_last_status(h_); }
    /// Whether this thread's last call on this object succeeded.
    bool last_method_success() const noexcept { return dpopkit_http_last_method_success(h_) == 1; }
    /// Body of the last response, whatever its status ("" when none). Throws
    /// DPOPKIT_RESULT_RESPONSE_NOT_TEXT when it is not UTF-8 text.
    std::string last_response_body() const {
        // A last_* getter records no error, so a NULL is explained here, not by throw_last.
        std::optional<std::string> s = detail::take_opt(dpopkit_http_last_response_body(h_));
        if (!s) detail::throw_getter(h_, DPOPKIT_RESULT_RESPONSE_NOT_TEXT, "the last response body is not UTF-8 text");
        return *s;
    }
    /// Body of the last response, whatever its status, as bytes (empty when none).
    std::vector<std::uint8_t> last_response_body_bytes() const {
        return detail::take_bytes([&](std::size_t* n) { return dpopkit_http_last_response_body_bytes(h_, n); });
    }
    /// Standard reason phrase of the last status ("OK", "Created", "Not Found"; "" when no
    /// response was received).
    std::string last_status_text() const {
        std::optional<std::string> s = detail::take_opt(dpopkit_http_last_status_text(h_));
        if (!s) detail::throw_getter(h_, DPOPKIT_RESULT_INVALID_HANDLE, "the last status text cannot be read");
        return *s;
    }
    /// The value of header `name` of the last response (case-insensitive; repeated fields
    /// joined with ", "), or nullopt when it has none. A lookup after a failed call keeps
    /// that call's last_error_text().
    std::optional<std::string> last_response_header_value(const std::string& name) const {
        char* s = dpopkit_http_last_response_header_value(h_, detail::arg(name, "name"));
        if (s == nullptr && dpopkit_last_error_code(h_) == DPOPKIT_RESULT_NOT_FOUND) return std::nullopt;
        return detail::take(s);
    }
    /// Headers of the last response as CRLF-separated `Name: value` lines ("" when none).
    std::string last_response_header() const {
        std::optional<std::string> s = detail::take_opt(dpopkit_http_last_response_header(h_));
        if (!s) detail::throw_getter(h_, DPOPKIT_RESULT_INTERNAL, "the last response headers cannot be read");
        return *s;
    }

private:
    explicit Http(std::int64_t h) noexcept : handle_owner(h) {}
};

}  // namespace dpopkit

#endif  // DPOPKIT_HPP

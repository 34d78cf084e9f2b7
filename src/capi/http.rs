//! Http objects: DPoP-authenticated requests with a cached client_credentials token.

use std::ffi::c_char;
use std::os::raw::c_int;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::core::http::{ProxyChoice, TrustRoots, load_ca_file};
use crate::core::{Error, ErrorKind, Settings};
use crate::ffi::boundary::{Ctx, FfiError, last_for, peek, run, run_getter};
use crate::ffi::registry::{self, Object};
use crate::ffi::result::dpopkit_result;
use crate::ffi::strings::{arg, opt_arg, out, out_bytes};

/// Creates an Http object. Returns a handle > 0, or 0 on failure. Destroy it with
/// `dpopkit_destroy`.
///
/// Defaults: connect timeout 10 s, whole-call timeout 60 s, response size limit 16 MiB,
/// up to 5 redirects followed (credentials only to the original origin, and only until the
/// chain leaves it), TLS certificates
/// verified against the bundled Mozilla roots, proxy from the environment.
///
/// Connections are pooled process-wide: Http objects whose transport settings are equal
/// (timeouts, size limit, redirects, trust roots, proxy) share idle keep-alive connections
/// and one TLS configuration, so an object made per call does not pay a new TCP and TLS
/// handshake. Objects whose settings differ never share a connection. Bounded: 16 sets of
/// settings, each with at most 16 idle connections (8 per origin) kept for 30 s.
#[unsafe(no_mangle)]
pub extern "C" fn dpopkit_http_new() -> i64 {
    run("dpopkit_http_new", 0, |_| registry::insert(Object::Http(Arc::default())))
}

/// Gives the Http object the DPoP key from a PrivateKey object. The Http keeps its own
/// reference: destroying or reloading the key object later does not change it.
/// Returns 1 on success, 0 on failure (`DPOPKIT_RESULT_NO_KEY` if the key object is empty).
#[unsafe(no_mangle)]
pub extern "C" fn dpopkit_http_set_dpop_key(http: i64, key: i64) -> c_int {
    run("dpopkit_http_set_dpop_key", http, |_| {
        let obj = registry::http(http)?;
        obj.client.set_dpop_key(super::key::key_of(key)?);
        Ok(1)
    })
}

/// Sets the key that signs private_key_jwt client assertions (AuthToken member
/// `"client_auth_method": "private_key_jwt"`), from a PrivateKey object; `key` = 0 goes back
/// to the default, the DPoP key. The Http keeps its own reference. Returns 1 on success, 0
/// on failure.
#[unsafe(no_mangle)]
pub extern "C" fn dpopkit_http_set_client_assertion_key(http: i64, key: i64) -> c_int {
    run("dpopkit_http_set_client_assertion_key", http, |_| {
        let obj = registry::http(http)?;
        let k = if key == 0 { None } else { Some(super::key::key_of(key)?) };
        obj.client.set_client_assertion_key(k);
        Ok(1)
    })
}

/// Sets the AuthToken description (JSON): required `client_id` and `token_endpoint` (or
/// `issuer` / `metadata_url`, to discover it from the server's metadata, which also checks
/// the server's DPoP algorithms); `client_secret` for `client_auth_method` (or its RFC
/// 7591 name `token_endpoint_auth_method`) `client_secret_post` (the default) or
/// `client_secret_basic`, or `private_key_jwt` with
/// `client_assertion_audience` ("token_endpoint", the default, "issuer", or a value) and
/// `client_assertion_kid`; optional `scope`, `audience`, `resource`, `allow_bearer`
/// ("true" to accept a token the server did not bind to the key), `default_expires_in`
/// (seconds, when the server sends no `expires_in`; default 300), `clock_skew_correction`
/// ("false" to never date proofs on the server's clock), `max_clock_skew` (seconds, the
/// largest server clock offset proofs are dated by; default 3600), `allow_insecure_http` ("true" to
/// let the client secret or assertion go over plain http to a host other than `localhost`
/// or a loopback IP; refused with `DPOPKIT_RESULT_AUTH_TOKEN` by default, and https
/// metadata naming an http token endpoint always is). Any other string member is sent
/// as an extra form field of the token request, except one that looks like a misspelt
/// member (`scpoe`: refused, the text says "did you mean"); `param:NAME` sends the field
/// `NAME` whatever it looks like. The token is fetched on the first request
/// and cached process-wide. `token_cache_dir` shares it with the other processes of
/// this user too: a directory that exists, is owned by the current user and is not
/// writable by group or others (on Windows: no other user in its DACL may write to it)
/// (else `DPOPKIT_RESULT_AUTH_TOKEN`, with the fix in the text); one token file (mode
/// 0600; on Windows a DACL for this user only) per settings and key, written atomically, and a lock
/// file so that one process asks the server while the others wait (at most half the
/// call's time). A disk that cannot be written costs only the sharing (a session log
/// note). Returns 1 on success, 0 on failure.
///
/// # Safety
/// `auth_token_json` is a NUL-terminated UTF-8 string, borrowed for the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dpopkit_http_set_auth_token(http: i64, auth_token_json: *const c_char) -> c_int {
    run("dpopkit_http_set_auth_token", http, |_| {
        let obj = registry::http(http)?;
        let text = unsafe { arg(auth_token_json, "auth_token_json") }?;
        obj.client.set_auth_token(text)?;
        Ok(1)
    })
}

/// Appends a session log (every request and response, with `Authorization`, `DPoP`,
/// client secrets and tokens shown as `****`, also where a server echoes them back) to the
/// file at `path`, created with mode 0600 if needed. A symbolic link is not followed and
/// anything but a regular file (a FIFO, a device), a file with other hard links or one owned
/// by another user is refused, without blocking. Size
/// policy: when the file would pass 10 MiB it is renamed to `<path>.1` (replacing an older
/// one) and a new file is started. NULL or "" stops logging. Returns 1 on success, 0 if
/// the file cannot be opened (`DPOPKIT_RESULT_FILE_IO`, the text says why).
///
/// # Safety
/// `path` is NULL or a NUL-terminated UTF-8 string, borrowed for the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dpopkit_http_set_session_log_filename(http: i64, path: *const c_char) -> c_int {
    run("dpopkit_http_set_session_log_filename", http, |_| {
        let obj = registry::http(http)?;
        let path = unsafe { opt_arg(path, "path") }?;
        obj.client.set_session_log(path.map(Path::new))?;
        Ok(1)
    })
}

/// Sets the timeouts in milliseconds: `connect_ms` for establishing a connection,
/// `request_ms` for the whole call: every request it makes (connect, send, full response),
/// every redirect hop, every retry (DPoP nonce, invalid_token, clock skew), the token and
/// metadata requests, and the wait for another thread's token request. Each request gets
/// what is left of `request_ms`; when nothing is left the call fails with
/// `DPOPKIT_RESULT_TIMEOUT`. Both must be > 0. Replaces the connection pool.
/// Returns 1 on success, 0 on failure.
#[unsafe(no_mangle)]
pub extern "C" fn dpopkit_http_set_timeouts(http: i64, connect_ms: u32, request_ms: u32) -> c_int {
    run("dpopkit_http_set_timeouts", http, |_| {
        update_settings(http, |s| {
            s.connect_timeout = Duration::from_millis(connect_ms.into());
            s.request_timeout = Duration::from_millis(request_ms.into());
            Ok(())
        })
    })
}

/// Sets the largest response body accepted, in bytes (> 0; default 16 MiB). Larger bodies
/// fail with `DPOPKIT_RESULT_RESPONSE_TOO_LARGE`. Returns 1 on success, 0 on failure.
#[unsafe(no_mangle)]
pub extern "C" fn dpopkit_http_set_max_response_size(http: i64, max_bytes: u64) -> c_int {
    run("dpopkit_http_set_max_response_size", http, |_| {
        update_settings(http, |s| {
            s.max_response_size = max_bytes;
            Ok(())
        })
    })
}

/// Changes one setting of the transport (the object moves to the pool for its new settings).
fn update_settings(http: i64, f: impl FnOnce(&mut Settings) -> Result<(), FfiError>) -> Result<c_int, FfiError> {
    let obj = registry::http(http)?;
    let mut s = obj.client.settings();
    f(&mut s)?;
    obj.client.set_settings(s)?;
    Ok(1)
}

/// 1 (the default): follow up to 5 redirects of API requests; `Authorization` and `DPoP`
/// are sent only to the origin of the URL the call was given, never to another origin,
/// and each hop gets its own proof. 0: return the 3xx response as a failure
/// (`DPOPKIT_RESULT_HTTP_STATUS`). Token requests never follow redirects.
/// Returns 1 on success, 0 on failure.
#[unsafe(no_mangle)]
pub extern "C" fn dpopkit_http_set_follow_redirects(http: i64, follow: c_int) -> c_int {
    run("dpopkit_http_set_follow_redirects", http, |_| {
        update_settings(http, |s| {
            s.follow_redirects = follow != 0;
            Ok(())
        })
    })
}

/// Trusts only the CA certificates in the PEM file at `path` for https (a private or test
/// CA), instead of the bundled Mozilla roots. NULL or "" goes back to the bundled roots.
/// Certificate verification cannot be turned off. Returns 1 on success, 0 on failure
/// (unreadable file, no CERTIFICATE block). The file must be a regular file of at most
/// 16 MiB: a FIFO, a device or a directory is refused at once (never waited on).
///
/// # Safety
/// `path` is NULL or a NUL-terminated UTF-8 string, borrowed for the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dpopkit_http_set_ca_file(http: i64, path: *const c_char) -> c_int {
    run("dpopkit_http_set_ca_file", http, |_| {
        registry::http(http)?;
        let path = unsafe { opt_arg(path, "path") }?.filter(|p| !p.is_empty());
        let trust = match path {
            None => TrustRoots::Bundled,
            Some(p) => load_ca_file(Path::new(p))?,
        };
        update_settings(http, |s| {
            s.trust = trust;
            Ok(())
        })
    })
}

/// 1: verify https servers with the operating system's trust store and verifier (where a
/// corporate TLS-inspection CA is installed). 0: back to the bundled Mozilla roots.
/// Returns 1 on success, 0 on failure.
#[unsafe(no_mangle)]
pub extern "C" fn dpopkit_http_set_use_os_trust_store(http: i64, use_os: c_int) -> c_int {
    run("dpopkit_http_set_use_os_trust_store", http, |_| {
        update_settings(http, |s| {
            s.trust = if use_os != 0 { TrustRoots::Os } else { TrustRoots::Bundled };
            Ok(())
        })
    })
}

/// Sends requests through an HTTP proxy, e.g. "http://127.0.0.1:3128" (requests go through
/// CONNECT; DPoP's `htu` stays the target URL). Only http:// and https:// proxies; a
/// SOCKS URL, or a port that is not a number from 1 to 65535, is refused with
/// `DPOPKIT_RESULT_INVALID_ARGUMENT` (no port: 80 for http://, 443 for https://; a
/// `user:password@` is sent as Proxy-Authorization and never shown in error texts).
/// NULL: use the environment (the default), read when the setting is made, with curl's
/// rules: `http_proxy` for http:// targets, `https_proxy`/`HTTPS_PROXY` for https:// targets
/// only, `all_proxy`/`ALL_PROXY` for both, `no_proxy`/`NO_PROXY`; the upper-case
/// `HTTP_PROXY` is ignored when `REQUEST_METHOD` is set (CGI: "httpoxy"); a variable that
/// is not a usable proxy URL makes the requests that would use it fail with
/// `DPOPKIT_RESULT_INVALID_ARGUMENT`. "": no proxy at all. A target on this machine
/// (`localhost`, 127.0.0.0/8, `[::1]`) never goes through a proxy, explicit or from the
/// environment. Returns 1 on success, 0 on failure (invalid proxy URL).
///
/// # Safety
/// `proxy_url` is NULL or a NUL-terminated UTF-8 string, borrowed for the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dpopkit_http_set_proxy(http: i64, proxy_url: *const c_char) -> c_int {
    run("dpopkit_http_set_proxy", http, |_| {
        registry::http(http)?;
        let proxy = match unsafe { opt_arg(proxy_url, "proxy_url") }? {
            None => ProxyChoice::Env,
            Some("") => ProxyChoice::None,
            Some(u) => ProxyChoice::Url(u.to_string()),
        };
        update_settings(http, |s| {
            s.proxy = proxy;
            Ok(())
        })
    })
}

/// Sends `name: value` on every API request of `http` from now on (replacing an earlier
/// value of that name; names compare case-insensitively), e.g. `Accept`,
/// `Idempotency-Key`, `If-Match`, a correlation id or an API key. Never sent on token or
/// metadata requests, and never to another origin than the URL a call was given: a
/// redirect to another origin drops them, like `Authorization` and `DPoP`. `name` must be
/// an RFC 9110 token; `value` a single line (no CR, LF or NUL; "" is allowed).
/// `Authorization`, `DPoP`, `Host`, `Content-Length`, `Transfer-Encoding`, `Connection`
/// (and `Keep-Alive`, `Proxy-Connection`, `Upgrade`, `TE`, `Trailer`) are refused with
/// `DPOPKIT_RESULT_INVALID_ARGUMENT` and a text that says why. At most 64 headers, values
/// up to 8 KiB. A content type given to a call replaces a `Content-Type` set here for
/// that call. The session log shows them, with the values of credential-like headers
/// (`Cookie`, `*-Api-Key`, `*Token*`, `Proxy-Authorization`) as `****`.
/// Returns 1 on success, 0 on failure.
///
/// # Safety
/// `name` and `value` are NUL-terminated UTF-8 strings, borrowed for the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dpopkit_http_set_request_header(http: i64, name: *const c_char, value: *const c_char) -> c_int {
    run("dpopkit_http_set_request_header", http, |_| {
        let obj = registry::http(http)?;
        let name = unsafe { arg(name, "name") }?;
        let value = unsafe { arg(value, "value") }?;
        obj.client.set_request_header(name, value)?;
        Ok(1)
    })
}

/// Stops sending the request header `name` (any spelling). Returns 1 on success, also
/// when no such header was set; 0 on failure (`name` NULL or not a valid header name).
///
/// # Safety
/// `name` is a NUL-terminated UTF-8 string, borrowed for the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dpopkit_http_remove_request_header(http: i64, name: *const c_char) -> c_int {
    run("dpopkit_http_remove_request_header", http, |_| {
        let obj = registry::http(http)?;
        let name = unsafe { arg(name, "name") }?;
        obj.client.remove_request_header(name)?;
        Ok(1)
    })
}

/// Stops sending every header set with `dpopkit_http_set_request_header`.
/// Returns 1 on success, 0 on failure.
#[unsafe(no_mangle)]
pub extern "C" fn dpopkit_http_clear_request_headers(http: i64) -> c_int {
    run("dpopkit_http_clear_request_headers", http, |_| {
        registry::http(http)?.client.clear_request_headers();
        Ok(1)
    })
}

/// Sets `*out_len` to 0 (when it is not NULL) and checks it is not NULL.
///
/// # Safety
/// `out_len` is NULL or points to a writable `size_t`.
unsafe fn start_out_len(out_len: *mut usize) -> Result<(), FfiError> {
    if out_len.is_null() {
        return Err(FfiError::new(dpopkit_result::NullArgument, "argument 'out_len' is NULL"));
    }
    // SAFETY: non-NULL checked above; the caller guarantees it is writable.
    unsafe { out_len.write(0) };
    Ok(())
}

/// Copies `body` for the caller and stores its length.
///
/// # Safety
/// `out_len` is non-NULL and writable (see [`start_out_len`]).
unsafe fn give_bytes(body: &[u8], out_len: *mut usize) -> *mut u8 {
    let p = out_bytes(body);
    // SAFETY: checked by start_out_len before the call did anything.
    unsafe { out_len.write(body.len()) };
    p
}

fn request_bytes(
    http: i64,
    ctx: &mut Ctx,
    method: &str,
    url: &str,
    content_type: Option<&str>,
    body: Option<&[u8]>,
    out_len: *mut usize,
) -> Result<*mut u8, FfiError> {
    let obj = registry::http(http)?;
    ctx.requested = true;
    let resp = obj.client.request(Some(method), url, content_type, body)?;
    // SAFETY: the caller of this function checked out_len with start_out_len.
    let p = unsafe { give_bytes(&resp.body, out_len) };
    ctx.response = Some(resp);
    Ok(p)
}

/// GET `url`, as `dpopkit_http_quick_get_str`, and return the body of a 2xx response as
/// bytes: any byte values (NUL, invalid UTF-8: a PDF, an image), `*out_len` of them. An
/// empty body is a valid non-NULL pointer with `*out_len` = 0. On failure returns NULL
/// and `*out_len` is 0 (`dpopkit_http_last_status` gives the status). Credentials of the
/// call that a server echoes back are `****` here too. `out_len` NULL is
/// `DPOPKIT_RESULT_NULL_ARGUMENT` (and no request is sent).
///
/// Ownership: caller frees the result with `dpopkit_bytes_free` (never `free()`).
///
/// # Safety
/// `url` is a NUL-terminated UTF-8 string, borrowed for the call; `out_len` points to a
/// writable `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dpopkit_http_quick_get_bytes(http: i64, url: *const c_char, out_len: *mut usize) -> *mut u8 {
    run("dpopkit_http_quick_get_bytes", http, |ctx| {
        unsafe { start_out_len(out_len) }?;
        let url = unsafe { arg(url, "url") }?;
        request_bytes(http, ctx, "GET", url, None, None, out_len)
    })
}

/// Any method with an optional binary body of `body_len` bytes (any byte values), as
/// `dpopkit_http_quick_request_str`, returning the body of a 2xx response as bytes as
/// `dpopkit_http_quick_get_bytes` does. `body` NULL with `body_len` 0: no body; `body`
/// NULL with `body_len` > 0 is `DPOPKIT_RESULT_NULL_ARGUMENT`. `content_type` may be NULL.
///
/// Ownership: caller frees the result with `dpopkit_bytes_free` (never `free()`); `body`
/// stays the caller's (read during the call only).
///
/// # Safety
/// `method` and `url` are NUL-terminated UTF-8 strings; `content_type` is NULL or one;
/// `body` is NULL or points to `body_len` readable bytes; all borrowed for the call.
/// `out_len` points to a writable `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dpopkit_http_quick_request_bytes(
    http: i64,
    method: *const c_char,
    url: *const c_char,
    content_type: *const c_char,
    body: *const u8,
    body_len: usize,
    out_len: *mut usize,
) -> *mut u8 {
    run("dpopkit_http_quick_request_bytes", http, |ctx| {
        unsafe { start_out_len(out_len) }?;
        let method = unsafe { arg(method, "method") }?;
        let url = unsafe { arg(url, "url") }?;
        let content_type = unsafe { opt_arg(content_type, "content_type") }?;
        let body = match (body.is_null(), body_len) {
            (true, 0) => None,
            (true, _) => {
                return Err(FfiError::new(dpopkit_result::NullArgument, "argument 'body' is NULL but 'body_len' is not 0"));
            }
            (false, n) if n > isize::MAX as usize => {
                return Err(Error::new(ErrorKind::InvalidArgument, "argument 'body_len' is larger than any buffer").into());
            }
            // SAFETY: non-NULL, and the caller guarantees `body_len` readable bytes.
            (false, n) => Some(unsafe { std::slice::from_raw_parts(body, n) }),
        };
        request_bytes(http, ctx, method, url, content_type, body, out_len)
    })
}

/// Frees bytes returned by `dpopkit_http_quick_get_bytes`, `dpopkit_http_quick_request_bytes`
/// or `dpopkit_http_last_response_body_bytes`, wiping them first. NULL is fine. The
/// caller may overwrite the bytes before freeing them.
///
/// # Safety
/// `p` must be NULL or a pointer returned by one of those functions and not yet freed;
/// never pass it to `free()`, and never free it twice.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dpopkit_bytes_free(p: *mut u8) {
    peek((), || unsafe { crate::ffi::strings::free_bytes(p) })
}

fn request(
    http: i64,
    ctx: &mut Ctx,
    method: Option<&str>,
    url: &str,
    content_type: Option<&str>,
    body: Option<&[u8]>,
) -> Result<*mut c_char, FfiError> {
    let obj = registry::http(http)?;
    ctx.requested = true;
    let resp = obj.client.request(method, url, content_type, body)?;
    // The C string is built straight from the body (one copy; `out` rejects a NUL).
    let result = match std::str::from_utf8(&resp.body) {
        Ok(text) if !text.contains('\0') => out(text),
        _ => Err(Error::new(
            ErrorKind::ResponseNotText,
            format!(
                "the response body ({} bytes, HTTP {}) is not UTF-8 text without NUL; read it as bytes with \
                 dpopkit_http_quick_get_bytes / dpopkit_http_quick_request_bytes (or dpopkit_http_last_response_body_bytes now)",
                resp.body.len(),
                resp.status
            ),
        )
        .into()),
    };
    ctx.response = Some(resp);
    result
}

/// GET `url`. With an AuthToken set, the first call fetches an access token (with a DPoP
/// proof, retrying once with a server nonce when asked), and every call sends
/// `Authorization: DPoP <token>` and a fresh `DPoP` proof. Returns the body of a 2xx
/// response; NULL otherwise (`dpopkit_http_last_status` gives the status, the error text
/// names it and the server's error).
///
/// Ownership: caller frees the result with `dpopkit_string_free`.
/// Thread safety: one Http handle may be used from many threads at once.
///
/// # Safety
/// `url` is a NUL-terminated UTF-8 string, borrowed for the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dpopkit_http_quick_get_str(http: i64, url: *const c_char) -> *mut c_char {
    run("dpopkit_http_quick_get_str", http, |ctx| {
        let url = unsafe { arg(url, "url") }?;
        request(http, ctx, Some("GET"), url, None, None)
    })
}

/// Any method with an optional body, e.g. `POST` with `application/json`. `content_type`
/// and `body` may be NULL (no body). Returns the body of a 2xx response, else NULL, as
/// `dpopkit_http_quick_get_str`. `method` is an RFC 9110 token (extension methods such as
/// `PROPFIND` are fine); `CONNECT`, `TRACE` and `TRACK` are refused with
/// `DPOPKIT_RESULT_INVALID_ARGUMENT` (a TRACE answer would echo the token and the proof).
///
/// Ownership: caller frees the result with `dpopkit_string_free`.
///
/// # Safety
/// `method` and `url` are NUL-terminated UTF-8 strings; `content_type` and `body` are NULL
/// or NUL-terminated UTF-8 strings; all borrowed for the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dpopkit_http_quick_request_str(
    http: i64,
    method: *const c_char,
    url: *const c_char,
    content_type: *const c_char,
    body: *const c_char,
) -> *mut c_char {
    run("dpopkit_http_quick_request_str", http, |ctx| {
        let method = unsafe { arg(method, "method") }?;
        let url = unsafe { arg(url, "url") }?;
        let content_type = unsafe { opt_arg(content_type, "content_type") }?;
        let body = unsafe { opt_arg(body, "body") }?;
        request(http, ctx, Some(method), url, content_type, body.map(str::as_bytes))
    })
}

/// HTTP status of the last request made through `http` on the calling thread (also after
/// a failed call), 0 when no response was received. Does not change the last error.
#[unsafe(no_mangle)]
pub extern "C" fn dpopkit_http_last_status(http: i64) -> c_int {
    peek(0, || if registry::http(http).is_ok() { last_for(http).status.into() } else { 0 })
}

/// 1 if the last call on `http` from the calling thread succeeded, else 0.
/// Does not change the last error.
#[unsafe(no_mangle)]
pub extern "C" fn dpopkit_http_last_method_success(http: i64) -> c_int {
    peek(0, || (registry::http(http).is_ok() && last_for(http).success).into())
}

/// Body of the last response received through `http` on the calling thread, whatever its
/// status ("" when none). Useful after a failed call to read the server's error document.
/// Credentials of the call that the server echoed back (secret, token, proof) are `****`.
/// NULL if it is not UTF-8 text. Does not change the last error.
///
/// Ownership: caller frees the result with `dpopkit_string_free`.
#[unsafe(no_mangle)]
pub extern "C" fn dpopkit_http_last_response_body(http: i64) -> *mut c_char {
    peek(std::ptr::null_mut(), || {
        if registry::http(http).is_err() {
            return std::ptr::null_mut();
        }
        let last = last_for(http);
        let body = last.response.as_ref().map_or(&[][..], |r| &r.body[..]);
        std::str::from_utf8(body).ok().and_then(|s| out(s).ok()).unwrap_or(std::ptr::null_mut())
    })
}

/// Headers of the last response received through `http` on the calling thread, as
/// `Name: value` lines separated by CRLF ("" when none). Does not change the last error.
///
/// Ownership: caller frees the result with `dpopkit_string_free`.
#[unsafe(no_mangle)]
pub extern "C" fn dpopkit_http_last_response_header(http: i64) -> *mut c_char {
    peek(std::ptr::null_mut(), || {
        if registry::http(http).is_err() {
            return std::ptr::null_mut();
        }
        let text = last_for(http).response.as_ref().map(|r| r.header_text()).unwrap_or_default();
        out(&text).unwrap_or(std::ptr::null_mut())
    })
}

/// The value of the header `name` of the last response received through `http` on the
/// calling thread (after a failed call too): `name` compares case-insensitively, and the
/// values of a header sent more than once are joined with ", ". Returns NULL with
/// `DPOPKIT_RESULT_NOT_FOUND` when the response has no such header (or there was no
/// response). A successful lookup does not change the last error, so after a failed call
/// `Retry-After` can be read before `dpopkit_last_error_text`; a failed one sets it. The
/// last status and response are never changed.
///
/// Ownership: caller frees the result with `dpopkit_string_free`.
///
/// # Safety
/// `name` is a NUL-terminated UTF-8 string, borrowed for the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dpopkit_http_last_response_header_value(http: i64, name: *const c_char) -> *mut c_char {
    run_getter("dpopkit_http_last_response_header_value", http, || {
        registry::http(http)?;
        let name = unsafe { arg(name, "name") }?;
        let last = last_for(http);
        let Some(resp) = last.response.as_ref() else {
            return Err(FfiError::new(dpopkit_result::NotFound, "there is no last response to read a header from"));
        };
        match resp.header_joined(name) {
            Some(v) => out(&v),
            None => Err(FfiError::new(
                dpopkit_result::NotFound,
                format!("the last response (HTTP {}) has no header '{}'", resp.status, crate::core::error::shorten(name)),
            )),
        }
    })
}

/// The standard reason phrase of the last status received through `http` on the calling
/// thread: "OK", "Created", "Not Found", ...; "" when no response was received or the
/// status has no standard phrase. (The phrase a server wrote is not kept: HTTP/2 has none
/// and RFC 9110 tells clients to ignore it.) NULL only for an invalid handle.
/// Does not change the last error.
///
/// Ownership: caller frees the result with `dpopkit_string_free`.
#[unsafe(no_mangle)]
pub extern "C" fn dpopkit_http_last_status_text(http: i64) -> *mut c_char {
    peek(std::ptr::null_mut(), || {
        if registry::http(http).is_err() {
            return std::ptr::null_mut();
        }
        let last = last_for(http);
        out(crate::core::http::status_text(last.status)).unwrap_or(std::ptr::null_mut())
    })
}

/// Body of the last response received through `http` on the calling thread, whatever its
/// status, as bytes (any byte values); `*out_len` of them. No response yet, or an empty
/// body: a valid non-NULL pointer with `*out_len` = 0. Credentials of the call that the
/// server echoed back are `****`. Returns NULL (with `*out_len` 0) only on a failure:
/// `out_len` NULL (`DPOPKIT_RESULT_NULL_ARGUMENT`) or an invalid handle. A success does
/// not change the last error, nor does anything change the last status and response.
///
/// Ownership: caller frees the result with `dpopkit_bytes_free` (never `free()`).
///
/// # Safety
/// `out_len` points to a writable `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dpopkit_http_last_response_body_bytes(http: i64, out_len: *mut usize) -> *mut u8 {
    run_getter("dpopkit_http_last_response_body_bytes", http, || {
        unsafe { start_out_len(out_len) }?;
        registry::http(http)?;
        let last = last_for(http);
        let body = last.response.as_ref().map_or(&[][..], |r| &r.body[..]);
        Ok(unsafe { give_bytes(body, out_len) })
    })
}

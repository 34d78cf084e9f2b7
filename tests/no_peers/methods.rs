//! Methods through the C ABI: RFC 9110 tokens only, and never CONNECT (a tunnel, not a
//! request) or TRACE/TRACK (the server would echo the token and the proof back). A refused
//! method sends nothing.

use crate::common::capi::{c, take, text as last_text};
use crate::common::fault::{FaultServer, json};
use dpopkit::capi::common::*;
use dpopkit::capi::http::*;
use dpopkit::capi::key::*;
use dpopkit::dpopkit_result as R;

#[test]
fn connect_and_trace_are_refused_before_anything_is_sent() {
    let srv = FaultServer::start(|r| {
        if r.path == "/token" {
            json(200, r#"{"access_token":"method-test-token","token_type":"DPoP","expires_in":300}"#)
        } else {
            json(200, r#"{"ok":true}"#)
        }
    });
    let key = dpopkit_key_new();
    assert_eq!(dpopkit_key_generate(key), 1);
    let h = dpopkit_http_new();
    assert_eq!(dpopkit_http_set_dpop_key(h, key), 1);
    assert_eq!(unsafe { dpopkit_http_set_proxy(h, c("").as_ptr()) }, 1);
    let auth = serde_json::json!({"client_id":"m2m.dpop","client_secret":"secret","token_endpoint":srv.url("/token")});
    assert_eq!(unsafe { dpopkit_http_set_auth_token(h, c(&auth.to_string()).as_ptr()) }, 1);
    let api = c(&srv.url("/api"));
    for method in ["CONNECT", "connect", "TRACE", "trace", "TRACK", "GET /x", "GET\r\nX-Injected: 1", ""] {
        let m = c(method);
        let out = unsafe { dpopkit_http_quick_request_str(h, m.as_ptr(), api.as_ptr(), std::ptr::null(), std::ptr::null()) };
        assert!(out.is_null(), "{method:?} was sent");
        assert_eq!(dpopkit_last_error_code(h), R::InvalidArgument as u32, "{method:?}: {}", last_text(h));
        assert!(last_text(h).contains("method"), "{}", last_text(h));
    }
    assert!(srv.requests().is_empty(), "a refused method reached the server: {:?}", srv.requests());
    // The control: an ordinary extension method goes through.
    let m = c("PROPFIND");
    let out = take(unsafe { dpopkit_http_quick_request_str(h, m.as_ptr(), api.as_ptr(), std::ptr::null(), std::ptr::null()) });
    assert!(out.is_some(), "{}", last_text(h));
    assert!(srv.requests().iter().any(|r| r.method == "PROPFIND"));
    dpopkit_destroy(h);
    dpopkit_destroy(key);
}

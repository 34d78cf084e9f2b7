//! The C ABI called from Rust against the real peers: last call state is per handle and
//! thread; the extras (export, other verbs, last response); errors that name the cause;
//! destroying handles while other threads use them, and handle leak accounting (in a child
//! process of its own, so no other test's handles are counted).

use crate::common;

use crate::common::Peers;
use crate::common::capi::{Client, c, code, take, text};
use dpopkit::capi::common::*;
use dpopkit::capi::http::*;
use dpopkit::capi::json::*;
use dpopkit::capi::key::*;
use dpopkit::dpopkit_result as R;

#[test]
fn last_status_response_and_other_verbs() {
    let peers = Peers::start(&["--rs-nonce"]);
    let cl = Client::new(&peers);
    let body = cl.get(&peers.api).unwrap();
    assert!(body.contains("m2m.dpop"));
    assert_eq!(dpopkit_http_last_status(cl.http), 200);
    assert_eq!(dpopkit_http_last_method_success(cl.http), 1);
    let headers = take(dpopkit_http_last_response_header(cl.http)).unwrap();
    assert!(headers.contains("DPoP-Nonce: ") && headers.contains("\r\n"), "{headers}");
    assert_eq!(take(dpopkit_http_last_response_body(cl.http)).unwrap(), body);
    // A 404: NULL, HTTP_STATUS, the status, the body still readable.
    assert!(cl.get(&format!("{}/elsewhere", peers.rs)).is_none());
    assert_eq!(code(cl.http), R::HttpStatus as u32);
    assert_eq!(dpopkit_http_last_status(cl.http), 404);
    assert_eq!(dpopkit_http_last_method_success(cl.http), 0);
    assert!(text(cl.http).contains("404"), "{}", text(cl.http));
    assert!(take(dpopkit_http_last_response_body(cl.http)).is_some());
    // POST with a body, authenticated with a proof whose htm is POST.
    let r = unsafe {
        dpopkit_http_quick_request_str(
            cl.http,
            c("POST").as_ptr(),
            c(&peers.api).as_ptr(),
            c("application/json").as_ptr(),
            c(r#"{"hello":"world"}"#).as_ptr(),
        )
    };
    let r = take(r).unwrap_or_else(|| panic!("{}", text(cl.http)));
    assert!(r.contains("request_body") && r.contains("hello"), "{r}");
    for m in ["PUT", "DELETE"] {
        let r =
            unsafe { dpopkit_http_quick_request_str(cl.http, c(m).as_ptr(), c(&peers.api).as_ptr(), std::ptr::null(), std::ptr::null()) };
        assert!(take(r).is_some(), "{m}: {}", text(cl.http));
    }
    assert_eq!(peers.tokens_issued(), 1);
}

#[test]
fn last_call_state_is_per_thread_on_a_shared_handle() {
    let peers = Peers::start(&[]);
    let cl = Client::new(&peers);
    let http = cl.http;
    let ok_url = peers.api.clone();
    let bad_url = format!("{}/missing", peers.rs);
    std::thread::scope(|s| {
        for i in 0..8 {
            let url = if i % 2 == 0 { ok_url.clone() } else { bad_url.clone() };
            s.spawn(move || {
                for _ in 0..20 {
                    let r = take(unsafe { dpopkit_http_quick_get_str(http, c(&url).as_ptr()) });
                    if i % 2 == 0 {
                        assert!(r.is_some(), "{}", text(http));
                        assert_eq!(dpopkit_http_last_status(http), 200);
                        assert_eq!(code(http), R::Ok as u32);
                        assert_eq!(text(http), "");
                    } else {
                        assert!(r.is_none());
                        assert_eq!(dpopkit_http_last_status(http), 404);
                        assert_eq!(code(http), R::HttpStatus as u32);
                    }
                }
            });
        }
    });
    assert_eq!(peers.tokens_issued(), 1);
    assert_eq!(peers.rs_stats()["ok"], 80);
}

#[test]
fn errors_from_the_token_endpoint_name_the_cause_and_hide_the_secret() {
    let peers = Peers::start(&[]);
    let key = dpopkit_key_new();
    dpopkit_key_generate(key);
    let json = dpopkit_json_new();
    let http = dpopkit_http_new();
    unsafe {
        dpopkit_json_update_string(json, c("client_secret").as_ptr(), c("wrong-secret-value").as_ptr());
        dpopkit_json_update_string(json, c("client_id").as_ptr(), c("m2m.dpop").as_ptr());
        dpopkit_json_update_string(json, c("token_endpoint").as_ptr(), c(&peers.token_endpoint).as_ptr());
        let auth = dpopkit_json_emit(json);
        assert_eq!(dpopkit_http_set_auth_token(http, auth), 1);
        dpopkit_string_free(auth);
        // An AuthToken without a key is a clear error.
        assert!(dpopkit_http_quick_get_str(http, c(&peers.api).as_ptr()).is_null());
        assert_eq!(code(http), R::NoKey as u32);
        assert!(text(http).contains("set_dpop_key"));
        dpopkit_http_set_dpop_key(http, key);
        assert!(dpopkit_http_quick_get_str(http, c(&peers.api).as_ptr()).is_null());
    }
    assert_eq!(code(http), R::TokenEndpoint as u32);
    assert_eq!(dpopkit_http_last_status(http), 401);
    let t = text(http);
    assert!(t.contains("invalid_client") && t.contains(&peers.token_endpoint), "{t}");
    assert!(!t.contains("wrong-secret-value"));
    let body = take(dpopkit_http_last_response_body(http)).unwrap();
    assert!(body.contains("invalid_client"));
    for h in [key, json, http] {
        dpopkit_destroy(h);
    }
}

/// An AuthToken member that looks like a misspelt known one is refused with the known name
/// (it used to go to the token endpoint as an extra form field, and the token came back
/// without the scope); `param:NAME` sends such a field on purpose.
#[test]
fn misspelt_auth_token_members_are_refused_by_name() {
    let peers = Peers::start(&[]);
    let http = dpopkit_http_new();
    let key = dpopkit_key_new();
    dpopkit_key_generate(key);
    dpopkit_http_set_dpop_key(http, key);
    let base = format!(r#""client_id":"m2m.dpop","client_secret":"secret","token_endpoint":"{}""#, peers.token_endpoint);
    for (member, known) in [("scpoe", "scope"), ("client_auth_methd", "client_auth_method"), ("Scope", "scope")] {
        let auth = format!(r#"{{{base},"{member}":"api"}}"#);
        assert_eq!(unsafe { dpopkit_http_set_auth_token(http, c(&auth).as_ptr()) }, 0, "{member} is refused");
        assert_eq!(code(http), R::AuthToken as u32);
        let t = text(http);
        assert!(t.contains(&format!("\"{member}\"")) && t.contains(&format!("did you mean \"{known}\"")), "{t}");
    }
    // The real member and a look-alike sent on purpose: a token and a 200.
    let auth = format!(r#"{{{base},"scope":"api","param:scopes":"x"}}"#);
    assert_eq!(unsafe { dpopkit_http_set_auth_token(http, c(&auth).as_ptr()) }, 1, "{}", text(http));
    let body = take(unsafe { dpopkit_http_quick_get_str(http, c(&peers.api).as_ptr()) });
    assert!(body.is_some(), "{}", text(http));
    assert_eq!(dpopkit_http_last_status(http), 200);
    dpopkit_destroy(http);
    dpopkit_destroy(key);
}

/// "connection refused" says which server refused: the token endpoint or the resource
/// server, with the URL's path (and never its query).
#[test]
fn refused_connections_name_the_server_and_its_path() {
    let peers = Peers::start(&[]);
    let key = dpopkit_key_new();
    dpopkit_key_generate(key);
    let dead = common::closed_port();
    let http = dpopkit_http_new();
    dpopkit_http_set_dpop_key(http, key);
    let auth = format!(
        r#"{{"client_id":"m2m.dpop","client_secret":"secret","token_endpoint":"http://127.0.0.1:{dead}/oauth/token","scope":"api"}}"#
    );
    assert_eq!(unsafe { dpopkit_http_set_auth_token(http, c(&auth).as_ptr()) }, 1);
    assert!(unsafe { dpopkit_http_quick_get_str(http, c(&peers.api).as_ptr()) }.is_null());
    let t = text(http);
    assert!(t.contains(&format!("the token endpoint http://127.0.0.1:{dead}/oauth/token")) && t.contains("connection refused"), "{t}");
    assert!(!t.contains("the resource server"), "{t}");
    // A token from the real AS, then an API on a dead port.
    let http2 = dpopkit_http_new();
    dpopkit_http_set_dpop_key(http2, key);
    assert_eq!(unsafe { dpopkit_http_set_auth_token(http2, c(&peers.auth_token()).as_ptr()) }, 1);
    let api = format!("http://127.0.0.1:{dead}/v1/items?api_key=hidden-query-value");
    assert!(unsafe { dpopkit_http_quick_get_str(http2, c(&api).as_ptr()) }.is_null());
    let t = text(http2);
    assert!(t.contains(&format!("the resource server http://127.0.0.1:{dead}/v1/items")) && t.contains("connection refused"), "{t}");
    assert!(!t.contains("hidden-query-value"), "the query is not shown: {t}");
    for h in [http, http2, key] {
        dpopkit_destroy(h);
    }
}

#[test]
fn destroy_during_use_and_no_leaked_handles() {
    // Process-wide counters: in a process of its own (the other tests of the binary run meanwhile).
    if !common::alone(module_path!(), "destroy_during_use_and_no_leaked_handles") {
        return;
    }
    let before = dpopkit_live_handles();
    let peers = Peers::start(&[]);
    {
        let cl = Client::new(&peers);
        assert!(cl.get(&peers.api).is_some());
        // Destroying the key object does not break the Http, which holds its own reference.
        assert_eq!(dpopkit_destroy(cl.key), 1);
        assert!(cl.get(&peers.api).is_some());
        // Destroying the Http while other threads use it: they finish or get INVALID_HANDLE.
        let http = cl.http;
        let api = peers.api.clone();
        std::thread::scope(|s| {
            let workers: Vec<_> = (0..4)
                .map(|_| {
                    let api = api.clone();
                    s.spawn(move || {
                        // Keep calling until the handle goes away (bounded).
                        for _ in 0..5000 {
                            if take(unsafe { dpopkit_http_quick_get_str(http, c(&api).as_ptr()) }).is_none() {
                                assert_eq!(code(0), R::InvalidHandle as u32, "{}", text(0));
                                return 1;
                            }
                        }
                        0
                    })
                })
                .collect();
            std::thread::sleep(std::time::Duration::from_millis(20));
            assert_eq!(dpopkit_destroy(http), 1);
            let invalid: i32 = workers.into_iter().map(|w| w.join().unwrap()).sum();
            assert_eq!(invalid, 4, "every thread's calls after destroy fail with INVALID_HANDLE");
        });
    }
    assert_eq!(dpopkit_live_handles(), before, "handles leaked");
}

//! Per-thread last-call state through the C ABI: a thread's state dies with the thread
//! (many short-lived threads with large responses do not pile up memory), and a live
//! thread's result is never lost however many other threads come and go, and a call from a
//! thread-local destructor after dpopkit's own are gone still works.

use std::sync::{Arc, Barrier, Mutex};

use crate::common;
use crate::common::capi::{c, take};
use crate::common::fault::{Action, FaultServer};
use crate::common::hostile::{long_token, token_ok};
use dpopkit::capi::common::{dpopkit_destroy, dpopkit_last_error_code, dpopkit_last_error_text};
use dpopkit::capi::http::*;
use dpopkit::ffi::boundary::{held_response_bytes, thread_states};

/// The tests here read process-wide counters: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

const MIB: usize = 1 << 20;

#[test]
fn short_lived_threads_leave_no_state_behind() {
    // Process-wide counters: in a process of its own (the other tests of the binary run meanwhile).
    if !common::alone(module_path!(), "short_lived_threads_leave_no_state_behind") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let srv = FaultServer::start(|_| Action::Respond(200, vec![("Content-Type".into(), "text/plain".into())], vec![b'x'; MIB]));
    let http = dpopkit_http_new();
    assert_eq!(unsafe { dpopkit_http_set_proxy(http, c("").as_ptr()) }, 1);
    let url = srv.url("/big");
    let before = held_response_bytes();
    for _batch in 0..10 {
        let threads: Vec<_> = (0..30)
            .map(|_| {
                let url = url.clone();
                std::thread::spawn(move || {
                    let body = take(unsafe { dpopkit_http_quick_get_str(http, c(&url).as_ptr()) });
                    assert_eq!(body.map(|b| b.len()), Some(MIB), "{}", take(dpopkit_last_error_text(http)).unwrap());
                    assert_eq!(dpopkit_http_last_status(http), 200);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }
    let held = held_response_bytes().saturating_sub(before);
    assert!(held < 2 * MIB, "300 ended threads still hold {} MiB of responses", held / MIB);
    assert_eq!(thread_states(http), 1, "the ended threads' states are gone; this thread's (set_proxy) is kept");
    // The handle still works for a thread that is alive.
    assert!(take(unsafe { dpopkit_http_quick_get_str(http, c(&url).as_ptr()) }).is_some());
    assert_eq!(thread_states(http), 1);
    assert_eq!(dpopkit_http_last_status(http), 200);
    assert!(held_response_bytes() >= MIB);
    dpopkit_destroy(http);
}

#[test]
fn a_live_threads_failure_survives_five_thousand_other_threads() {
    // Process-wide counters: in a process of its own (the other tests of the binary run meanwhile).
    if !common::alone(module_path!(), "a_live_threads_failure_survives_five_thousand_other_threads") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let http = dpopkit_http_new();
    let failed = Arc::new(Barrier::new(2));
    let others_done = Arc::new(Barrier::new(2));
    let (f, o) = (failed.clone(), others_done.clone());
    let live = std::thread::spawn(move || {
        assert_eq!(unsafe { dpopkit_http_set_auth_token(http, c("not json").as_ptr()) }, 0);
        let code = dpopkit_last_error_code(http);
        assert_ne!(code, 0);
        f.wait();
        o.wait();
        let text = take(dpopkit_last_error_text(http)).unwrap();
        (code, dpopkit_last_error_code(http), dpopkit_http_last_method_success(http), text)
    });
    failed.wait();
    for _batch in 0..50 {
        let threads: Vec<_> = (0..100)
            .map(|_| {
                std::thread::spawn(move || {
                    assert_eq!(unsafe { dpopkit_http_set_session_log_filename(http, c("").as_ptr()) }, 1);
                    assert_eq!(dpopkit_last_error_code(http), 0);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }
    let states = thread_states(http);
    others_done.wait();
    let (code, after, success, text) = live.join().unwrap();
    assert_eq!(after, code, "the live thread's failure reads back as {after} after 5000 other threads");
    assert_eq!(success, 0);
    assert!(text.contains("not valid JSON"), "{text}");
    assert_eq!(states, 1, "the 5000 ended threads' states are gone, the live one's kept");
    dpopkit_destroy(http);
}

/// A thread that calls dpopkit from a thread-local destructor of its own (C++ and Rust
/// programs do: a pooled client closed in a `thread_local` destructor), after dpopkit's
/// own thread-locals are gone: the call must work (or fail with a text that says why),
/// never panic (`DPOPKIT_RESULT_PANIC`, "please report this bug") and never abort.
#[test]
fn a_call_from_a_thread_local_destructor_after_dpopkits_are_gone() {
    use crate::common::capi::{c, take};
    use dpopkit::capi::common::{dpopkit_destroy, dpopkit_last_error_code, dpopkit_last_error_text};
    use dpopkit::capi::http::{
        dpopkit_http_last_status, dpopkit_http_new, dpopkit_http_quick_get_str, dpopkit_http_set_auth_token, dpopkit_http_set_dpop_key,
    };
    use dpopkit::capi::key::{dpopkit_key_generate, dpopkit_key_new};
    use std::sync::Mutex;

    /// Body, result code, error text and status of the late call.
    type Outcome = (Option<String>, u32, Option<String>, i32);
    static OUTCOME: Mutex<Option<Outcome>> = Mutex::new(None);
    struct CallsOnDrop(String);
    impl Drop for CallsOnDrop {
        fn drop(&mut self) {
            // With an AuthToken: the token fetch, the proof and the secret set all run.
            let key = dpopkit_key_new();
            assert_eq!(dpopkit_key_generate(key), 1);
            let http = dpopkit_http_new();
            assert_eq!(dpopkit_http_set_dpop_key(http, key), 1);
            let auth =
                serde_json::json!({"client_id": "m2m", "client_secret": "late-secret", "token_endpoint": format!("{}/token", self.0)});
            assert_eq!(unsafe { dpopkit_http_set_auth_token(http, c(&auth.to_string()).as_ptr()) }, 1);
            let body = take(unsafe { dpopkit_http_quick_get_str(http, c(&format!("{}/late", self.0)).as_ptr()) });
            let code = dpopkit_last_error_code(http);
            let text = take(dpopkit_last_error_text(http));
            let status = dpopkit_http_last_status(http);
            dpopkit_destroy(http);
            dpopkit_destroy(key);
            *OUTCOME.lock().unwrap() = Some((body, code, text, status));
        }
    }
    thread_local! {
        static LATE: std::cell::RefCell<Option<CallsOnDrop>> = const { std::cell::RefCell::new(None) };
    }

    let token = long_token();
    let srv = FaultServer::start(move |r| {
        if r.path.starts_with("/token") {
            return token_ok(&token);
        }
        let bound = r.header("authorization").is_some_and(|a| a.starts_with("DPoP ")) && r.header("dpop").is_some();
        Action::Respond(200, vec![], if bound || r.path == "/plain" { b"hello".to_vec() } else { b"unbound".to_vec() })
    });
    let base = srv.url("");
    std::thread::spawn(move || {
        // Registered first, so destroyed last: after every thread-local dpopkit sets up
        // during the call below.
        LATE.with(|l| *l.borrow_mut() = Some(CallsOnDrop(base.clone())));
        let http = dpopkit_http_new();
        let plain = format!("{base}/plain");
        assert_eq!(take(unsafe { dpopkit_http_quick_get_str(http, c(&plain).as_ptr()) }).as_deref(), Some("hello"));
        dpopkit_destroy(http);
    })
    .join()
    .expect("the thread ended normally (no abort, no panic out of a destructor)");
    let (body, code, text, status) = OUTCOME.lock().unwrap().take().expect("the destructor ran its call");
    assert_ne!(code, dpopkit::ffi::result::dpopkit_result::Panic as u32, "a panic inside dpopkit: {text:?}");
    assert_eq!((body.as_deref(), code, status), (Some("hello"), 0, 200), "the late call works: {text:?}");
}

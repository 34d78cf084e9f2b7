//! Per-thread last-call state through the C ABI: a thread's state dies with the thread
//! (many short-lived threads with large responses do not pile up memory), and a live
//! thread's result is never lost however many other threads come and go.

mod common;

use std::sync::{Arc, Barrier, Mutex};

use common::capi::{c, take};
use common::fault::{Action, FaultServer};
use dpopkit::capi::common::{dpopkit_destroy, dpopkit_last_error_code, dpopkit_last_error_text};
use dpopkit::capi::http::*;
use dpopkit::ffi::boundary::{held_response_bytes, thread_states};

/// The tests here read process-wide counters: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

const MIB: usize = 1 << 20;

#[test]
fn short_lived_threads_leave_no_state_behind() {
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

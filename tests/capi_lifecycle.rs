//! Destroying handles while other threads use them, and handle leak accounting. Its own
//! test binary, so no other test's handles are counted.

mod common;

use std::ffi::{CStr, CString, c_char};

use common::Peers;
use dpopkit::capi::common::*;
use dpopkit::capi::http::*;
use dpopkit::capi::key::*;
use dpopkit::dpopkit_result as R;

fn c(s: &str) -> CString {
    CString::new(s).unwrap()
}

/// Takes ownership of a returned string.
fn take(p: *mut c_char) -> Option<String> {
    if p.is_null() {
        return None;
    }
    let s = unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_string();
    unsafe { dpopkit_string_free(p) };
    Some(s)
}

fn code(h: i64) -> u32 {
    dpopkit_last_error_code(h)
}

fn text(h: i64) -> String {
    take(dpopkit_last_error_text(h)).unwrap()
}

struct Client {
    key: i64,
    http: i64,
}

impl Client {
    fn new(peers: &Peers) -> Client {
        let key = dpopkit_key_new();
        assert_eq!(dpopkit_key_generate(key), 1);
        let http = dpopkit_http_new();
        assert_eq!(dpopkit_http_set_dpop_key(http, key), 1);
        assert_eq!(unsafe { dpopkit_http_set_auth_token(http, c(&peers.auth_token()).as_ptr()) }, 1);
        Client { key, http }
    }

    fn get(&self, url: &str) -> Option<String> {
        take(unsafe { dpopkit_http_quick_get_str(self.http, c(url).as_ptr()) })
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        dpopkit_destroy(self.http);
        dpopkit_destroy(self.key);
    }
}

#[test]
fn destroy_during_use_and_no_leaked_handles() {
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

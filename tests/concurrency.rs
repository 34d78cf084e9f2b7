//! Many threads, one Http handle or many: no failure, no deadlock, one token fetch per
//! token lifetime, each thread's last status its own. Through the C ABI, against the real
//! authorization and resource servers.

mod common;

use std::ffi::{CStr, CString};
use std::time::{Duration, Instant};

use common::Peers;
use dpopkit::capi::common::*;
use dpopkit::capi::http::*;
use dpopkit::capi::key::*;

const THREADS: usize = 8;

fn new_http(peers: &Peers, key: i64) -> i64 {
    let http = dpopkit_http_new();
    assert_eq!(dpopkit_http_set_dpop_key(http, key), 1);
    let auth = CString::new(peers.auth_token()).unwrap();
    assert_eq!(unsafe { dpopkit_http_set_auth_token(http, auth.as_ptr()) }, 1);
    http
}

/// Runs `per_thread` GETs on each thread; thread i uses `handles[i % len]`.
/// Odd threads also hit a 404 now and then to prove their last status stays theirs.
fn hammer(peers: &Peers, handles: &[i64], per_thread: usize, pause: Duration) -> usize {
    let api = CString::new(peers.api.clone()).unwrap();
    let missing = CString::new(format!("{}/missing", peers.rs)).unwrap();
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|i| {
                let (api, missing, http) = (&api, &missing, handles[i % handles.len()]);
                s.spawn(move || {
                    let mut ok = 0;
                    for n in 0..per_thread {
                        let want_404 = i % 2 == 1 && n % 50 == 0;
                        let url = if want_404 { missing } else { api };
                        let r = unsafe { dpopkit_http_quick_get_str(http, url.as_ptr()) };
                        let status = dpopkit_http_last_status(http);
                        if want_404 {
                            assert!(r.is_null());
                            assert_eq!(status, 404, "thread {i}: another thread's status leaked in");
                        } else {
                            if r.is_null() {
                                let t = dpopkit_last_error_text(http);
                                let text = unsafe { CStr::from_ptr(t) }.to_string_lossy().into_owned();
                                unsafe { dpopkit_string_free(t) };
                                panic!("thread {i} call {n}: {text}");
                            }
                            assert_eq!(status, 200, "thread {i}");
                            unsafe { dpopkit_string_free(r) };
                            ok += 1;
                        }
                        if !pause.is_zero() {
                            std::thread::sleep(pause);
                        }
                    }
                    ok
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    })
}

#[test]
fn eight_threads_share_one_handle() {
    let peers = Peers::start(&["--as-nonce", "--rs-nonce"]);
    let key = dpopkit_key_new();
    assert_eq!(dpopkit_key_generate(key), 1);
    let http = new_http(&peers, key);
    let ok = hammer(&peers, &[http], 500, Duration::ZERO);
    assert_eq!(ok, THREADS * 500 - 4 * 10);
    assert_eq!(peers.tokens_issued(), 1, "exactly one token for 4000 requests on 8 threads");
    assert_eq!(peers.rs_stats()["ok"].as_u64(), Some(ok as u64));
    dpopkit_destroy(http);
    dpopkit_destroy(key);
}

#[test]
fn eight_handles_with_the_same_settings_share_one_token() {
    let peers = Peers::start(&[]);
    let key = dpopkit_key_new();
    assert_eq!(dpopkit_key_generate(key), 1);
    let handles: Vec<i64> = (0..THREADS).map(|_| new_http(&peers, key)).collect();
    let ok = hammer(&peers, &handles, 100, Duration::ZERO);
    assert_eq!(ok, THREADS * 100 - 4 * 2);
    assert_eq!(peers.token_requests(), 1, "one token request for 8 handles");
    for h in handles {
        dpopkit_destroy(h);
    }
    dpopkit_destroy(key);
}

#[test]
fn short_token_lifetime_means_one_fetch_per_lifetime_not_per_thread() {
    let peers = Peers::start(&["--ttl", "4"]);
    let key = dpopkit_key_new();
    assert_eq!(dpopkit_key_generate(key), 1);
    let http = new_http(&peers, key);
    let t0 = Instant::now();
    hammer(&peers, &[http], 160, Duration::from_millis(50)); // ~8 s with 8 threads
    let elapsed = t0.elapsed().as_secs_f64();
    let issued = peers.tokens_issued() as f64;
    // A 4 s token is renewed 1 s before it expires: one fetch per 3 s, whatever the threads.
    let max = (elapsed / 3.0).ceil() + 1.0;
    assert!(issued >= (elapsed / 4.0).floor(), "tokens were not renewed: {issued} in {elapsed:.1} s");
    assert!(issued <= max, "{issued} token fetches in {elapsed:.1} s (at most {max})");
    assert_eq!(peers.rs_stats()["rejected"].as_u64(), Some(0), "no request went out with an expired token");
    dpopkit_destroy(http);
    dpopkit_destroy(key);
}

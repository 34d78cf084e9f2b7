//! Many threads, one Http handle or many: no failure, no deadlock, one token fetch per
//! token lifetime, each thread's last status its own. Through the C ABI, against the real
//! authorization and resource servers.

use std::ffi::{CStr, CString};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use crate::common::Peers;
use crate::common::fault::{FaultServer, json};
use dpopkit::capi::common::*;
use dpopkit::capi::http::*;
use dpopkit::capi::key::*;
use dpopkit::core::{EcKey, ErrorKind, HttpClient};

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
    assert_eq!(peers.rs_stats()["rejected"].as_u64(), Some(0), "no request went out with an expired token: {}", peers.rs_stats());
    dpopkit_destroy(http);
    dpopkit_destroy(key);
}

/// A token endpoint that issues `ttl`-second tokens until `fail` is set, then answers 503
/// after `delay`; it counts its requests. The API answers 200 naming the token it was sent
/// ("got-N" for `DPoP flaky-N`: an echo of the token itself would be masked as a secret).
fn flaky_token_endpoint(ttl: u64, delay: Duration, fail: Arc<AtomicBool>) -> (FaultServer, Arc<AtomicU32>) {
    let count = Arc::new(AtomicU32::new(0));
    let c = count.clone();
    let srv = FaultServer::start(move |r| {
        if r.path != "/token" {
            let token = r.header("authorization").unwrap_or("none");
            let name = token.strip_prefix("DPoP flaky-").map_or("none".to_string(), |n| format!("got-{n}"));
            return json(200, &serde_json::json!({ "sent": name }).to_string());
        }
        let n = c.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(delay);
        if fail.load(Ordering::SeqCst) {
            json(503, r#"{"error":"temporarily_unavailable","error_description":"down for maintenance"}"#)
        } else {
            json(200, &format!(r#"{{"access_token":"flaky-{n}","token_type":"DPoP","expires_in":{ttl}}}"#))
        }
    });
    (srv, count)
}

fn core_http(srv: &FaultServer) -> HttpClient {
    let http = HttpClient::new();
    http.set_dpop_key(Arc::new(EcKey::generate().unwrap()));
    let auth = serde_json::json!({"client_id":"m2m.dpop","client_secret":"secret","token_endpoint":srv.url("/token")});
    http.set_auth_token(&auth.to_string()).unwrap();
    http
}

#[test]
fn a_failed_fetch_for_an_expired_token_is_shared_by_all_waiters_then_backs_off() {
    let fail = Arc::new(AtomicBool::new(false));
    let (srv, count) = flaky_token_endpoint(1, Duration::from_millis(300), fail.clone());
    let http = core_http(&srv);
    http.quick_get_str(&srv.url("/api")).unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 1);
    std::thread::sleep(Duration::from_millis(1200)); // the cached token has expired
    fail.store(true, Ordering::SeqCst);
    let barrier = Barrier::new(THREADS);
    let errors: Vec<_> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    http.quick_get_str(&srv.url("/api")).unwrap_err()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    for e in &errors {
        assert_eq!(e.kind, ErrorKind::TokenEndpoint, "{e}");
        assert!(e.message.contains("503"), "{}", e.message);
    }
    // Before the fix every waiter found the expired token and fetched again: 8 requests.
    assert_eq!(count.load(Ordering::SeqCst), 2, "{THREADS} threads, one token request for the round");
    // Right after a failure, calls share it instead of asking again (a short back-off)...
    let e = http.quick_get_str(&srv.url("/api")).unwrap_err();
    assert_eq!(e.kind, ErrorKind::TokenEndpoint);
    assert!(e.message.contains("503") && e.message.contains("again"), "{}", e.message);
    assert_eq!(count.load(Ordering::SeqCst), 2, "no token request during the back-off");
    // ...and after it, ask again (and succeed once the server is back).
    fail.store(false, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(2100));
    let (body, _) = http.quick_get_str(&srv.url("/api")).unwrap();
    assert!(body.contains("got-2"), "{body}");
    assert_eq!(count.load(Ordering::SeqCst), 3);
}

#[test]
fn a_failed_early_refresh_keeps_using_the_valid_token() {
    // A 40 s token is renewed 4 s before it expires and sent until 2 s before (the server's
    // exp is in whole seconds; the request needs time to arrive). The renewal fails 3.5 s
    // before expiry: the token is still good, so the request goes out with it and succeeds.
    // (A token of under 20 s has no such grace: it is not sent past its renewal time.)
    let fail = Arc::new(AtomicBool::new(false));
    let (srv, count) = flaky_token_endpoint(40, Duration::ZERO, fail.clone());
    let http = core_http(&srv);
    let (body, _) = http.quick_get_str(&srv.url("/api")).unwrap();
    assert!(body.contains("got-0"));
    std::thread::sleep(Duration::from_millis(36_500));
    fail.store(true, Ordering::SeqCst);
    let (body, _) = http.quick_get_str(&srv.url("/api")).expect("the cached token is still valid");
    assert!(body.contains("got-0"), "{body}");
    assert_eq!(count.load(Ordering::SeqCst), 2, "the refresh was tried");
    // During the back-off the valid token is used without asking the failing server again.
    let (body, _) = http.quick_get_str(&srv.url("/api")).unwrap();
    assert!(body.contains("got-0"), "{body}");
    assert_eq!(count.load(Ordering::SeqCst), 2, "no second refresh within the back-off");
}

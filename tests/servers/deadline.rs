//! One deadline per call: `request_ms` (Settings::request_timeout) bounds the whole call —
//! every redirect hop, every nonce / invalid_token / clock-skew retry and the token
//! requests — and the retries are shared by the hops of a call; a body dripped byte by byte
//! is bounded too, and u32::MAX milliseconds works. Hostile scripted servers on
//! 127.0.0.1 (tests/common/fault.rs).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::common::fault::{Action, FaultServer, Received, json};
use dpopkit::core::{EcKey, ErrorKind, HttpClient};

fn http_with(token_endpoint: &str, key: &Arc<EcKey>, request_ms: u64) -> HttpClient {
    let http = HttpClient::new();
    http.set_dpop_key(key.clone());
    let auth = serde_json::json!({"client_id":"m2m.dpop","client_secret":"secret","token_endpoint":token_endpoint,"scope":"api"});
    http.set_auth_token(&auth.to_string()).unwrap();
    let mut s = http.settings();
    s.request_timeout = Duration::from_millis(request_ms);
    http.set_settings(s).unwrap();
    http
}

/// The hostile chain of the report: /hop0 .. /hop5 on one origin. Each hop answers, in turn,
/// `use_dpop_nonce` (with a new nonce), `invalid_token`, `invalid_dpop_proof` with a `Date`
/// ten minutes ahead, and only then redirects to the next hop (the last one answers 200).
/// Every answer, token responses included, takes `delay`.
fn hostile_chain(delay: Duration) -> FaultServer {
    let seen: Mutex<HashMap<String, u32>> = Mutex::new(HashMap::new());
    let tokens = AtomicU32::new(0);
    FaultServer::start(move |r: &Received| {
        std::thread::sleep(delay);
        if r.path == "/token" {
            let n = tokens.fetch_add(1, Ordering::SeqCst);
            return json(200, &format!(r#"{{"access_token":"chain-token-{n}","token_type":"DPoP","expires_in":300}}"#));
        }
        let n = {
            let mut seen = seen.lock().unwrap();
            let c = seen.entry(r.path.clone()).or_default();
            *c += 1;
            *c
        };
        let hop: u32 = r.path.trim_start_matches("/hop").parse().unwrap_or(99);
        let challenge = |e: &str| ("WWW-Authenticate".to_string(), format!("DPoP error=\"{e}\""));
        match n {
            1 => Action::Respond(401, vec![challenge("use_dpop_nonce"), ("DPoP-Nonce".into(), format!("nonce-{hop}-{n}"))], vec![]),
            2 => Action::Respond(401, vec![challenge("invalid_token")], vec![]),
            3 => {
                let skewed = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(600));
                Action::Respond(401, vec![challenge("invalid_dpop_proof"), ("Date".into(), skewed)], vec![])
            }
            _ if hop < 5 => Action::Respond(302, vec![("Location".into(), format!("/hop{}", hop + 1))], vec![]),
            _ => json(200, r#"{"end":"of the chain"}"#),
        }
    })
}

#[test]
fn request_ms_bounds_the_whole_call_through_a_hostile_redirect_chain() {
    // Every answer takes 250 ms, well under request_ms = 1000: before the fix each hop got
    // fresh retries and its own timeout, and the call made ~31 requests over ~8 s.
    let srv = hostile_chain(Duration::from_millis(250));
    let key = Arc::new(EcKey::generate().unwrap());
    let http = http_with(&srv.url("/token"), &key, 1000);
    let t0 = Instant::now();
    let e = http.quick_get_str(&srv.url("/hop0")).unwrap_err();
    let elapsed = t0.elapsed();
    let count = srv.requests().len();
    assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
    assert!(e.message.contains("request_ms") && e.message.contains("1000 ms"), "{}", e.message);
    assert!(elapsed < Duration::from_secs(3), "the call took {elapsed:?} with request_ms = 1000");
    // 1000 ms of 250 ms answers: at most 4 or 5 requests can start.
    assert!(count <= 6, "{count} requests for one call: {:?}", srv.requests().iter().map(|r| &r.path).collect::<Vec<_>>());
}

#[test]
fn retries_are_shared_by_the_hops_of_a_call() {
    // Fast answers and a generous request_ms: the retries, not the clock, must end the call.
    let srv = hostile_chain(Duration::ZERO);
    let key = Arc::new(EcKey::generate().unwrap());
    let http = http_with(&srv.url("/token"), &key, 10_000);
    let e = http.quick_get_str(&srv.url("/hop0")).unwrap_err();
    let reqs = srv.requests();
    let paths: Vec<&str> = reqs.iter().map(|r| r.path.as_str()).collect();
    // hop0 spends the call's one nonce retry, one token refetch and one clock retry, then
    // redirects; hop1's use_dpop_nonce finds the nonce retry spent.
    assert_eq!(e.kind, ErrorKind::DpopNonce, "{e} after {paths:?}");
    assert_eq!(paths, ["/token", "/hop0", "/hop0", "/token", "/hop0", "/hop0", "/hop1"], "one set of retries per call");
}

#[test]
fn a_call_that_starts_late_in_its_budget_times_out_at_its_deadline_not_per_request() {
    // Three slow hops of 400 ms each with request_ms = 1000: each request alone is under the
    // limit, the call is not.
    let srv = FaultServer::start(|r| {
        if r.path == "/token" {
            return json(200, r#"{"access_token":"slow-hop-token","token_type":"DPoP","expires_in":300}"#);
        }
        std::thread::sleep(Duration::from_millis(400));
        let hop: u32 = r.path.trim_start_matches("/slow").parse().unwrap_or(99);
        if hop < 5 { Action::Respond(307, vec![("Location".into(), format!("/slow{}", hop + 1))], vec![]) } else { json(200, "{}") }
    });
    let key = Arc::new(EcKey::generate().unwrap());
    let http = http_with(&srv.url("/token"), &key, 1000);
    let t0 = Instant::now();
    let e = http.quick_get_str(&srv.url("/slow0")).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
    assert!(e.message.contains("whole call") && e.message.contains("1000 ms"), "{}", e.message);
    assert!(e.message.contains("redirect hop"), "the text says where the call was: {}", e.message);
    assert!(t0.elapsed() < Duration::from_millis(2500), "took {:?}", t0.elapsed());
    let hops = srv.requests().iter().filter(|r| r.path.starts_with("/slow")).count();
    assert!(hops <= 3, "{hops} hops started within 1000 ms of 400 ms answers");
}

#[test]
fn token_waiters_wait_on_their_own_deadline() {
    // One handle with a long request_ms starts a token request that the server never answers;
    // seven threads on a second handle with the same AuthToken and key (the same token slot,
    // so they wait for that request) have request_ms = 600. Before the fix they waited for
    // the first fetch to end (3 × request_ms + 1 s), far past their own limit.
    let srv = FaultServer::start(|r| if r.path == "/token" { Action::Hang } else { json(200, "{}") });
    let key = Arc::new(EcKey::generate().unwrap());
    let slow = http_with(&srv.url("/token"), &key, 3000);
    let quick = Arc::new(http_with(&srv.url("/token"), &key, 600));
    let api = srv.url("/api");
    let barrier = Barrier::new(7);
    std::thread::scope(|s| {
        let first = s.spawn(|| {
            let t0 = Instant::now();
            (slow.quick_get_str(&api).unwrap_err(), t0.elapsed())
        });
        // Let the first thread's token request reach the server.
        let until = Instant::now() + Duration::from_secs(2);
        while srv.requests().is_empty() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        let waiters: Vec<_> = (0..7)
            .map(|_| {
                let (quick, api, barrier) = (quick.clone(), &api, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    let t0 = Instant::now();
                    (quick.quick_get_str(api).unwrap_err(), t0.elapsed())
                })
            })
            .collect();
        for w in waiters {
            let (e, took) = w.join().unwrap();
            assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
            assert!(e.message.contains("600 ms") && e.message.contains("token"), "{}", e.message);
            assert!(took < Duration::from_millis(1500), "a waiter with request_ms = 600 waited {took:?}");
        }
        let (e, took) = first.join().unwrap();
        assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
        assert!(took < Duration::from_secs(5), "{took:?}");
    });
    assert_eq!(srv.requests().len(), 1, "the waiters did not start token requests of their own");
}

/// A server that sends its headers at once, then drips the body one byte per 100 ms: the
/// call's request_ms (1 s here) still bounds it (the drip alone would take 100 s).
#[test]
fn a_body_dripped_byte_by_byte_is_bounded_by_request_ms() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n");
            for _ in 0..1000 {
                std::thread::sleep(std::time::Duration::from_millis(100));
                if s.write_all(b"x").is_err() {
                    return; // the client hung up: done
                }
            }
        }
    });
    let http = HttpClient::new();
    let mut settings = http.settings();
    settings.request_timeout = std::time::Duration::from_millis(1000);
    http.set_settings(settings).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(http.quick_get_str(&format!("http://127.0.0.1:{port}/drip")).map(|_| ()));
    });
    let r = rx.recv_timeout(std::time::Duration::from_secs(30)).expect("still reading a dripped body after 30 s");
    let e = r.unwrap_err();
    assert_eq!(e.kind, dpopkit::core::ErrorKind::Timeout, "{e}");
}

/// request_ms = u32::MAX (49 days, "no limit" to a careless caller) must not overflow
/// anywhere (Instant + Duration) nor be refused: the call just works.
#[test]
fn request_ms_u32_max_works() {
    use crate::common::capi::{c, take};
    use dpopkit::capi::common::{dpopkit_destroy, dpopkit_last_error_text};
    use dpopkit::capi::http::{dpopkit_http_new, dpopkit_http_quick_get_str, dpopkit_http_set_timeouts};
    let srv = FaultServer::start(|_| Action::Respond(200, vec![], b"fine".to_vec()));
    let http = dpopkit_http_new();
    assert_eq!(dpopkit_http_set_timeouts(http, u32::MAX, u32::MAX), 1);
    let got = take(unsafe { dpopkit_http_quick_get_str(http, c(&srv.url("/x")).as_ptr()) });
    assert_eq!(got.as_deref(), Some("fine"), "{:?}", take(dpopkit_last_error_text(http)));
    dpopkit_destroy(http);
}

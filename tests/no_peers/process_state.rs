//! The process-wide state against hostile local servers: DPoP nonces kept apart for the
//! authorization server and a resource server on one origin, the clock-skew correction
//! capped, and the discovery cache keyed by URL, expected issuer and trust settings.

use crate::common::tls as support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use crate::common::fault::{Action, FaultServer, Received, json};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dpopkit::core::http::{ProxyChoice, TrustRoots};
use dpopkit::core::{EcKey, ErrorKind, HttpClient, Settings};
use support::{TempDir, TestPki};

const TOKEN: &str = r#"{"access_token":"state-token-value","token_type":"DPoP","expires_in":300}"#;

/// The claims of the DPoP proof a request carried.
fn proof_claims(r: &Received) -> serde_json::Value {
    let proof = r.header("dpop").unwrap_or_else(|| panic!("{} {} carried no DPoP proof", r.method, r.path));
    let payload = proof.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn client(key: &Arc<EcKey>, auth: serde_json::Value) -> HttpClient {
    let http = HttpClient::new();
    http.set_dpop_key(key.clone());
    http.set_auth_token(&auth.to_string()).unwrap();
    http.set_settings(Settings { proxy: ProxyChoice::None, ..Settings::default() }).unwrap();
    http
}

// ---- item 12: the AS and an RS on one origin keep their own nonces ------------------------

#[test]
fn as_and_rs_on_one_origin_keep_their_own_nonces() {
    // One origin plays both roles, each demanding its own nonce (as RFC 9449 §8 allows).
    let srv = FaultServer::start(|r| {
        let nonce = proof_claims(r)["nonce"].as_str().map(str::to_string);
        let (wanted, refuse) = if r.path == "/token" {
            ("as-nonce-1", json(400, r#"{"error":"use_dpop_nonce","error_description":"AS nonce"}"#))
        } else {
            ("rs-nonce-1", Action::Respond(401, vec![("WWW-Authenticate".into(), r#"DPoP error="use_dpop_nonce""#.into())], vec![]))
        };
        if nonce.as_deref() != Some(wanted) {
            return match refuse {
                Action::Respond(s, mut h, b) => {
                    h.push(("DPoP-Nonce".into(), wanted.into()));
                    Action::Respond(s, h, b)
                }
                other => other,
            };
        }
        if r.path == "/token" { json(200, TOKEN) } else { json(200, r#"{"ok":true}"#) }
    });
    let key = Arc::new(EcKey::generate().unwrap());
    let auth = |scope: &str| serde_json::json!({"client_id":"c","client_secret":"state-test-secret","token_endpoint":srv.url("/token"),"scope":scope});
    // First client: each role asks once for its nonce.
    let (body, _) = client(&key, auth("one")).quick_get_str(&srv.url("/api")).unwrap();
    assert_eq!(body, r#"{"ok":true}"#);
    assert_eq!(srv.requests().len(), 4, "one use_dpop_nonce round trip per role");
    // Second client (another scope: a new token), same key: both nonces are known by now.
    let (body, _) = client(&key, auth("two")).quick_get_str(&srv.url("/api")).unwrap();
    assert_eq!(body, r#"{"ok":true}"#);
    let reqs = srv.requests();
    let seen: Vec<_> = reqs.iter().map(|r| (r.path.clone(), proof_claims(r)["nonce"].as_str().map(str::to_string))).collect();
    assert_eq!(reqs.len(), 6, "the AS and the RS overwrote each other's nonce: {seen:?}");
    assert_eq!(seen[4], ("/token".to_string(), Some("as-nonce-1".to_string())));
    assert_eq!(seen[5], ("/api".to_string(), Some("rs-nonce-1".to_string())));
}

// ---- item 9: the clock-skew correction is capped ------------------------------------------

const TEN_YEARS: u64 = 10 * 365 * 86400;

/// A token endpoint, and an API that refuses proofs as invalid_dpop_proof with a `Date`
/// ten years ahead while `hostile` is set (and answers 200, still with that Date, after).
fn far_future_server(hostile: Arc<AtomicBool>) -> FaultServer {
    FaultServer::start(move |r| {
        let date = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(TEN_YEARS));
        let mut headers = vec![("Date".to_string(), date), ("Content-Type".to_string(), "application/json".to_string())];
        if r.path == "/token" {
            return Action::Respond(200, headers, TOKEN.as_bytes().to_vec());
        }
        if hostile.load(Ordering::SeqCst) {
            headers.push(("WWW-Authenticate".into(), r#"DPoP error="invalid_dpop_proof", error_description="iat""#.into()));
            return Action::Respond(401, headers, vec![]);
        }
        Action::Respond(200, headers, br#"{"ok":true}"#.to_vec())
    })
}

fn assert_iat_near_now(reqs: &[Received]) {
    for r in reqs {
        let iat = proof_claims(r)["iat"].as_i64().unwrap();
        assert!((iat - unix_now()).abs() < 120, "{} {}: proof iat moved by {} s", r.method, r.path, iat - unix_now());
    }
}

#[test]
fn a_server_clock_ten_years_ahead_moves_no_proof() {
    let hostile = Arc::new(AtomicBool::new(true));
    let srv = far_future_server(hostile.clone());
    let key = Arc::new(EcKey::generate().unwrap());
    let http = client(&key, serde_json::json!({"client_id":"c","client_secret":"state-test-secret","token_endpoint":srv.url("/token")}));
    let e = http.quick_get_str(&srv.url("/api")).unwrap_err();
    assert_eq!(e.kind, ErrorKind::DpopProof, "{e}");
    for words in ["ahead of", "3600 s", "max_clock_skew"] {
        assert!(e.message.contains(words), "the text names the cap and how to raise it ({words}): {}", e.message);
    }
    let by: i64 = e
        .message
        .split("clock is ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the text says by how much: {}", e.message));
    assert!((by - TEN_YEARS as i64).abs() < 60, "{by}: {}", e.message);
    let api_requests = srv.requests().iter().filter(|r| r.path == "/api").count();
    assert_eq!(api_requests, 1, "no retry on a clock beyond the cap");
    // Later proofs to that origin, from this and from a new handle, stay on this machine's clock.
    hostile.store(false, Ordering::SeqCst);
    http.quick_get_str(&srv.url("/api")).unwrap();
    let other = client(&key, serde_json::json!({"client_id":"d","client_secret":"state-test-secret","token_endpoint":srv.url("/token")}));
    other.quick_get_str(&srv.url("/api")).unwrap();
    assert_iat_near_now(&srv.requests());
}

#[test]
fn the_cap_is_an_auth_token_member_and_other_origins_are_untouched() {
    let hostile = Arc::new(AtomicBool::new(true));
    let srv = far_future_server(hostile.clone());
    let calm = FaultServer::start(|r| if r.path == "/token" { json(200, TOKEN) } else { json(200, r#"{"ok":true}"#) });
    let key = Arc::new(EcKey::generate().unwrap());
    // A caller who knows that server's clock is that far off raises the cap: one retry on its clock.
    let auth = serde_json::json!({"client_id":"c","client_secret":"state-test-secret","token_endpoint":calm.url("/token"),"max_clock_skew": TEN_YEARS + 86400});
    let http = client(&key, auth);
    hostile.store(false, Ordering::SeqCst);
    http.quick_get_str(&srv.url("/api")).unwrap(); // learns the Date
    hostile.store(true, Ordering::SeqCst);
    let e = http.quick_get_str(&srv.url("/api")).unwrap_err();
    assert!(e.message.contains("retry with a corrected iat was refused"), "{}", e.message);
    let api: Vec<_> = srv.requests().into_iter().filter(|r| r.path == "/api").collect();
    let last_iat = proof_claims(api.last().unwrap())["iat"].as_i64().unwrap();
    assert!((last_iat - unix_now() - TEN_YEARS as i64).abs() < 120, "the retry used the server's clock");
    // The far-off server moved only its own origin's proofs.
    http.quick_get_str(&calm.url("/api")).unwrap();
    assert_iat_near_now(&calm.requests());
    // A bad value is refused with a text that names the member.
    let bad = HttpClient::new();
    let e = bad
        .set_auth_token(
            r#"{"client_id":"c","client_secret":"state-test-secret","token_endpoint":"http://127.0.0.1:9/t","max_clock_skew":"soon"}"#,
        )
        .unwrap_err();
    assert!(e.message.contains("max_clock_skew"), "{}", e.message);
}

// ---- item 7: the discovery cache --------------------------------------------------------

fn metadata_server(issuer_suffix: &'static str) -> FaultServer {
    let srv_port = Arc::new(std::sync::OnceLock::<u16>::new());
    let p = srv_port.clone();
    let srv = FaultServer::start(move |r| {
        let origin = format!("http://127.0.0.1:{}", p.get().unwrap());
        match r.path.as_str() {
            "/token" => json(200, TOKEN),
            "/api" => json(200, r#"{"ok":true}"#),
            _ if r.path.contains("/.well-known/") || r.path == "/meta" => json(
                200,
                &serde_json::json!({"issuer": format!("{origin}{issuer_suffix}"), "token_endpoint": format!("{origin}/token")}).to_string(),
            ),
            _ => json(404, "{}"),
        }
    });
    srv_port.set(srv.port).unwrap();
    srv
}

#[test]
fn a_cache_hit_is_checked_against_the_expected_issuer() {
    let srv = metadata_server("");
    let origin = srv.url("");
    let key = Arc::new(EcKey::generate().unwrap());
    let good = serde_json::json!({"client_id":"c","client_secret":"state-test-secret","metadata_url":srv.url("/meta"),"issuer":origin});
    client(&key, good).quick_get_str(&srv.url("/api")).unwrap();
    // Same metadata URL, another expected issuer: the cached metadata does not name it.
    let other = format!("{origin}/tenant2");
    let bad = serde_json::json!({"client_id":"c","client_secret":"state-test-secret","metadata_url":srv.url("/meta"),"issuer":other});
    let e = client(&key, bad).quick_get_str(&srv.url("/api")).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Discovery, "{e}");
    assert!(e.message.contains("RFC 8414") && e.message.contains("tenant2"), "{}", e.message);
}

#[test]
fn an_issuer_with_an_extra_trailing_slash_is_refused() {
    let srv = metadata_server("/");
    let key = Arc::new(EcKey::generate().unwrap());
    let auth = serde_json::json!({"client_id":"c","client_secret":"state-test-secret","issuer":srv.url("")});
    let e = client(&key, auth).quick_get_str(&srv.url("/api")).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Discovery, "{e}");
    assert!(e.message.contains("RFC 8414"), "{}", e.message);
    assert!(srv.requests().iter().all(|r| r.path != "/token"), "no token request after the refusal");
}

#[test]
fn metadata_cached_by_a_handle_that_trusts_the_ca_does_not_help_one_that_does_not() {
    let pki = TestPki::new();
    let peers = pki.peers(&[]);
    let auth = serde_json::json!({"client_id":"m2m.dpop","client_secret":"secret","issuer":peers.issuer,"scope":"api"}).to_string();
    let with_ca = HttpClient::new();
    with_ca.set_dpop_key(Arc::new(EcKey::generate().unwrap()));
    with_ca.set_auth_token(&auth).unwrap();
    with_ca.set_settings(Settings { trust: pki.trust(), proxy: ProxyChoice::None, ..Settings::default() }).unwrap();
    with_ca.quick_get_str(&peers.api).unwrap_or_else(|e| panic!("{e}"));

    let dir = TempDir::new("disc");
    let log = dir.path().join("session.log");
    let without = HttpClient::new();
    without.set_dpop_key(Arc::new(EcKey::generate().unwrap()));
    without.set_auth_token(&auth).unwrap();
    without.set_settings(Settings { trust: TrustRoots::Bundled, proxy: ProxyChoice::None, ..Settings::default() }).unwrap();
    without.set_session_log(Some(&log)).unwrap();
    let e = without.quick_get_str(&peers.api).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Tls, "{e}");
    // It failed fetching the metadata itself, not later with metadata another handle fetched.
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("GET /.well-known/"), "{text}");
    assert!(!text.contains("POST "), "a token request was made with metadata this handle could not verify:\n{text}");
}

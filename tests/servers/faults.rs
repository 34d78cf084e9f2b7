//! Failing servers: each a clear error within the configured timeout, never a hang or a
//! loop. Servers that misbehave are scripted loopback servers (tests/common/fault.rs);
//! where a real token is needed the real authorization server provides it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::fault::{Action, FaultServer, json};
use crate::common::{Peers, closed_port};
use dpopkit::core::{EcKey, ErrorKind, HttpClient, Settings};

fn http_with(token_endpoint: &str, timeout_ms: u64) -> HttpClient {
    let http = HttpClient::new();
    http.set_dpop_key(Arc::new(EcKey::generate().unwrap()));
    let auth = serde_json::json!({"client_id":"m2m.dpop","client_secret":"secret","token_endpoint":token_endpoint,"scope":"api"});
    http.set_auth_token(&auth.to_string()).unwrap();
    let mut s = http.settings();
    s.request_timeout = Duration::from_millis(timeout_ms);
    s.connect_timeout = Duration::from_millis(timeout_ms);
    http.set_settings(s).unwrap();
    http
}

const TOKEN: &str = r#"{"access_token":"fault-token-value","token_type":"DPoP","expires_in":300}"#;

#[test]
fn defaults_are_the_documented_ones() {
    let s = Settings::default();
    assert_eq!(s.connect_timeout, Duration::from_secs(10));
    assert_eq!(s.request_timeout, Duration::from_secs(60));
    assert_eq!(s.max_response_size, 16 << 20);
    assert!(s.follow_redirects);
}

#[test]
fn server_that_never_answers_times_out() {
    for path in ["/token", "/api"] {
        let srv = FaultServer::start(move |r| if r.path == "/token" && path == "/api" { json(200, TOKEN) } else { Action::Hang });
        let http = http_with(&srv.url("/token"), 500);
        let t0 = Instant::now();
        let e = http.quick_get_str(&srv.url("/api")).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Timeout, "{path}: {e}");
        assert!(e.message.contains("timed out") && e.message.contains("500 ms"), "{}", e.message);
        assert!(t0.elapsed() < Duration::from_secs(3), "took {:?}", t0.elapsed());
    }
}

#[test]
fn half_a_response_then_stall_times_out() {
    let srv = FaultServer::start(|r| {
        if r.path == "/token" {
            json(200, TOKEN)
        } else {
            Action::Partial(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n[{\"type\":".to_vec())
        }
    });
    let http = http_with(&srv.url("/token"), 500);
    let t0 = Instant::now();
    let e = http.quick_get_str(&srv.url("/api")).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
    assert!(t0.elapsed() < Duration::from_secs(3));
}

#[test]
fn nothing_listening_is_a_transport_error() {
    let port = closed_port();
    let http = http_with(&format!("http://127.0.0.1:{port}/token"), 2000);
    let e = http.quick_get_str(&format!("http://127.0.0.1:{port}/api")).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Transport);
    assert!(e.message.contains("refused"), "{}", e.message);
}

#[test]
fn dns_failure_is_a_clear_error() {
    // https: plain http to another machine would be refused before any lookup.
    let http = http_with("https://no-such-host.invalid/token", 3000);
    let t0 = Instant::now();
    let e = http.quick_get_str("https://no-such-host.invalid/api").unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Transport | ErrorKind::Timeout), "{e}");
    assert!(e.message.contains("no-such-host.invalid"), "{}", e.message);
    assert!(t0.elapsed() < Duration::from_secs(8));
}

#[test]
fn token_endpoint_faults() {
    type Case = (&'static str, Box<dyn Fn() -> Action + Send + Sync>, ErrorKind, &'static str);
    let cases: Vec<Case> = vec![
        (
            "5xx",
            Box::new(|| json(503, r#"{"error":"temporarily_unavailable","error_description":"maintenance"}"#)),
            ErrorKind::TokenEndpoint,
            "503",
        ),
        (
            "html",
            Box::new(|| Action::Respond(200, vec![("Content-Type".into(), "text/html".into())], b"<html>login</html>".to_vec())),
            ErrorKind::TokenResponse,
            "not JSON",
        ),
        ("malformed", Box::new(|| json(200, r#"{"access_token": "abc"#)), ErrorKind::TokenResponse, "not JSON"),
        ("no access_token", Box::new(|| json(200, r#"{"token_type":"DPoP"}"#)), ErrorKind::TokenResponse, "access_token"),
        (
            "expires_in text",
            Box::new(|| json(200, r#"{"access_token":"a","token_type":"DPoP","expires_in":"later"}"#)),
            ErrorKind::TokenResponse,
            "expires_in",
        ),
        (
            "expires_in object",
            Box::new(|| json(200, r#"{"access_token":"a","token_type":"DPoP","expires_in":{}}"#)),
            ErrorKind::TokenResponse,
            "expires_in",
        ),
        (
            "redirect",
            Box::new(|| Action::Respond(302, vec![("Location".into(), "http://127.0.0.1:9/elsewhere".into())], vec![])),
            ErrorKind::TokenEndpoint,
            "redirects are not followed",
        ),
    ];
    for (name, respond, kind, text) in cases {
        let srv = FaultServer::start(move |_| respond());
        let http = http_with(&srv.url("/token"), 2000);
        let e = http.quick_get_str(&srv.url("/api")).unwrap_err();
        assert_eq!(e.kind, kind, "{name}: {e}");
        assert!(e.message.contains(text), "{name}: {}", e.message);
        assert!(!e.message.contains("secret"), "{name}: {}", e.message);
        assert!(srv.requests().iter().all(|r| r.path == "/token"), "{name}: no API call without a token");
    }
}

#[test]
fn oversized_response_is_refused_at_the_limit() {
    let srv = FaultServer::start(|r| if r.path == "/token" { json(200, TOKEN) } else { json(200, &"x".repeat(100_000)) });
    let http = http_with(&srv.url("/token"), 2000);
    let mut s = http.settings();
    s.max_response_size = 10_000;
    http.set_settings(s).unwrap();
    let e = http.quick_get_str(&srv.url("/api")).unwrap_err();
    assert_eq!(e.kind, ErrorKind::ResponseTooLarge, "{e}");
    assert!(e.message.contains("10000"), "{}", e.message);
}

#[test]
fn endless_use_dpop_nonce_is_one_retry_then_an_error() {
    // At the token endpoint: a new nonce every time.
    let n = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let srv = FaultServer::start(move |_| {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Action::Respond(
            400,
            vec![("Content-Type".into(), "application/json".into()), ("DPoP-Nonce".into(), format!("n{i}"))],
            br#"{"error":"use_dpop_nonce"}"#.to_vec(),
        )
    });
    let http = http_with(&srv.url("/token"), 2000);
    let e = http.quick_get_str(&srv.url("/api")).unwrap_err();
    assert_eq!(e.kind, ErrorKind::DpopNonce, "{e}");
    assert_eq!(srv.requests().len(), 2, "exactly one retry");
    // At the resource server.
    let m = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let rs = FaultServer::start(move |r| {
        if r.path == "/token" {
            return json(200, TOKEN);
        }
        let i = m.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Action::Respond(
            401,
            vec![("WWW-Authenticate".into(), r#"DPoP error="use_dpop_nonce""#.into()), ("DPoP-Nonce".into(), format!("r{i}"))],
            vec![],
        )
    });
    let http = http_with(&rs.url("/token"), 2000);
    let e = http.quick_get_str(&rs.url("/api")).unwrap_err();
    assert_eq!(e.kind, ErrorKind::DpopNonce, "{e}");
    assert_eq!(rs.requests().iter().filter(|r| r.path == "/api").count(), 2);
    // A 401 use_dpop_nonce without a DPoP-Nonce header: no retry at all.
    let bare = FaultServer::start(|r| {
        if r.path == "/token" {
            json(200, TOKEN)
        } else {
            Action::Respond(401, vec![("WWW-Authenticate".into(), r#"DPoP error="use_dpop_nonce""#.into())], vec![])
        }
    });
    let http = http_with(&bare.url("/token"), 2000);
    let e = http.quick_get_str(&bare.url("/api")).unwrap_err();
    assert!(e.message.contains("no DPoP-Nonce"), "{}", e.message);
    assert_eq!(bare.requests().iter().filter(|r| r.path == "/api").count(), 1);
}

#[test]
fn redirects_never_carry_credentials_to_another_origin() {
    let peers = Peers::start(&[]);
    let other = FaultServer::start(|_| json(200, r#"{"where":"other origin"}"#));
    let other_url = other.url("/landing");
    let target = FaultServer::start(move |r| match r.path.as_str() {
        "/start" => Action::Respond(302, vec![("Location".into(), "/same-origin-hop".into())], vec![]),
        "/same-origin-hop" => Action::Respond(307, vec![("Location".into(), other_url.clone())], vec![]),
        _ => json(404, "{}"),
    });
    let http = HttpClient::new();
    http.set_dpop_key(Arc::new(EcKey::generate().unwrap()));
    http.set_auth_token(&peers.auth_token()).unwrap();
    let (body, resp) = http.quick_get_str(&target.url("/start")).unwrap();
    assert_eq!(resp.status, 200);
    assert!(body.contains("other origin"));
    let same = target.requests();
    assert_eq!(same.len(), 2);
    for r in &same {
        assert!(r.header("authorization").is_some_and(|a| a.starts_with("DPoP ")), "{r:?}");
        let proof = r.header("dpop").expect("proof on same-origin hops");
        let claims = proof.split('.').nth(1).unwrap();
        use base64::Engine;
        let claims: serde_json::Value =
            serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();
        assert_eq!(claims["htu"], target.url(&r.path), "each hop's proof names its own URL");
    }
    let got = other.requests();
    assert_eq!(got.len(), 1);
    assert!(got[0].header("authorization").is_none() && got[0].header("dpop").is_none(), "credentials leaked: {:?}", got[0]);
    // With redirects off, the 302 is the answer.
    let mut s = http.settings();
    s.follow_redirects = false;
    http.set_settings(s).unwrap();
    let e = http.quick_get_str(&target.url("/start")).unwrap_err();
    assert_eq!(e.status(), 302);
    assert!(e.message.contains("not followed"), "{}", e.message);
}

#[test]
fn redirect_loops_stop() {
    let srv = FaultServer::start(|r| {
        if r.path == "/token" { json(200, TOKEN) } else { Action::Respond(302, vec![("Location".into(), "/loop".into())], vec![]) }
    });
    let http = http_with(&srv.url("/token"), 2000);
    let e = http.quick_get_str(&srv.url("/loop")).unwrap_err();
    assert!(e.message.contains("more than 5"), "{}", e.message);
    assert_eq!(srv.requests().iter().filter(|r| r.path == "/loop").count(), 6);
}

#[test]
fn a_chain_that_left_the_origin_gets_no_credentials_when_it_comes_back() {
    // A → B → back to A: the hop back to A follows a redirect chosen by B, so it is sent
    // without the token and without a proof (before the fix it carried both).
    // Each server learns the other's port once both listen.
    let a_port = Arc::new(std::sync::atomic::AtomicU16::new(0));
    let seen_a = a_port.clone();
    let b = FaultServer::start(move |_| {
        let a = seen_a.load(std::sync::atomic::Ordering::SeqCst);
        Action::Respond(307, vec![("Location".into(), format!("http://127.0.0.1:{a}/back"))], vec![])
    });
    let b_away = b.url("/away");
    let a = FaultServer::start(move |r| match r.path.as_str() {
        "/token" => json(200, TOKEN),
        "/start" => Action::Respond(302, vec![("Location".into(), b_away.clone())], vec![]),
        _ => json(200, r#"{"back":"home"}"#),
    });
    a_port.store(a.port, std::sync::atomic::Ordering::SeqCst);
    let http = http_with(&a.url("/token"), 2000);
    let (body, resp) = http.quick_get_str(&a.url("/start")).unwrap();
    assert_eq!(resp.status, 200);
    assert!(body.contains("home"));
    let at_a = a.requests();
    let start = at_a.iter().find(|r| r.path == "/start").unwrap();
    assert!(start.header("authorization").is_some() && start.header("dpop").is_some(), "the first hop has credentials");
    let back = at_a.iter().find(|r| r.path == "/back").expect("the chain came back to A");
    assert!(back.header("authorization").is_none() && back.header("dpop").is_none(), "credentials on the way back: {back:?}");
    let away = b.requests();
    assert_eq!(away.len(), 1);
    assert!(away[0].header("authorization").is_none() && away[0].header("dpop").is_none());
}

#[test]
fn relative_locations_with_scheme_like_queries_are_followed() {
    let srv = FaultServer::start(|r| match r.path.as_str() {
        "/token" => json(200, TOKEN),
        "/dir/start" => Action::Respond(302, vec![("Location".into(), "/next?u=https://x.test/y".into())], vec![]),
        p if p.starts_with("/next") => Action::Respond(303, vec![("Location".into(), "dir/leaf?x=a://b".into())], vec![]),
        p if p.starts_with("/dir/leaf") => json(200, r#"{"ok":true}"#),
        _ => json(404, "{}"),
    });
    let http = http_with(&srv.url("/token"), 2000);
    let (body, _) = http.quick_get_str(&srv.url("/dir/start")).unwrap();
    assert!(body.contains("ok"), "{body}");
    let paths: Vec<String> = srv.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths, ["/token", "/dir/start", "/next?u=https://x.test/y", "/dir/leaf?x=a://b"]);
    // Same origin all along: every hop carries the token and a proof.
    assert!(srv.requests().iter().skip(1).all(|r| r.header("authorization").is_some() && r.header("dpop").is_some()));
}

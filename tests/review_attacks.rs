//! An independent review of issue 10's fixes, done as a hostile server, a shared host and a
//! careless caller would: each test here reproduces a way around a landed fix (it failed
//! before the fix that follows it in the history).

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use common::fault::{Action, FaultServer};
use dpopkit::core::{EcKey, HttpClient};

fn scratch(name: &str) -> PathBuf {
    use std::hash::{BuildHasher, RandomState};
    let r = RandomState::new().hash_one(std::time::Instant::now());
    std::env::temp_dir().join(format!("dpopkit-review-{name}-{}-{r}", std::process::id()))
}

/// A long, mixed-case access token (what real servers issue: JWTs of several hundred bytes).
fn long_token() -> String {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    (0..600).map(|i| alphabet[(i * 37 + i / 7) % alphabet.len()] as char).collect()
}

fn token_ok(token: &str) -> Action {
    let body = serde_json::json!({"access_token": token, "token_type": "DPoP", "expires_in": 300});
    Action::Respond(200, vec![("Content-Type".into(), "application/json".into())], body.to_string().into_bytes())
}

/// Any run of `window` bytes of `secret` that `text` holds.
fn piece_of(secret: &str, text: &str, window: usize) -> Option<String> {
    (0..=secret.len().saturating_sub(window)).map(|i| &secret[i..i + window]).find(|w| text.contains(*w)).map(str::to_string)
}

fn client(token_endpoint: &str, secret: &str) -> HttpClient {
    let http = HttpClient::new();
    http.set_dpop_key(Arc::new(EcKey::generate().unwrap()));
    let auth = serde_json::json!({"client_id": "m2m.dpop", "client_secret": secret, "token_endpoint": token_endpoint});
    http.set_auth_token(&auth.to_string()).unwrap();
    http
}

/// The session log cuts bodies at 64 KiB. A server that echoes the access token (or the
/// proof) so that it straddles the cut must not get the part before the cut written down:
/// the whole of it is masked before the body is cut.
#[test]
fn a_secret_echoed_across_the_64_kib_log_cut_leaves_no_piece_in_the_log() {
    let token = long_token();
    let t = token.clone();
    let srv = FaultServer::start(move |r| {
        if r.path.starts_with("/token") {
            return token_ok(&t);
        }
        // The token starts 300 bytes before the cut, the proof 100 bytes before a second
        // run of the same (so a plain body and a JSON-looking one are both tried).
        let proof = r.header("dpop").unwrap_or_default().to_string();
        let mut body = "x".repeat(64 * 1024 - 300);
        body.push_str(&t);
        body.push_str(&"y".repeat(64 * 1024));
        body.push_str(&proof);
        let status = if r.path.ends_with("/500") { 500 } else { 200 };
        Action::Respond(status, vec![("Content-Type".into(), "text/plain".into())], body.into_bytes())
    });
    for path in ["/api/200", "/api/500"] {
        let log = scratch("cut.log");
        let http = client(&srv.url("/token"), "secret-of-the-client");
        http.set_session_log(Some(&log)).unwrap();
        let _ = http.quick_get_str(&srv.url(path));
        let text = std::fs::read_to_string(&log).unwrap();
        let _ = std::fs::remove_file(&log);
        assert!(text.contains("bytes in all"), "the body was cut: {}", text.len());
        assert!(piece_of(&token, &text, 24).is_none(), "{path}: the log holds a piece of the token: {:?}", piece_of(&token, &text, 24));
    }
}

/// A header *name* can carry a secret too (a token is made of header-name characters).
/// HTTP lower-cases names, and the log and `header_text` capitalise them: the secret must
/// be recognised whatever the case.
#[test]
fn a_secret_echoed_as_a_response_header_name_is_masked() {
    // A lower-case hex secret, as many servers generate: echoed as a name it is only
    // re-capitalised, that is, readable.
    const SECRET: &str = "9f3c2a7d41b0e6c58d2f7a193e4b6c0d";
    let token = long_token();
    let t = token.clone();
    let srv = FaultServer::start(move |r| {
        if r.path.starts_with("/token") {
            return token_ok(&t);
        }
        let headers = vec![(SECRET.to_string(), "1".to_string()), (t.clone(), "2".to_string())];
        Action::Respond(if r.path.ends_with("/500") { 500 } else { 200 }, headers, b"ok".to_vec())
    });
    for path in ["/api/200", "/api/500"] {
        let log = scratch("name.log");
        let http = client(&srv.url("/token"), SECRET);
        http.set_session_log(Some(&log)).unwrap();
        let mut places = Vec::new();
        match http.quick_get_str(&srv.url(path)) {
            Ok((_, resp)) => places.push(("response headers", resp.header_text())),
            Err(e) => places.push(("error response headers", e.response.as_ref().unwrap().header_text())),
        }
        places.push(("session log", std::fs::read_to_string(&log).unwrap()));
        let _ = std::fs::remove_file(&log);
        for (place, text) in places {
            let lower = text.to_ascii_lowercase();
            assert!(!lower.contains(SECRET), "{path}: {place} shows the client secret as a header name:\n{text}");
            let tok = token.to_ascii_lowercase();
            assert!(piece_of(&tok, &lower, 24).is_none(), "{path}: {place} shows the token as a header name:\n{text}");
        }
    }
}

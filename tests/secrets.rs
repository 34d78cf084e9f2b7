//! No secret in any session log, error text or Debug print — for the sample flow and for
//! every error path. The secret and the token are distinctive strings; the servers that
//! receive them confirm they were really sent, so a clean log is not a vacuous pass.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::Peers;
use common::fault::{Action, FaultServer, json};
use dpopkit::core::{EcKey, HttpClient};

const SECRET: &str = "S3cr3t-Client-Value-9f8e7d";
const TOKEN: &str = "Acc3ss-Token-Value-1a2b3c";

struct Case {
    log: String,
    errors: Vec<String>,
    debug: Vec<String>,
}

fn key_material(key: &EcKey) -> Vec<String> {
    let jwk: serde_json::Value = serde_json::from_str(&key.to_private_jwk().unwrap()).unwrap();
    let pem = key.to_pkcs8_pem().unwrap();
    let pem_body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    vec![jwk["d"].as_str().unwrap().to_string(), pem_body[..40].to_string()]
}

fn run(auth_extra: serde_json::Value, token_endpoint: &str, urls: &[String], timeout_ms: u64) -> (Case, Vec<String>) {
    let dir = std::env::temp_dir().join(format!("dpopkit-secrets-{}-{}", std::process::id(), rand()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("session.log");
    let key = Arc::new(EcKey::generate().unwrap());
    let forbidden = key_material(&key);
    let http = HttpClient::new();
    http.set_dpop_key(key.clone());
    let mut auth = serde_json::json!({"client_id":"m2m.dpop","client_secret":SECRET,"token_endpoint":token_endpoint,"scope":"api"});
    auth.as_object_mut().unwrap().extend(auth_extra.as_object().unwrap().clone());
    http.set_auth_token(&auth.to_string()).unwrap();
    http.set_session_log(Some(&log)).unwrap();
    let mut s = http.settings();
    s.request_timeout = Duration::from_millis(timeout_ms);
    http.set_settings(s).unwrap();
    let mut errors = Vec::new();
    let mut debug = vec![format!("{http:?}"), format!("{key:?}"), format!("{:?}", http.auth_config().unwrap())];
    for u in urls {
        if let Err(e) = http.quick_get_str(u) {
            errors.push(e.message.clone());
            debug.push(format!("{e:?}"));
        }
    }
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    (Case { log: text, errors, debug }, forbidden)
}

fn rand() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::Instant::now())
}

fn assert_clean(name: &str, case: &Case, extra_forbidden: &[String]) {
    let mut forbidden: Vec<&str> = vec![SECRET, TOKEN];
    forbidden.extend(extra_forbidden.iter().map(String::as_str));
    let places = std::iter::once(("session log", &case.log))
        .chain(case.errors.iter().map(|e| ("error text", e)))
        .chain(case.debug.iter().map(|d| ("Debug print", d)));
    for (what, text) in places {
        assert!(!common::contains_jwt(text), "{name}: the {what} contains a JWT (token or proof):\n{text}");
        for f in &forbidden {
            assert!(!text.contains(f), "{name}: the {what} contains a secret ({f}):\n{text}");
        }
    }
}

/// A scripted AS+RS: the token endpoint answers `token`, the API answers `api`.
fn scripted(token: fn() -> Action, api: fn() -> Action) -> FaultServer {
    FaultServer::start(move |r| if r.path == "/token" { token() } else { api() })
}

fn token_ok() -> Action {
    json(200, &format!(r#"{{"access_token":"{TOKEN}","token_type":"DPoP","expires_in":300,"refresh_token":"{TOKEN}"}}"#))
}

#[test]
fn the_jwt_detector_finds_proofs_and_ignores_random_eyj() {
    let key = EcKey::generate().unwrap();
    let proof = dpopkit::core::proof::make_proof(&key, "GET", "http://127.0.0.1:1/", Some("t"), None, None).unwrap();
    assert!(common::contains_jwt(&format!("DPoP: {proof}\n")));
    assert!(!common::contains_jwt("DPoP-Nonce: abceyJx9Qz-_k\njti xeyJ.abc"));
}

#[test]
fn sample_flow_with_the_real_servers() {
    let peers = Peers::start(&["--as-nonce", "--rs-nonce"]);
    // The real AS knows the secret "secret" only; use it and look for it in value position.
    let dir = std::env::temp_dir().join(format!("dpopkit-secrets-real-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("s.log");
    let key = Arc::new(EcKey::generate().unwrap());
    let http = HttpClient::new();
    http.set_dpop_key(key.clone());
    http.set_auth_token(&peers.auth_token()).unwrap();
    http.set_session_log(Some(&log)).unwrap();
    http.quick_get_str(&peers.api).unwrap();
    let e = http.quick_get_str(&format!("{}/missing", peers.rs)).unwrap_err();
    let case = Case { log: std::fs::read_to_string(&log).unwrap(), errors: vec![e.message.clone()], debug: vec![format!("{http:?}"), format!("{e:?}")] };
    assert!(case.log.contains("client_secret=****"));
    assert!(!case.log.contains("secret&") && !case.log.contains("\"secret\""));
    assert_clean("real flow", &case, &key_material(&key));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_error_path_keeps_secrets_out() {
    type Script = (&'static str, fn() -> Action, fn() -> Action);
    let cases: Vec<Script> = vec![
        ("ok", token_ok, || json(200, "[]")),
        ("401 invalid_client echoing the secret", || json(401, &format!(r#"{{"error":"invalid_client","error_description":"bad secret {SECRET}"}}"#)), || json(200, "[]")),
        ("5xx", || json(500, "{}"), || json(200, "[]")),
        ("html token response", || Action::Respond(200, vec![], format!("<p>access_token={TOKEN}</p>").into_bytes()), || json(200, "[]")),
        ("malformed JSON with the token", || json(200, &format!(r#"{{"access_token":"{TOKEN}""#)), || json(200, "[]")),
        ("bearer token", || json(200, &format!(r#"{{"access_token":"{TOKEN}","token_type":"Bearer"}}"#)), || json(200, "[]")),
        ("expires_in text", || json(200, &format!(r#"{{"access_token":"{TOKEN}","token_type":"DPoP","expires_in":"x"}}"#)), || json(200, "[]")),
        ("endless AS nonce", || Action::Respond(400, vec![("DPoP-Nonce".into(), format!("n{}", rand()))], br#"{"error":"use_dpop_nonce"}"#.to_vec()), || json(200, "[]")),
        ("endless RS nonce", token_ok, || Action::Respond(401, vec![("WWW-Authenticate".into(), r#"DPoP error="use_dpop_nonce""#.into()), ("DPoP-Nonce".into(), format!("r{}", rand()))], vec![])),
        ("RS invalid_token twice", token_ok, || Action::Respond(401, vec![("WWW-Authenticate".into(), format!(r#"DPoP error="invalid_token", error_description="token {TOKEN} expired""#))], vec![])),
        ("RS 403 echoing the token", token_ok, || json(403, &format!(r#"{{"error":"insufficient_scope","error_description":"{TOKEN}"}}"#))),
        ("RS hangs", token_ok, || Action::Hang),
        ("RS stalls mid-body", token_ok, || Action::Partial(format!("HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n{TOKEN}").into_bytes())),
        ("redirect loop", token_ok, || Action::Respond(302, vec![("Location".into(), "/api".into())], vec![])),
    ];
    for (name, token, api) in cases {
        let srv = scripted(token, api);
        let (case, key) = run(serde_json::json!({}), &srv.url("/token"), &[srv.url("/api")], 500);
        let received = srv.requests();
        assert!(received.iter().any(|r| String::from_utf8_lossy(&r.body).contains(SECRET)), "{name}: the secret was sent");
        assert_clean(name, &case, &key);
    }
    // client_secret_basic: the secret travels in the Authorization header.
    let srv = scripted(token_ok, || json(200, "[]"));
    let (case, key) = run(serde_json::json!({"client_auth_method":"client_secret_basic"}), &srv.url("/token"), &[srv.url("/api")], 500);
    assert!(srv.requests()[0].header("authorization").is_some_and(|a| a.starts_with("Basic ")));
    assert_clean("basic", &case, &key);
    // Unreachable servers.
    let port = common::closed_port();
    let (case, key) = run(serde_json::json!({}), &format!("http://127.0.0.1:{port}/token"), &[format!("http://127.0.0.1:{port}/api")], 500);
    assert_eq!(case.errors.len(), 1);
    assert_clean("refused", &case, &key);
}

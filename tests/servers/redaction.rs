//! No secret in any session log, error text or Debug print — for the sample flow and for
//! every error path. The secret and the token are distinctive strings; the servers that
//! receive them confirm they were really sent, so a clean log is not a vacuous pass. Also
//! secrets echoed as a header name, in Go/Python/Java-style JSON escapes, and in a redirect
//! location that an error text quotes cut. (Credentials echoed in every encoding:
//! echoed_credentials.rs.)

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use crate::common::Peers;
use crate::common::fault::{Action, FaultServer, json};
use crate::common::hostile;
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
    let case = Case {
        log: std::fs::read_to_string(&log).unwrap(),
        errors: vec![e.message.clone()],
        debug: vec![format!("{http:?}"), format!("{e:?}")],
    };
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
        (
            "401 invalid_client echoing the secret",
            || json(401, &format!(r#"{{"error":"invalid_client","error_description":"bad secret {SECRET}"}}"#)),
            || json(200, "[]"),
        ),
        ("5xx", || json(500, "{}"), || json(200, "[]")),
        ("html token response", || Action::Respond(200, vec![], format!("<p>access_token={TOKEN}</p>").into_bytes()), || json(200, "[]")),
        ("malformed JSON with the token", || json(200, &format!(r#"{{"access_token":"{TOKEN}""#)), || json(200, "[]")),
        ("bearer token", || json(200, &format!(r#"{{"access_token":"{TOKEN}","token_type":"Bearer"}}"#)), || json(200, "[]")),
        (
            "expires_in text",
            || json(200, &format!(r#"{{"access_token":"{TOKEN}","token_type":"DPoP","expires_in":"x"}}"#)),
            || json(200, "[]"),
        ),
        (
            "endless AS nonce",
            || Action::Respond(400, vec![("DPoP-Nonce".into(), format!("n{}", rand()))], br#"{"error":"use_dpop_nonce"}"#.to_vec()),
            || json(200, "[]"),
        ),
        ("endless RS nonce", token_ok, || {
            Action::Respond(
                401,
                vec![("WWW-Authenticate".into(), r#"DPoP error="use_dpop_nonce""#.into()), ("DPoP-Nonce".into(), format!("r{}", rand()))],
                vec![],
            )
        }),
        ("RS invalid_token twice", token_ok, || {
            Action::Respond(
                401,
                vec![("WWW-Authenticate".into(), format!(r#"DPoP error="invalid_token", error_description="token {TOKEN} expired""#))],
                vec![],
            )
        }),
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

/// A header *name* can carry a secret too (a token is made of header-name characters).
/// HTTP lower-cases names, and the log and `header_text` capitalise them: the secret must
/// be recognised whatever the case.
#[test]
fn a_secret_echoed_as_a_response_header_name_is_masked() {
    // A lower-case hex secret, as many servers generate: echoed as a name it is only
    // re-capitalised, that is, readable.
    const SECRET: &str = "9f3c2a7d41b0e6c58d2f7a193e4b6c0d";
    let token = hostile::long_token();
    let t = token.clone();
    let srv = FaultServer::start(move |r| {
        if r.path.starts_with("/token") {
            return hostile::token_ok(&t);
        }
        let headers = vec![(SECRET.to_string(), "1".to_string()), (t.clone(), "2".to_string())];
        Action::Respond(if r.path.ends_with("/500") { 500 } else { 200 }, headers, b"ok".to_vec())
    });
    for path in ["/api/200", "/api/500"] {
        let log = hostile::scratch("name.log");
        let http = hostile::client(&srv.url("/token"), SECRET);
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
            assert!(hostile::piece_of(&tok, &lower, 24).is_none(), "{path}: {place} shows the token as a header name:\n{text}");
        }
    }
}

/// JSON as common server stacks write it: Go's encoding/json escapes `<`, `>` and `&` as
/// `\u003c`..., Python's json.dumps (ensure_ascii) writes every non-ASCII character as
/// `\u00fc` (astral ones as surrogate pairs), Java's escapers use upper-case hex. A server
/// that echoes the client secret in its error JSON does it in one of these forms.
fn json_escape_like(s: &str, go_html: bool, ascii_only: bool, upper: bool) -> String {
    let mut out = String::new();
    let hex = |out: &mut String, u: u16| out.push_str(&if upper { format!("\\u{u:04X}") } else { format!("\\u{u:04x}") });
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '<' | '>' | '&' if go_html => hex(&mut out, ch as u16),
            c if (c as u32) < 0x20 => hex(&mut out, c as u16),
            c if ascii_only && !c.is_ascii() => {
                let mut buf = [0u16; 2];
                for u in c.encode_utf16(&mut buf) {
                    hex(&mut out, *u);
                }
            }
            c => out.push(c),
        }
    }
    out
}

#[test]
fn a_secret_echoed_in_go_or_python_style_json_escapes_is_masked() {
    const SECRET: &str = "S3cr&t<V>al-ü-𝄞-9f8e7d";
    let forms: Vec<String> = [(true, false, false), (false, true, false), (true, true, false), (true, true, true), (false, true, true)]
        .iter()
        .map(|&(g, a, u)| json_escape_like(SECRET, g, a, u))
        .collect();
    for (i, form) in forms.iter().enumerate() {
        let f = form.clone();
        let srv = FaultServer::start(move |_| {
            let body = format!(r#"{{"error":"invalid_client","error_description":"bad secret {f}","echo":"{f}"}}"#);
            Action::Respond(401, vec![("Content-Type".into(), "application/json".into())], body.into_bytes())
        });
        let log = hostile::scratch("json-escapes.log");
        let http = hostile::client(&srv.url("/token"), SECRET);
        http.set_session_log(Some(&log)).unwrap();
        let e = http.quick_get_str(&srv.url("/api")).unwrap_err();
        let places = [
            ("error text", e.message.clone()),
            ("error response body", String::from_utf8_lossy(&e.response.as_ref().unwrap().body).into_owned()),
            ("session log", std::fs::read_to_string(&log).unwrap()),
        ];
        let _ = std::fs::remove_file(&log);
        assert!(e.message.contains("bad secret"), "{}", e.message);
        for (place, text) in places {
            assert!(!text.contains(form.as_str()), "form #{i} {form}: {place} shows the escaped secret:\n{text}");
        }
    }
}

/// Texts quote a server's value cut to 200 characters ("... (N bytes)"); the call's
/// secrets are masked afterwards, so a token that the cut splits was left with its first
/// part in the text. Here the resource server redirects to an unusable URL that holds
/// the access token.
#[test]
fn a_token_in_an_unusable_redirect_location_leaves_no_piece_in_the_error() {
    let token = hostile::long_token();
    let t = token.clone();
    let srv = FaultServer::start(move |r| {
        if r.path.starts_with("/token") {
            return hostile::token_ok(&t);
        }
        let location = format!("https://bad host.example/?seen={t}");
        Action::Respond(302, vec![("Location".into(), location)], Vec::new())
    });
    let http = hostile::client(&srv.url("/token"), "secret-of-the-client");
    let e = http.quick_get_str(&srv.url("/api")).unwrap_err();
    assert!(e.message.contains("not followed"), "{}", e.message);
    assert!(hostile::piece_of(&token, &e.message, 24).is_none(), "the error text holds a piece of the token: {}", e.message);
}

/// A server's `error_description` with a control character after each character of a
/// secret: the control characters are dropped from the error text, so they must go before
/// the text is masked, or the secret (cut by the 300-character limit, so the last masking
/// of the whole message finds it no more) comes out joined up: from the token endpoint's
/// JSON body (the client secret), from the resource server's JSON body and from its
/// `WWW-Authenticate` challenge (tabs: the access token).
#[test]
fn a_secret_split_by_control_characters_is_masked_in_error_texts() {
    fn split(s: &str, c: char) -> String {
        format!("{}{}", "x".repeat(285), s.chars().map(|x| format!("{x}{c}")).collect::<String>())
    }
    for refused_by in ["token", "api body", "api challenge"] {
        let srv = FaultServer::start(move |r| {
            let described =
                |status, d: &str| json(status, &serde_json::json!({"error": "invalid_client", "error_description": d}).to_string());
            match (r.path.starts_with("/token"), refused_by) {
                (true, "token") => described(400, &split(SECRET, '\u{1}')),
                (true, _) => hostile::token_ok(TOKEN),
                (false, "api body") => described(401, &split(TOKEN, '\u{1}')),
                (false, _) => {
                    let challenge = format!("DPoP error=\"invalid_token\", error_description=\"{}\"", split(TOKEN, '\t'));
                    Action::Respond(401, vec![("WWW-Authenticate".into(), challenge)], Vec::new())
                }
            }
        });
        let http = hostile::client(&srv.url("/token"), SECRET);
        let err = http.quick_get_str(&srv.url("/api")).expect_err("the server refuses").message;
        assert!(err.contains("xxxx"), "{refused_by}: the server's words are quoted: {err}");
        for s in [SECRET, TOKEN] {
            assert_eq!(hostile::piece_of(s, &err, 8), None, "{refused_by}: {err}");
        }
    }
}

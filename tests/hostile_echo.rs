//! Servers that echo back the credentials they received — the client secret in every
//! encoding, the Basic credentials, the private_key_jwt assertion, the DPoP proofs and the
//! access token — in their bodies and in their response headers, at the token endpoint and
//! at the resource server, with error statuses and with 2xx. None of it may reach an error
//! text, `last_response_body`, the last response headers, a returned body or the session
//! log, through the C ABI or the Rust API (issue 10, item 2).
//!
//! What is forbidden is derived from what the server really received, so the checks cannot
//! pass because nothing was sent.

mod common;

use std::ffi::c_char;
use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use common::capi::{c, take};
use common::fault::{Action, FaultServer, Received};
use dpopkit::capi::common::{dpopkit_destroy, dpopkit_last_error_text};
use dpopkit::capi::http::{
    dpopkit_http_last_response_body, dpopkit_http_last_response_header, dpopkit_http_new, dpopkit_http_quick_get_str,
    dpopkit_http_set_auth_token, dpopkit_http_set_dpop_key, dpopkit_http_set_session_log_filename,
};
use dpopkit::capi::key::{dpopkit_key_generate, dpopkit_key_new};
use dpopkit::core::{EcKey, HttpClient};

/// Every character class that encodes differently: `&`, `/`, `+`, a space, `%`, a quote,
/// a backslash and a non-ASCII letter.
const SECRET: &str = "S3cr&t/Va+l ue%\"\\ü-9f8e7d";
/// Issued by the scripted token endpoints; `+` and `/` so that its encodings differ too.
const TOKEN: &str = "Acc3ss+Tok/en-Value-1a2b3c4d";

fn pct(s: &str, form: bool, lower: bool) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        let safe = b.is_ascii_alphanumeric() || if form { b"*-._".contains(&b) } else { b"-._~".contains(&b) };
        if safe {
            out.push(b as char);
        } else if form && b == b' ' {
            out.push('+');
        } else if lower {
            out.push_str(&format!("%{b:02x}"));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn json_escaped(s: &str) -> String {
    let q = serde_json::to_string(s).unwrap();
    q[1..q.len() - 1].to_string()
}

/// Every form in which a server could write `s` back.
fn encodings(s: &str) -> Vec<String> {
    let mut v = vec![s.to_string(), json_escaped(s), json_escaped(s).replace('/', "\\/")];
    for form in [true, false] {
        for lower in [true, false] {
            v.push(pct(s, form, lower));
        }
    }
    v.sort();
    v.dedup();
    v
}

fn b64_all(s: &str) -> Vec<String> {
    [STANDARD.encode(s), STANDARD_NO_PAD.encode(s), URL_SAFE.encode(s), URL_SAFE_NO_PAD.encode(s)].into()
}

/// What the server saw that is a credential, in every echoable form.
fn credentials_in(r: &Received) -> Vec<String> {
    let mut v = Vec::new();
    // The proof first: it is long, so an error text that quotes it has to cut it.
    if let Some(p) = r.header("dpop") {
        v.push(p.to_string());
    }
    let body = String::from_utf8_lossy(&r.body).into_owned();
    for pair in body.split('&') {
        if let Some((k, val)) = pair.split_once('=') {
            if k == "client_secret" || k == "client_assertion" {
                let decoded = val.replace('+', " ");
                let decoded = percent_decode(&decoded);
                v.push(val.to_string());
                v.extend(encodings(&decoded));
            }
        }
    }
    if let Some(a) = r.header("authorization") {
        let cred = a.split_once(' ').map_or(a, |(_, c)| c);
        v.push(cred.to_string());
        if a.starts_with("Basic ") {
            let raw = String::from_utf8(STANDARD.decode(cred).unwrap()).unwrap();
            v.push(raw.clone());
            v.extend(b64_all(&raw));
        } else {
            v.extend(encodings(cred));
            v.extend(b64_all(cred));
        }
    }
    v
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

fn header_safe(s: &str) -> bool {
    s.bytes().all(|b| (0x20..0x7f).contains(&b))
}

/// An echoing answer: `status`, the echoes in the body (JSON, the first one also as the
/// error_description so that it reaches the error text), and each header-safe echo in a
/// response header.
fn echo(status: u16, first: &str, echoes: &[String], raw_tail: bool) -> Action {
    let mut headers = vec![("Content-Type".to_string(), "application/json".to_string())];
    for (i, e) in echoes.iter().filter(|e| header_safe(e)).enumerate() {
        headers.push((format!("X-Echo-{i}"), e.clone()));
    }
    let body = serde_json::json!({
        "error": "invalid_request",
        "error_description": format!("you sent {first}"),
        "echo": echoes,
        "raw": echoes.join(" "),
    });
    let mut text = body.to_string();
    if raw_tail {
        // Raw (not JSON-escaped) copies too, as an HTML error page would have them (the
        // body is no longer JSON then, so the error text does not quote it).
        text.push_str(&format!("<pre>{}</pre>", echoes.join("\n")));
    }
    Action::Respond(status, headers, text.into_bytes())
}

/// Which echo goes first (into error_description): chosen by the last path segment.
fn pick(r: &Received, echoes: &[String]) -> String {
    echoes.get(nth(r) % echoes.len().max(1)).cloned().unwrap_or_default()
}

fn nth(r: &Received) -> usize {
    r.path.rsplit('/').next().and_then(|s| s.parse().ok()).unwrap_or(0)
}

fn token_ok() -> Action {
    let body = serde_json::json!({"access_token": TOKEN, "token_type": "DPoP", "expires_in": 300});
    Action::Respond(200, vec![("Content-Type".into(), "application/json".into())], body.to_string().into_bytes())
}

struct Seen {
    /// (where, text)
    places: Vec<(String, String)>,
}

fn scratch(name: &str) -> PathBuf {
    use std::hash::{BuildHasher, RandomState};
    let r = RandomState::new().hash_one(std::time::Instant::now());
    std::env::temp_dir().join(format!("dpopkit-echo-{name}-{}-{r}.log", std::process::id()))
}

/// One call through the C ABI: the error text, the last body and headers, the returned
/// body and the session log.
fn via_capi(auth: &serde_json::Value, url: &str, seen: &mut Seen) {
    let log = scratch("capi");
    let key = dpopkit_key_new();
    assert_eq!(dpopkit_key_generate(key), 1);
    let http = dpopkit_http_new();
    assert_eq!(dpopkit_http_set_dpop_key(http, key), 1);
    assert_eq!(unsafe { dpopkit_http_set_auth_token(http, c(&auth.to_string()).as_ptr()) }, 1);
    let logc = c(log.to_str().unwrap());
    assert_eq!(unsafe { dpopkit_http_set_session_log_filename(http, logc.as_ptr()) }, 1);
    let got = take(unsafe { dpopkit_http_quick_get_str(http, c(url).as_ptr()) });
    seen.places.push(("C returned body".into(), got.unwrap_or_default()));
    seen.places.push(("C error text".into(), take(dpopkit_last_error_text(http)).unwrap_or_default()));
    let body: *mut c_char = dpopkit_http_last_response_body(http);
    seen.places.push(("C last_response_body".into(), take(body).unwrap_or_default()));
    seen.places.push(("C last_response_header".into(), take(dpopkit_http_last_response_header(http)).unwrap_or_default()));
    seen.places.push(("C session log".into(), std::fs::read_to_string(&log).unwrap_or_default()));
    let _ = std::fs::remove_file(&log);
    dpopkit_destroy(http);
    dpopkit_destroy(key);
}

/// The same call through the Rust API.
fn via_rust(auth: &serde_json::Value, url: &str, seen: &mut Seen) {
    let log = scratch("rust");
    let http = HttpClient::new();
    http.set_dpop_key(Arc::new(EcKey::generate().unwrap()));
    http.set_auth_token(&auth.to_string()).unwrap();
    http.set_session_log(Some(&log)).unwrap();
    match http.quick_get_str(url) {
        Ok((body, resp)) => {
            seen.places.push(("Rust returned body".into(), body));
            seen.places.push(("Rust response headers".into(), resp.header_text()));
        }
        Err(e) => {
            seen.places.push(("Rust error text".into(), e.message.clone()));
            seen.places.push(("Rust error Debug".into(), format!("{e:?}")));
            if let Some(r) = &e.response {
                seen.places.push(("Rust error response body".into(), String::from_utf8_lossy(&r.body).into_owned()));
                seen.places.push(("Rust error response headers".into(), r.header_text()));
            }
        }
    }
    seen.places.push(("Rust session log".into(), std::fs::read_to_string(&log).unwrap_or_default()));
    let _ = std::fs::remove_file(&log);
}

/// Runs both APIs against `srv` and checks that no credential the server received (and
/// no form of SECRET / TOKEN) shows up anywhere. Returns what was seen, for more checks.
fn check(name: &str, srv: &FaultServer, auth: serde_json::Value, url: &str, mut forbidden: Vec<String>) -> Seen {
    let mut seen = Seen { places: Vec::new() };
    via_capi(&auth, url, &mut seen);
    via_rust(&auth, url, &mut seen);
    let received = srv.requests();
    assert!(!received.is_empty(), "{name}: the server got nothing");
    for r in &received {
        forbidden.extend(credentials_in(r));
    }
    forbidden.retain(|f| f.len() >= 4);
    forbidden.sort();
    forbidden.dedup();
    for (place, text) in &seen.places {
        assert!(!common::contains_jwt(text), "{name}: {place} holds a JWT (a proof or an assertion):\n{text}");
        for f in &forbidden {
            assert!(!text.contains(f.as_str()), "{name}: {place} holds a credential {f:?}:\n{text}");
        }
    }
    seen
}

fn auth(endpoint: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut a = serde_json::json!({"client_id": "m2m.dpop", "client_secret": SECRET, "token_endpoint": endpoint});
    a.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    a
}

fn secret_forms() -> Vec<String> {
    let mut v = encodings(SECRET);
    let basic = format!("m2m.dpop:{}", pct(SECRET, true, false));
    v.extend(b64_all(&basic));
    v.extend(b64_all(&format!("m2m.dpop:{SECRET}")));
    v
}

fn token_forms() -> Vec<String> {
    let mut v = encodings(TOKEN);
    v.extend(b64_all(TOKEN));
    v
}

#[test]
fn token_endpoint_echoing_the_secret_post_form() {
    for n in 0..8 {
        let srv = FaultServer::start(|r| {
            let e = credentials_in(r);
            echo(400, &pick(r, &e), &e, nth(r) % 2 == 1)
        });
        let endpoint = srv.url(&format!("/token/{n}"));
        let seen = check(&format!("secret_post #{n}"), &srv, auth(&endpoint, serde_json::json!({})), &srv.url("/api"), secret_forms());
        let err = &seen.places.iter().find(|(p, _)| p == "C error text").unwrap().1;
        assert!(n % 2 == 1 || err.contains("invalid_request (you sent ****"), "#{n}: the description, masked: {err}");
    }
}

#[test]
fn token_endpoint_echoing_basic_credentials() {
    for n in 0..6 {
        let srv = FaultServer::start(|r| {
            let e = credentials_in(r);
            echo(401, &pick(r, &e), &e, nth(r) % 2 == 1)
        });
        let endpoint = srv.url(&format!("/token/{n}"));
        let a = auth(&endpoint, serde_json::json!({"client_auth_method": "client_secret_basic"}));
        check(&format!("secret_basic #{n}"), &srv, a, &srv.url("/api"), secret_forms());
    }
}

#[test]
fn token_endpoint_echoing_the_client_assertion_and_proof() {
    for n in 0..6 {
        let srv = FaultServer::start(|r| {
            let e = credentials_in(r);
            echo(400, &pick(r, &e), &e, nth(r) % 2 == 1)
        });
        let endpoint = srv.url(&format!("/token/{n}"));
        let a = serde_json::json!({"client_id": "m2m.dpop", "token_endpoint": endpoint, "client_auth_method": "private_key_jwt"});
        check(&format!("private_key_jwt #{n}"), &srv, a, &srv.url("/api"), vec![]);
        assert!(srv.requests().iter().any(|r| String::from_utf8_lossy(&r.body).contains("client_assertion=eyJ")));
    }
}

/// A 2xx token response that is refused (a Bearer token without allow_bearer, a bad
/// expires_in, a body that is a form, not JSON): the token in it is not handed on.
#[test]
fn refused_token_responses_do_not_hand_on_the_token() {
    let bodies = [
        serde_json::json!({"access_token": TOKEN, "token_type": "Bearer", "expires_in": 300}).to_string(),
        serde_json::json!({"access_token": TOKEN, "token_type": "DPoP", "expires_in": "soon"}).to_string(),
        serde_json::json!({"access_token": TOKEN, "token_type": "N_A", "refresh_token": TOKEN}).to_string(),
        format!("access_token={}&token_type=bearer", pct(TOKEN, true, false)),
    ];
    for (i, body) in bodies.into_iter().enumerate() {
        let srv = FaultServer::start(move |r| {
            if r.path.starts_with("/token") {
                let headers = vec![("X-Issued".into(), TOKEN.into()), ("X-Issued-B64".into(), STANDARD.encode(TOKEN))];
                Action::Respond(200, headers, body.clone().into_bytes())
            } else {
                Action::Respond(200, vec![], b"[]".to_vec())
            }
        });
        let a = auth(&srv.url("/token"), serde_json::json!({}));
        let seen = check(&format!("refused token response #{i}"), &srv, a, &srv.url("/api"), token_forms());
        let last = &seen.places.iter().find(|(p, _)| p == "C last_response_body").unwrap().1;
        assert!(last.contains("token_type"), "#{i}: the rest of the body is still there for diagnosis: {last}");
    }
}

/// The resource server echoes the access token, the Authorization header and the proof,
/// with an error status (in the error text, last body, headers, log) and with 200 (in the
/// returned body).
#[test]
fn resource_server_echoing_token_and_proof() {
    for status in [401, 403, 500, 200] {
        let srv = FaultServer::start(move |r| {
            if r.path.starts_with("/token") {
                return token_ok();
            }
            let e = credentials_in(r);
            let mut all = e.clone();
            all.extend(token_forms());
            echo(status, &pick(r, &e), &all, nth(r) % 2 == 1)
        });
        for n in 0..3 {
            let a = auth(&srv.url("/token"), serde_json::json!({}));
            let mut forbidden = token_forms();
            forbidden.extend(secret_forms());
            let seen = check(&format!("RS {status} #{n}"), &srv, a, &srv.url(&format!("/api/{n}")), forbidden);
            let err = &seen.places.iter().find(|(p, _)| p == "C error text").unwrap().1;
            assert!(status == 200 || n % 2 == 1 || err.contains("you sent ****"), "RS {status} #{n}: the description, masked: {err}");
        }
    }
}

/// A three-character secret is a secret too: masked where it stands as a value.
#[test]
fn a_short_secret_is_masked_where_it_stands_alone() {
    const SHORT: &str = "x7q";
    let srv = FaultServer::start(|r| {
        let body = format!(
            r#"{{"error":"invalid_client","error_description":"client_secret '{SHORT}' is wrong","got":"{}"}}"#,
            String::from_utf8_lossy(&r.body)
        );
        Action::Respond(401, vec![("X-Echo".into(), format!("secret={SHORT}"))], body.into_bytes())
    });
    let a = serde_json::json!({"client_id": "m2m.dpop", "client_secret": SHORT, "token_endpoint": srv.url("/token")});
    let seen = check("short secret", &srv, a, &srv.url("/api"), vec![]);
    assert!(srv.requests()[0].body.windows(3).any(|w| w == SHORT.as_bytes()), "the secret was sent");
    for (place, text) in &seen.places {
        assert!(!text.contains(SHORT), "{place} shows the 3-character secret:\n{text}");
    }
    let err = &seen.places.iter().find(|(p, _)| p == "C error text").unwrap().1;
    assert!(err.contains("invalid_client") && err.contains("is wrong"), "the error text still says what happened: {err}");
}

/// Runs `f` on a thread; fails if it has not returned after 90 s. A hang guard, not a
/// timing assertion: the inputs below take milliseconds when masking is linear, and hours
/// (hundreds of MB) when each overlapping value is copied and searched as a secret.
fn within_90s<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(std::time::Duration::from_secs(90)).unwrap_or_else(|_| panic!("{what}: still masking after 90 s"))
}

/// A refused 2xx token response with no session log (issue 18, item 2): the whole body
/// (up to max_response_size, no 64 KiB cut) is looked at for token values. Runs of
/// `password=`, thousands of distinct secret-named members and overlapping values: the
/// call fails quickly with its text, and no value is handed back (those beyond the bound
/// on values learnt from one response are masked by their member name).
#[test]
fn a_refused_token_response_made_to_be_quadratic_is_masked_quickly() {
    let members: Vec<String> = (0..40_000).map(|i| format!(r#"{{"access_token":"tok-{i:06}-abcdefgh"}}"#)).collect();
    let bodies: Vec<(&str, String)> = vec![
        ("54 KB of password=", "password=".repeat(6_000)),
        ("1 MB of password=", "password=".repeat(120_000)),
        ("distinct secret-named members", format!(r#"{{"token_type":"Bearer","m":[{}]}}"#, members.join(","))),
        ("overlapping values", "access_token=password=client_secret=\"d\":".repeat(30_000)),
        ("password=x& runs", format!("token_type=bearer&{}", "password=tok-0x-abcdefgh&".repeat(40_000))),
    ];
    for (name, body) in bodies {
        let b = body.clone();
        let srv = FaultServer::start(move |r| {
            if r.path.starts_with("/token") {
                Action::Respond(200, vec![("X-Echo".into(), "tok-039999-abcdefgh".into())], b.clone().into_bytes())
            } else {
                Action::Respond(200, vec![], b"[]".to_vec())
            }
        });
        let a = auth(&srv.url("/token"), serde_json::json!({}));
        let url = srv.url("/api");
        let e = within_90s(name, move || {
            let http = HttpClient::new();
            http.set_dpop_key(Arc::new(EcKey::generate().unwrap()));
            http.set_auth_token(&a.to_string()).unwrap();
            http.quick_get_str(&url).unwrap_err()
        });
        assert!(e.message.contains("token"), "{name}: {}", e.message);
        let r = e.response.as_ref().expect("the refused response is carried");
        let shown = String::from_utf8_lossy(&r.body);
        assert!(!shown.contains("tok-0") && !shown.contains(SECRET), "{name}: a token value is handed back: {}", &shown[..shown.len().min(300)]);
        assert!(!e.message.contains("tok-0"), "{name}: {}", e.message);
        if body.contains("tok-039999-abcdefgh") {
            assert!(!r.header_text().contains("tok-0"), "{name}: a token value in the headers: {}", r.header_text());
        }
    }
}

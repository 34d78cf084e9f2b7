//! Servers that echo back the credentials they received — the client secret in every
//! encoding, the Basic credentials, the private_key_jwt assertion, the DPoP proofs and the
//! access token — in their bodies and in their response headers, at the token endpoint and
//! at the resource server, with error statuses and with 2xx. None of it may reach an error
//! text, `last_response_body`, the last response headers, a returned body or the session
//! log, through the C ABI or the Rust API (issue 10, item 2).
//!
//! What is forbidden is derived from what the server really received, so the checks cannot
//! pass because nothing was sent.

use crate::common;

use std::ffi::c_char;
use std::path::PathBuf;
use std::sync::Arc;

use crate::common::capi::{c, take};
use crate::common::fault::{Action, FaultServer, Received};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
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

/// Runs test `name` in a child process of its own (see [`common::alone`]): the values of
/// earlier calls are kept process-wide and bounded, and the other tests of this binary,
/// running meanwhile, would push the ones these tests look for out of the bound.
fn alone(name: &str) -> bool {
    common::alone(module_path!(), name)
}

/// A scripted AS + RS for issue 18 item 6: the token endpoint issues a new token on every
/// request (`Earlier+Tok/en-N-…`, valid `expires_in` seconds), and the resource server
/// answers each request with `status` and the credentials of the PREVIOUS request it got
/// — its proof and its access token, in every echoable form — as a cache in front of a
/// server, or a server that keeps the last request for debugging, would.
fn echoing_the_previous_request(status: u16, expires_in: u64) -> FaultServer {
    let issued = std::sync::atomic::AtomicUsize::new(0);
    let previous: std::sync::Mutex<Option<Received>> = std::sync::Mutex::new(None);
    FaultServer::start(move |r| {
        if r.path.starts_with("/token") {
            let n = issued.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let salt = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
            let token = format!("Earlier+Tok/en-{n}-{salt:x}");
            let body = serde_json::json!({"access_token": token, "token_type": "DPoP", "expires_in": expires_in});
            return Action::Respond(200, vec![("Content-Type".into(), "application/json".into())], body.to_string().into_bytes());
        }
        let before = previous.lock().unwrap().replace(r.clone());
        let e = before.as_ref().map(credentials_in).unwrap_or_default();
        echo(status, &e.first().cloned().unwrap_or_default(), &e, nth(r) % 2 == 1)
    })
}

/// Issue 18 item 6: a proof or an access token of an EARLIER call (another Http object,
/// another key, another thread) that a server echoes is masked too, while the token is
/// still valid and the proof within the window a server would accept it in. Each `check`
/// makes two calls with their own keys and tokens (C ABI, then Rust API on another
/// object), so the second call's answer holds the first call's proof and token.
#[test]
fn a_proof_or_token_of_an_earlier_call_echoed_later_is_masked() {
    if !alone("a_proof_or_token_of_an_earlier_call_echoed_later_is_masked") {
        return;
    }
    for status in [200, 401, 500] {
        let srv = echoing_the_previous_request(status, 300);
        for n in 0..2 {
            let a = auth(&srv.url("/token"), serde_json::json!({}));
            check(&format!("echo of the previous request, RS {status} #{n}"), &srv, a, &srv.url(&format!("/api/{n}")), secret_forms());
        }
        // On another thread: the earlier calls' values are process-wide, not per thread.
        let (url, token_url) = (srv.url("/api/1"), srv.url("/token"));
        let seen = std::thread::spawn(move || {
            let mut seen = Seen { places: Vec::new() };
            via_rust(&auth(&token_url, serde_json::json!({})), &url, &mut seen);
            seen
        })
        .join()
        .unwrap();
        let received = srv.requests();
        assert!(received.iter().filter(|r| r.path.starts_with("/token")).count() >= 5, "every call had its own token");
        let forbidden: Vec<String> = received.iter().flat_map(credentials_in).filter(|f| f.len() >= 4).collect();
        for (place, text) in &seen.places {
            assert!(!common::contains_jwt(text), "RS {status}, other thread: {place} holds a JWT (an earlier proof):\n{text}");
            for f in &forbidden {
                assert!(!text.contains(f.as_str()), "RS {status}, other thread: {place} holds an earlier credential {f:?}:\n{text}");
            }
        }
    }
    // dpopkit_token_cache_clear forgets (and wipes) them.
    assert_ne!(dpopkit::core::redact::later_count(), (0, 0));
    assert_eq!(dpopkit::capi::common::dpopkit_token_cache_clear(), 1);
    assert_eq!(dpopkit::core::redact::later_count(), (0, 0));
}

/// Issue 18 item 6, renewal: one object, a token valid for 2 s (renewed after 1 s). The
/// second call fetches a new token; the server echoes the first call's request, with the
/// old token — renewed, but still valid — and the first call's proof.
#[test]
fn a_renewed_but_still_valid_token_echoed_later_is_masked() {
    if !alone("a_renewed_but_still_valid_token_echoed_later_is_masked") {
        return;
    }
    for status in [200, 500] {
        let srv = echoing_the_previous_request(status, 2);
        let a = auth(&srv.url("/token"), serde_json::json!({}));
        // Rust API.
        let log = scratch("renewed");
        let http = HttpClient::new();
        http.set_dpop_key(Arc::new(EcKey::generate().unwrap()));
        http.set_auth_token(&a.to_string()).unwrap();
        http.set_session_log(Some(&log)).unwrap();
        let _ = http.quick_get_str(&srv.url("/api/0"));
        let first_log_len = std::fs::read_to_string(&log).unwrap_or_default().len();
        // C ABI, its own handle and key, same scenario.
        let clog = scratch("renewed-capi");
        let key = dpopkit_key_new();
        assert_eq!(dpopkit_key_generate(key), 1);
        let h = dpopkit_http_new();
        assert_eq!(dpopkit_http_set_dpop_key(h, key), 1);
        assert_eq!(unsafe { dpopkit_http_set_auth_token(h, c(&a.to_string()).as_ptr()) }, 1);
        assert_eq!(unsafe { dpopkit_http_set_session_log_filename(h, c(clog.to_str().unwrap()).as_ptr()) }, 1);
        let _ = take(unsafe { dpopkit_http_quick_get_str(h, c(&srv.url("/api/0")).as_ptr()) });
        std::thread::sleep(std::time::Duration::from_millis(1200));
        let mut places = Vec::new();
        // Rust: its second call renews the token; the answer echoes the C ABI's call.
        match http.quick_get_str(&srv.url("/api/1")) {
            Ok((body, resp)) => {
                places.push(("Rust returned body".to_string(), body));
                places.push(("Rust response headers".to_string(), resp.header_text()));
            }
            Err(e) => {
                places.push(("Rust error text".to_string(), e.message.clone()));
                if let Some(r) = &e.response {
                    places.push(("Rust error response body".to_string(), String::from_utf8_lossy(&r.body).into_owned()));
                }
            }
        }
        let rust_log = std::fs::read_to_string(&log).unwrap_or_default();
        places.push(("Rust session log (second call)".to_string(), rust_log[first_log_len.min(rust_log.len())..].to_string()));
        // C ABI: renews too; the answer echoes the Rust call's second request.
        let got = take(unsafe { dpopkit_http_quick_get_str(h, c(&srv.url("/api/1")).as_ptr()) });
        places.push(("C returned body".to_string(), got.unwrap_or_default()));
        places.push(("C error text".to_string(), take(dpopkit_last_error_text(h)).unwrap_or_default()));
        places.push(("C last_response_body".to_string(), take(dpopkit_http_last_response_body(h)).unwrap_or_default()));
        places.push(("C last_response_header".to_string(), take(dpopkit_http_last_response_header(h)).unwrap_or_default()));
        places.push(("C session log".to_string(), std::fs::read_to_string(&clog).unwrap_or_default()));
        dpopkit_destroy(h);
        dpopkit_destroy(key);
        let _ = std::fs::remove_file(&log);
        let _ = std::fs::remove_file(&clog);
        let received = srv.requests();
        assert_eq!(received.iter().filter(|r| r.path.starts_with("/token")).count(), 4, "each object renewed its token once");
        let mut forbidden: Vec<String> = received.iter().flat_map(credentials_in).filter(|f| f.len() >= 4).collect();
        forbidden.sort();
        forbidden.dedup();
        for (place, text) in &places {
            assert!(!common::contains_jwt(text), "RS {status}: {place} holds a JWT (an earlier proof):\n{text}");
            for f in &forbidden {
                assert!(!text.contains(f.as_str()), "RS {status}: {place} holds an earlier credential {f:?}:\n{text}");
            }
        }
    }
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
        assert!(
            !shown.contains("tok-0") && !shown.contains(SECRET),
            "{name}: a token value is handed back: {}",
            &shown[..shown.len().min(300)]
        );
        assert!(!e.message.contains("tok-0"), "{name}: {}", e.message);
        if body.contains("tok-039999-abcdefgh") {
            assert!(!r.header_text().contains("tok-0"), "{name}: a token value in the headers: {}", r.header_text());
        }
    }
}

// ---------------------------------------------------------------------------------------
// Issue 18, item 7: more encodings a server can echo the client secret in.

/// .NET's System.Text.Json: characters as `\uXXXX` (`+` as `\u002B`); `all` escapes every
/// character (else only the non-alphanumeric ones), `upper` picks the hex case, and every
/// third character is left literal when `mixed`.
fn dotnet_escaped(s: &str, all: bool, upper: bool, mixed: bool) -> String {
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if (mixed && i % 3 == 0 && ch != '"' && ch != '\\') || (!all && ch.is_ascii_alphanumeric()) {
            out.push(ch);
            continue;
        }
        let mut buf = [0u16; 2];
        for u in ch.encode_utf16(&mut buf) {
            out.push_str(&if upper { format!("\\u{:04X}", u) } else { format!("\\u{:04x}", u) });
        }
    }
    out
}

/// HTML/XML character references, a different kind per character: named, decimal, hex with
/// `x` and with `X` (mixed case digits), and literal.
fn html_escaped(s: &str) -> String {
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        let named = match ch {
            '&' => Some("&amp;"),
            '<' => Some("&lt;"),
            '>' => Some("&gt;"),
            '"' => Some("&quot;"),
            '\'' => Some("&apos;"),
            _ => None,
        };
        match (named, i % 4) {
            (Some(n), _) => out.push_str(n),
            (None, 0) => out.push_str(&format!("&#{};", ch as u32)),
            (None, 1) => out.push_str(&format!("&#x{:X};", ch as u32)),
            (None, 2) => out.push_str(&format!("&#X{:x};", ch as u32)),
            _ => out.push(ch),
        }
    }
    out
}

/// The part of `dump` (the base64 of `data`) made only of the bytes `data[at..at + len]`:
/// the full 3-byte groups inside it, what a masker must hide whatever surrounds it.
fn b64_core_of(dump: &str, at: usize, len: usize) -> String {
    let g0 = at.div_ceil(3);
    let g1 = (at + len) / 3;
    dump[g0 * 4..g1 * 4].to_string()
}

fn hex(b: &[u8], upper: bool) -> String {
    b.iter().map(|x| if upper { format!("{x:02X}") } else { format!("{x:02x}") }).collect()
}

fn utf16(s: &str, le: bool) -> Vec<u8> {
    s.encode_utf16().flat_map(|u| if le { u.to_le_bytes() } else { u.to_be_bytes() }).collect()
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// Deflate "stored" blocks (no compression) holding `data`, split at `cut`: the secret in
/// it is not contiguous in the bytes sent, so only a decoder sees it whole.
fn stored_deflate(data: &[u8], cut: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for (last, part) in [(0u8, &data[..cut]), (1u8, &data[cut..])] {
        let n = part.len() as u16;
        out.push(last);
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(&(!n).to_le_bytes());
        out.extend_from_slice(part);
    }
    out
}

fn gzip_stored(data: &[u8], cut: usize) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    out.extend(stored_deflate(data, cut));
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

fn zlib_stored(data: &[u8], cut: usize) -> Vec<u8> {
    let (mut a, mut b) = (1u32, 0u32);
    for &x in data {
        a = (a + u32::from(x)) % 65521;
        b = (b + a) % 65521;
    }
    let mut out = vec![0x78, 0x01];
    out.extend(stored_deflate(data, cut));
    out.extend_from_slice(&((b << 16) | a).to_be_bytes());
    out
}

/// The payload of stored deflate blocks (what the helpers above make), or `None`.
fn inflate_stored(mut d: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let (&head, rest) = d.split_first()?;
        let n = usize::from(u16::from_le_bytes([*rest.first()?, *rest.get(1)?]));
        out.extend_from_slice(rest.get(4..4 + n)?);
        d = &rest[4 + n..];
        if head & 1 == 1 {
            return Some(out);
        }
    }
}

/// What a returned body holds once any gzip / zlib wrapping the helpers make is undone.
fn unwrapped(body: &[u8]) -> Vec<u8> {
    if body.starts_with(&[0x1f, 0x8b]) {
        return inflate_stored(&body[10..]).unwrap_or_default();
    }
    if body.starts_with(&[0x78, 0x01]) {
        return inflate_stored(&body[2..]).unwrap_or_default();
    }
    body.to_vec()
}

/// The echo of case `n` for a token request that sent `form` (the body received) and
/// the form-encoded secret in it: (content type, content encoding, body, forbidden forms).
fn echo_case(n: usize, form: &[u8]) -> (String, Option<&'static str>, Vec<u8>, Vec<String>) {
    let sent = pct(SECRET, true, false);
    let at = form.windows(sent.len()).position(|w| w == sent.as_bytes()).expect("the form body holds the secret");
    let json = |echo: &str| format!(r#"{{"error":"invalid_client","error_description":"bad secret","echo":"{echo}"}}"#).into_bytes();
    let ct_json = "application/json".to_string();
    match n {
        0..=3 => {
            let e = dotnet_escaped(SECRET, n >= 2, n % 2 == 0, n == 3);
            (ct_json, None, json(&e), vec![e])
        }
        4 => {
            let e = html_escaped(SECRET);
            ("text/html".into(), None, format!("<p>Your secret {e} is wrong</p>").into_bytes(), vec![e])
        }
        5..=10 => {
            // A dump of the whole form body, after 0, 1 or 2 bytes of something else.
            let pad = (n - 5) % 3;
            let mut data = b"xyz"[..pad].to_vec();
            data.extend_from_slice(form);
            let dump = if n < 8 { STANDARD.encode(&data) } else { URL_SAFE.encode(&data) };
            let core = b64_core_of(&dump, pad + at, sent.len());
            ("text/plain".into(), None, format!("request dump: {dump}").into_bytes(), vec![core])
        }
        11 | 12 => {
            let dump = hex(form, n == 12);
            let inner = hex(sent.as_bytes(), n == 12);
            ("text/plain".into(), None, format!("request hex: {dump}").into_bytes(), vec![inner])
        }
        13 | 14 => {
            let le = n == 13;
            let mut body = b"secret as UTF-16: ".to_vec();
            body.extend(utf16(SECRET, le));
            let forbidden = String::from_utf8_lossy(&utf16(SECRET, le)).into_owned();
            ("text/plain".into(), None, body, vec![forbidden, String::from_utf8_lossy(&utf16("S3cr&t/Va+l ue%", le)).into_owned()])
        }
        _ => {
            let plain = json(SECRET.replace('\\', "\\\\").replace('"', "\\\"").as_str());
            let raw_at = plain.windows(4).position(|w| w == b"S3cr").unwrap();
            let (enc, body) =
                if n == 15 { ("gzip", gzip_stored(&plain, raw_at + 5)) } else { ("deflate", zlib_stored(&plain, raw_at + 5)) };
            (ct_json, Some(enc), body, vec![])
        }
    }
}

const ECHO_CASES: usize = 17;

/// The token endpoint echoes the client secret (or the whole form body it got) in each of
/// the encodings above: none of them reaches the error text, the last response body, the
/// returned error's body or the session log, through the C ABI or the Rust API. A gzip or
/// deflate body (which dpopkit did not ask for) is not handed back at all.
#[test]
fn a_secret_echoed_in_dotnet_html_dump_utf16_or_compressed_form_is_masked() {
    for n in 0..ECHO_CASES {
        let srv = FaultServer::start(move |r| {
            let (ct, enc, body, forms) = echo_case(n, &r.body);
            let mut headers = vec![("Content-Type".to_string(), ct)];
            // Each form that can be a header value is echoed in a header too.
            headers.extend(forms.into_iter().filter(|f| header_safe(f)).map(|f| ("X-Echo".to_string(), f)));
            if let Some(e) = enc {
                headers.push(("Content-Encoding".into(), e.into()));
            }
            Action::Respond(401, headers, body)
        });
        let endpoint = srv.url(&format!("/token/{n}"));
        let a = auth(&endpoint, serde_json::json!({}));
        // The forms of this case, computed from the body this server got.
        let probe = FaultServer::start(|_| Action::Respond(401, vec![], Vec::new()));
        let _ = client_of(&auth(&probe.url("/token"), serde_json::json!({}))).quick_get_str(&probe.url("/api"));
        let form = probe.requests()[0].body.clone();
        let (_, _, _, mut forbidden) = echo_case(n, &form);
        forbidden.retain(|f| f.len() >= 8);
        let seen = check(&format!("echo encoding #{n}"), &srv, a.clone(), &srv.url("/api"), forbidden.clone());
        // What the server really sent holds the secret (the check cannot pass vacuously).
        let (_, _, sent, _) = echo_case(n, &srv.requests()[0].body);
        let plain = unwrapped(&sent);
        let text = String::from_utf8_lossy(&plain);
        assert!(
            forbidden.iter().all(|f| text.contains(f.as_str())) && (n < 15 || text.contains("S3cr&t")),
            "#{n}: the echo holds the secret"
        );
        for (place, shown) in &seen.places {
            let shown = String::from_utf8_lossy(&unwrapped(shown.as_bytes())).into_owned();
            assert!(!shown.contains("S3cr&t/Va"), "#{n}: {place} holds the secret:\n{shown}");
        }
        // The Rust API's error response, as bytes (a compressed body is undone first).
        let e = client_of(&a).quick_get_str(&srv.url("/api")).unwrap_err();
        let body = unwrapped(&e.response.as_ref().expect("the response is carried").body);
        let body = String::from_utf8_lossy(&body);
        for f in forbidden.iter().map(String::as_str).chain(["S3cr&t/Va"]) {
            assert!(!body.contains(f), "#{n}: the returned body holds {f:?}:\n{body}");
        }
        if n >= 15 {
            assert!(body.contains("withheld") && body.contains("Content-Encoding"), "#{n}: says why the body is not there: {body}");
        }
    }
}

fn client_of(auth: &serde_json::Value) -> HttpClient {
    let http = HttpClient::new();
    http.set_dpop_key(Arc::new(EcKey::generate().unwrap()));
    http.set_auth_token(&auth.to_string()).unwrap();
    http
}

/// A resource server that answers 200 with a gzip body (dpopkit asked for none) holding the
/// access token split across two deflate blocks: the body a call returns is a text that
/// says why the body is withheld, not bytes that hold the token.
#[test]
fn a_compressed_2xx_body_from_the_resource_server_is_withheld() {
    let srv = FaultServer::start(|r| {
        if r.path.starts_with("/token") {
            return token_ok();
        }
        let plain = format!(r#"{{"you_sent":"{}"}}"#, r.header("authorization").unwrap_or_default());
        let cut = plain.find("Acc3ss").unwrap() + 4;
        let headers = vec![("Content-Type".into(), "application/json".into()), ("Content-Encoding".into(), "gzip".into())];
        Action::Respond(200, headers, gzip_stored(plain.as_bytes(), cut))
    });
    let http = client_of(&auth(&srv.url("/token"), serde_json::json!({})));
    let resp = http.quick_get_bytes(&srv.url("/api")).unwrap();
    let text = String::from_utf8_lossy(&unwrapped(&resp.body)).into_owned();
    assert!(!text.contains("Acc3ss+Tok"), "the token came back: {text}");
    assert!(text.contains("withheld") && text.contains("'gzip'"), "{text}");
    assert!(resp.header("content-encoding").is_none(), "{}", resp.header_text());
    // What the server sent did hold the token (the check is not vacuous).
    assert!(srv.requests().iter().any(|r| r.header("authorization").is_some_and(|a| a.contains(TOKEN))));
}

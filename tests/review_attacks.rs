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

/// A thread that calls dpopkit from a thread-local destructor of its own (C++ and Rust
/// programs do: a pooled client closed in a `thread_local` destructor), after dpopkit's
/// own thread-locals are gone: the call must work (or fail with a text that says why),
/// never panic (`DPOPKIT_RESULT_PANIC`, "please report this bug") and never abort.
#[test]
fn a_call_from_a_thread_local_destructor_after_dpopkits_are_gone() {
    use common::capi::{c, take};
    use dpopkit::capi::common::{dpopkit_destroy, dpopkit_last_error_code, dpopkit_last_error_text};
    use dpopkit::capi::http::{
        dpopkit_http_last_status, dpopkit_http_new, dpopkit_http_quick_get_str, dpopkit_http_set_auth_token, dpopkit_http_set_dpop_key,
    };
    use dpopkit::capi::key::{dpopkit_key_generate, dpopkit_key_new};
    use std::sync::Mutex;

    /// Body, result code, error text and status of the late call.
    type Outcome = (Option<String>, u32, Option<String>, i32);
    static OUTCOME: Mutex<Option<Outcome>> = Mutex::new(None);
    struct CallsOnDrop(String);
    impl Drop for CallsOnDrop {
        fn drop(&mut self) {
            // With an AuthToken: the token fetch, the proof and the secret set all run.
            let key = dpopkit_key_new();
            assert_eq!(dpopkit_key_generate(key), 1);
            let http = dpopkit_http_new();
            assert_eq!(dpopkit_http_set_dpop_key(http, key), 1);
            let auth = serde_json::json!({"client_id": "m2m", "client_secret": "late-secret", "token_endpoint": format!("{}/token", self.0)});
            assert_eq!(unsafe { dpopkit_http_set_auth_token(http, c(&auth.to_string()).as_ptr()) }, 1);
            let body = take(unsafe { dpopkit_http_quick_get_str(http, c(&format!("{}/late", self.0)).as_ptr()) });
            let code = dpopkit_last_error_code(http);
            let text = take(dpopkit_last_error_text(http));
            let status = dpopkit_http_last_status(http);
            dpopkit_destroy(http);
            dpopkit_destroy(key);
            *OUTCOME.lock().unwrap() = Some((body, code, text, status));
        }
    }
    thread_local! {
        static LATE: std::cell::RefCell<Option<CallsOnDrop>> = const { std::cell::RefCell::new(None) };
    }

    let token = long_token();
    let srv = FaultServer::start(move |r| {
        if r.path.starts_with("/token") {
            return token_ok(&token);
        }
        let bound = r.header("authorization").is_some_and(|a| a.starts_with("DPoP ")) && r.header("dpop").is_some();
        Action::Respond(200, vec![], if bound || r.path == "/plain" { b"hello".to_vec() } else { b"unbound".to_vec() })
    });
    let base = srv.url("");
    std::thread::spawn(move || {
        // Registered first, so destroyed last: after every thread-local dpopkit sets up
        // during the call below.
        LATE.with(|l| *l.borrow_mut() = Some(CallsOnDrop(base.clone())));
        let http = dpopkit_http_new();
        let plain = format!("{base}/plain");
        assert_eq!(take(unsafe { dpopkit_http_quick_get_str(http, c(&plain).as_ptr()) }).as_deref(), Some("hello"));
        dpopkit_destroy(http);
    })
    .join()
    .expect("the thread ended normally (no abort, no panic out of a destructor)");
    let (body, code, text, status) = OUTCOME.lock().unwrap().take().expect("the destructor ran its call");
    assert_ne!(code, dpopkit::ffi::result::dpopkit_result::Panic as u32, "a panic inside dpopkit: {text:?}");
    assert_eq!((body.as_deref(), code, status), (Some("hello"), 0, 200), "the late call works: {text:?}");
}

/// A shared host: in a directory others can write to, the log path can already be a hard
/// link to another file (the log would be appended to that file: server-chosen text in
/// someone's ~/.profile), or a file that another user created (mode 0666: they would read
/// every logged response). Both are refused, and nothing is written to them.
#[cfg(unix)]
#[test]
fn a_log_path_that_is_a_hard_link_or_another_users_file_is_refused() {
    use std::os::unix::fs::MetadataExt;
    let d = scratch("shared");
    std::fs::create_dir_all(&d).unwrap();
    let victim = d.join("profile");
    std::fs::write(&victim, "precious\n").unwrap();
    let link = d.join("session.log");
    std::fs::hard_link(&victim, &link).unwrap();
    let e = HttpClient::new().set_session_log(Some(&link)).unwrap_err();
    assert!(e.message.contains("hard link"), "{}", e.message);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");

    // Another user's file: only a test run as root can make one (chown).
    let theirs = d.join("theirs.log");
    std::fs::write(&theirs, "").unwrap();
    let me = std::fs::metadata(&theirs).unwrap().uid();
    let other = if me == 0 { 65534 } else { 0 };
    if std::os::unix::fs::chown(&theirs, Some(other), None).is_ok() {
        let e = HttpClient::new().set_session_log(Some(&theirs)).unwrap_err();
        assert!(e.message.contains("another user"), "{}", e.message);
    }
    // A file of our own is still appended to.
    let mine = d.join("mine.log");
    std::fs::write(&mine, "kept\n").unwrap();
    HttpClient::new().set_session_log(Some(&mine)).unwrap();
    let _ = std::fs::remove_dir_all(&d);
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
    use common::capi::{c, take};
    use dpopkit::capi::common::{dpopkit_destroy, dpopkit_last_error_text};
    use dpopkit::capi::http::{dpopkit_http_new, dpopkit_http_quick_get_str, dpopkit_http_set_timeouts};
    let srv = FaultServer::start(|_| Action::Respond(200, vec![], b"fine".to_vec()));
    let http = dpopkit_http_new();
    assert_eq!(dpopkit_http_set_timeouts(http, u32::MAX, u32::MAX), 1);
    let got = take(unsafe { dpopkit_http_quick_get_str(http, c(&srv.url("/x")).as_ptr()) });
    assert_eq!(got.as_deref(), Some("fine"), "{:?}", take(dpopkit_last_error_text(http)));
    dpopkit_destroy(http);
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
        let log = scratch("json-escapes.log");
        let http = client(&srv.url("/token"), SECRET);
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
    let token = long_token();
    let t = token.clone();
    let srv = FaultServer::start(move |r| {
        if r.path.starts_with("/token") {
            return token_ok(&t);
        }
        let location = format!("https://bad host.example/?seen={t}");
        Action::Respond(302, vec![("Location".into(), location)], Vec::new())
    });
    let http = client(&srv.url("/token"), "secret-of-the-client");
    let e = http.quick_get_str(&srv.url("/api")).unwrap_err();
    assert!(e.message.contains("not followed"), "{}", e.message);
    assert!(piece_of(&token, &e.message, 24).is_none(), "the error text holds a piece of the token: {}", e.message);
}

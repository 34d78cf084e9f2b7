//! Through the C ABI: request headers (sent on API requests only, validated, never
//! to another origin, masked in the log when they look like credentials), response details
//! (header value by name, status text) and binary bodies (any byte value, empty bodies,
//! ownership), against the real peers with nonces required at both servers, and against
//! scripted loopback servers for what the real ones cannot show.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};

use crate::common::Peers;
use crate::common::capi::{Client, c, code, take, text};
use crate::common::fault::{Action, FaultServer, json};
use dpopkit::capi::common::*;
use dpopkit::capi::http::*;
use dpopkit::dpopkit_result as R;

const TOKEN: &str = r#"{"access_token":"fault-token-value","token_type":"DPoP","expires_in":300}"#;

/// Takes ownership of returned bytes (freed with dpopkit_bytes_free).
fn take_bytes(p: *mut u8, len: usize) -> Option<Vec<u8>> {
    if p.is_null() {
        assert_eq!(len, 0, "*out_len is 0 on failure");
        return None;
    }
    let v = unsafe { std::slice::from_raw_parts(p, len) }.to_vec();
    unsafe { dpopkit_bytes_free(p) };
    Some(v)
}

fn set_header(http: i64, name: &str, value: &str) -> i32 {
    unsafe { dpopkit_http_set_request_header(http, c(name).as_ptr(), c(value).as_ptr()) }
}

fn header_value(http: i64, name: &str) -> Option<String> {
    take(unsafe { dpopkit_http_last_response_header_value(http, c(name).as_ptr()) })
}

fn get_bytes(http: i64, url: &str) -> Option<Vec<u8>> {
    let mut len = usize::MAX;
    let p = unsafe { dpopkit_http_quick_get_bytes(http, c(url).as_ptr(), &mut len) };
    take_bytes(p, len)
}

fn request_bytes(http: i64, method: &str, url: &str, ct: Option<&str>, body: Option<&[u8]>) -> Option<Vec<u8>> {
    let ct = ct.map(c);
    let mut len = usize::MAX;
    let p = unsafe {
        dpopkit_http_quick_request_bytes(
            http,
            c(method).as_ptr(),
            c(url).as_ptr(),
            ct.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
            body.map_or(std::ptr::null(), |b| b.as_ptr()),
            body.map_or(0, |b| b.len()),
            &mut len,
        )
    };
    take_bytes(p, len)
}

fn last_body_bytes(http: i64) -> Option<Vec<u8>> {
    let mut len = usize::MAX;
    let p = unsafe { dpopkit_http_last_response_body_bytes(http, &mut len) };
    take_bytes(p, len)
}

fn json_of(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(bytes)))
}

/// The porting flow of the issue's "Done when": a custom Accept header, a POST of JSON with
/// an Idempotency-Key (201 + Location), a binary download of the bytes 0..255, status text
/// and header lookup, with nonces required at the AS and the RS.
#[test]
fn porting_flow_headers_post_location_and_bytes_with_nonces() {
    let peers = Peers::start(&["--as-nonce", "--rs-nonce"]);
    let cl = Client::new(&peers);
    let http = cl.http;
    let log = std::env::temp_dir().join(format!("dpopkit-i12-log-{}.txt", std::process::id()));
    let _ = std::fs::remove_file(&log);
    assert_eq!(unsafe { dpopkit_http_set_session_log_filename(http, c(log.to_str().unwrap()).as_ptr()) }, 1);
    // Before any response: "" status text, no header, an empty (non-NULL) body.
    assert_eq!(take(dpopkit_http_last_status_text(http)).as_deref(), Some(""));
    assert_eq!(header_value(http, "Location"), None);
    assert_eq!(code(http), R::NotFound as u32);
    assert_eq!(last_body_bytes(http), Some(vec![]));

    assert_eq!(set_header(http, "Accept", "application/json"), 1);
    assert_eq!(set_header(http, "X-Correlation-Id", "corr-42"), 1);
    assert_eq!(set_header(http, "X-Api-Key", "api-key-value-9876"), 1);
    let rs = &peers.rs;

    // The headers arrive (and the API key the server echoes back is masked).
    let echoed = json_of(&get_bytes(http, &format!("{rs}/api/echo-headers")).expect("echo"));
    let h = &echoed["headers"];
    assert_eq!(h["accept"], "application/json", "{echoed}");
    assert_eq!(h["x-correlation-id"], "corr-42");
    assert_eq!(h["x-api-key"], "****", "an echoed credential-like header is masked: {echoed}");
    assert!(h["authorization"].as_str().unwrap().starts_with("DPoP "));
    assert_eq!(dpopkit_http_last_status(http), 200);
    assert_eq!(take(dpopkit_http_last_status_text(http)).as_deref(), Some("OK"));
    // Repeated fields are joined; names compare case-insensitively.
    assert_eq!(header_value(http, "x-REPEATED").as_deref(), Some("first, second"));
    assert_eq!(code(http), R::Ok as u32, "a successful lookup after a success");

    // POST JSON with an Idempotency-Key: 201, Location, ETag.
    assert_eq!(set_header(http, "Idempotency-Key", "idem-7f3a"), 1);
    let created = json_of(
        &request_bytes(http, "POST", &format!("{rs}/api/items"), Some("application/json"), Some(br#"{"name":"widget"}"#))
            .expect("201 is a success"),
    );
    assert_eq!(dpopkit_http_last_status(http), 201);
    assert_eq!(take(dpopkit_http_last_status_text(http)).as_deref(), Some("Created"));
    assert_eq!(created["idempotency_key"], "idem-7f3a");
    assert_eq!(created["content_type"], "application/json");
    assert_eq!(created["received"], r#"{"name":"widget"}"#);
    let id = created["id"].as_u64().unwrap();
    assert_eq!(header_value(http, "location"), Some(format!("/api/items/{id}")));
    assert_eq!(header_value(http, "ETag"), Some(format!("\"item-{id}\"")));
    assert_eq!(header_value(http, "X-Not-There"), None);
    assert_eq!(code(http), R::NotFound as u32);
    assert!(text(http).contains("X-Not-There"), "{}", text(http));
    // The text request of the same POST works as well (str API sees the headers too).
    let again = take(unsafe {
        dpopkit_http_quick_request_str(
            http,
            c("POST").as_ptr(),
            c(&format!("{rs}/api/items")).as_ptr(),
            c("application/json").as_ptr(),
            c("{}").as_ptr(),
        )
    })
    .unwrap();
    assert!(again.contains("idem-7f3a"), "{again}");
    assert_eq!(unsafe { dpopkit_http_remove_request_header(http, c("idempotency-key").as_ptr()) }, 1);
    assert_eq!(unsafe { dpopkit_http_remove_request_header(http, c("idempotency-key").as_ptr()) }, 1, "absent is fine");

    // Binary download: every byte value, as bytes; the str API refuses it.
    let all: Vec<u8> = (0..=255u8).collect();
    assert_eq!(get_bytes(http, &format!("{rs}/api/bytes")), Some(all.clone()));
    assert_eq!(last_body_bytes(http), Some(all.clone()));
    assert!(take(dpopkit_http_last_response_body(http)).is_none(), "not text");
    assert!(cl.get(&format!("{rs}/api/bytes")).is_none());
    assert_eq!(code(http), R::ResponseNotText as u32);
    assert!(text(http).contains("as bytes"), "{}", text(http));
    // Upload: any byte value (NUL, invalid UTF-8) round-trips.
    let odd: Vec<u8> = vec![0, 0xff, 0xfe, b'a', 0, 0xc3, 0x28, 0x80];
    assert_eq!(request_bytes(http, "PUT", &format!("{rs}/api/echo-bytes"), Some("application/octet-stream"), Some(&odd)), Some(odd));
    // An empty body: non-NULL, length 0 (204 and a 200 with an empty upload echoed).
    assert_eq!(get_bytes(http, &format!("{rs}/api/empty")), Some(vec![]));
    assert_eq!(dpopkit_http_last_status(http), 204);
    assert_eq!(take(dpopkit_http_last_status_text(http)).as_deref(), Some("No Content"));
    assert_eq!(request_bytes(http, "POST", &format!("{rs}/api/echo-bytes"), None, Some(&[])), Some(vec![]));
    assert_eq!(request_bytes(http, "POST", &format!("{rs}/api/echo-bytes"), None, None), Some(vec![]));

    // A failure: the status, its text, the error body as bytes and a header of it.
    assert!(get_bytes(http, &format!("{rs}/not-api")).is_none());
    assert_eq!(code(http), R::HttpStatus as u32);
    let err_text = text(http);
    assert_eq!(dpopkit_http_last_status(http), 404);
    assert_eq!(header_value(http, "content-type").as_deref(), Some("application/json; charset=utf-8"));
    assert_eq!(code(http), R::HttpStatus as u32, "a successful lookup keeps the failed call's error");
    assert_eq!(text(http), err_text);
    assert_eq!(take(dpopkit_http_last_status_text(http)).as_deref(), Some("Not Found"));
    assert_eq!(json_of(&last_body_bytes(http).unwrap())["error"], "not_found");
    assert_eq!(dpopkit_http_last_status(http), 404, "getters keep the last status");

    // Clear: nothing custom is sent any more.
    assert_eq!(dpopkit_http_clear_request_headers(http), 1);
    let echoed = json_of(&get_bytes(http, &format!("{rs}/api/echo-headers")).unwrap());
    for name in ["x-correlation-id", "x-api-key", "idempotency-key"] {
        assert!(echoed["headers"].get(name).is_none(), "{name} still sent: {echoed}");
    }
    assert_ne!(echoed["headers"]["accept"], "application/json");

    assert_eq!(peers.tokens_issued(), 1, "one token for the whole flow");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("X-Correlation-Id: corr-42") && logged.contains("Accept: application/json"), "{logged}");
    assert!(logged.contains("X-Api-Key: ****") && !logged.contains("api-key-value-9876"), "the API key is masked in the log");
    assert!(logged.contains("Idempotency-Key: idem-7f3a"));
    assert!(!common::contains_jwt(&logged) && !logged.contains("=secret"));
    let _ = std::fs::remove_file(&log);
}

#[test]
fn header_rules_are_enforced_with_texts_that_say_why() {
    let http = dpopkit_http_new();
    for (name, says) in [
        ("Authorization", "access token"),
        ("dpop", "proof"),
        ("Host", "URL"),
        ("Content-Length", "length"),
        ("Transfer-Encoding", "frames"),
        ("Connection", "connections"),
    ] {
        assert_eq!(set_header(http, name, "x"), 0, "{name}");
        assert_eq!(code(http), R::InvalidArgument as u32);
        let t = text(http);
        assert!(t.contains(name) && t.contains("cannot be set") && t.contains(says), "{name}: {t}");
    }
    for bad in ["Bad Name", "X:Y", "", "Ä"] {
        assert_eq!(set_header(http, bad, "v"), 0, "{bad:?}");
        assert!(text(http).contains("not a valid header name"), "{}", text(http));
    }
    for bad in ["a\r\nX-Injected: 1", "a\nb", "a\rb"] {
        assert_eq!(set_header(http, "X-Test", bad), 0);
        let t = text(http);
        assert!(t.contains("line break") && !t.contains("X-Injected"), "{t}");
    }
    // A value with a NUL in the middle cannot come through a C string; bytes past it are
    // simply not part of the value. The core refuses one from Rust:
    assert!(dpopkit::core::HttpClient::new().set_request_header("X", "a\0b").is_err());
    assert_eq!(set_header(http, "X-Empty", ""), 1, "an empty value is a value");
    // NULLs, invalid UTF-8, out_len NULL, body NULL with a length.
    let null = std::ptr::null();
    let bad = c"\xff\xfe".as_ptr();
    unsafe {
        assert_eq!(dpopkit_http_set_request_header(http, null, c("v").as_ptr()), 0);
        assert_eq!(code(http), R::NullArgument as u32);
        assert_eq!(dpopkit_http_set_request_header(http, c("X").as_ptr(), null), 0);
        assert_eq!(code(http), R::NullArgument as u32);
        assert_eq!(dpopkit_http_set_request_header(http, c("X").as_ptr(), bad), 0);
        assert_eq!(code(http), R::InvalidUtf8 as u32);
        assert_eq!(dpopkit_http_remove_request_header(http, null), 0);
        assert_eq!(code(http), R::NullArgument as u32);
        assert_eq!(dpopkit_http_remove_request_header(http, c("Bad Name").as_ptr()), 0);
        assert_eq!(code(http), R::InvalidArgument as u32);
        assert!(dpopkit_http_last_response_header_value(http, null).is_null());
        assert_eq!(code(http), R::NullArgument as u32);
        let url = c("http://127.0.0.1:9/");
        assert!(dpopkit_http_quick_get_bytes(http, url.as_ptr(), std::ptr::null_mut()).is_null());
        assert_eq!(code(http), R::NullArgument as u32);
        assert!(text(http).contains("out_len"));
        assert!(dpopkit_http_last_response_body_bytes(http, std::ptr::null_mut()).is_null());
        assert_eq!(code(http), R::NullArgument as u32);
        let mut len = 77usize;
        let p = dpopkit_http_quick_request_bytes(http, c("POST").as_ptr(), url.as_ptr(), null, std::ptr::null(), 5, &mut len);
        assert!(p.is_null() && len == 0);
        assert_eq!(code(http), R::NullArgument as u32);
        assert!(text(http).contains("body"), "{}", text(http));
        let p = dpopkit_http_quick_get_bytes(http, bad, &mut len);
        assert!(p.is_null() && len == 0);
        assert_eq!(code(http), R::InvalidUtf8 as u32);
        dpopkit_bytes_free(std::ptr::null_mut());
    }
    // At most 64 headers.
    assert_eq!(dpopkit_http_clear_request_headers(http), 1);
    for i in 0..64 {
        assert_eq!(set_header(http, &format!("X-{i}"), "v"), 1);
    }
    assert_eq!(set_header(http, "X-64", "v"), 0);
    assert!(text(http).contains("at most 64"), "{}", text(http));
    assert_eq!(set_header(http, "x-0", "replaced"), 1, "replacing one is not adding one");
    // Bad handles for every new function.
    let key = dpopkit::capi::key::dpopkit_key_new();
    for h in [0, -1, 12345, key] {
        let want = if h == key { R::WrongHandleType } else { R::InvalidHandle } as u32;
        assert_eq!(set_header(h, "X", "v"), 0);
        assert_eq!(code(0), want);
        assert_eq!(unsafe { dpopkit_http_remove_request_header(h, c("X").as_ptr()) }, 0);
        assert_eq!(code(0), want);
        assert_eq!(dpopkit_http_clear_request_headers(h), 0);
        assert_eq!(code(0), want);
        assert!(get_bytes(h, "http://127.0.0.1:9/").is_none());
        assert_eq!(code(0), want);
        assert!(request_bytes(h, "GET", "http://127.0.0.1:9/", None, None).is_none());
        assert_eq!(code(0), want);
        assert!(header_value(h, "X").is_none());
        assert_eq!(code(0), want);
        assert!(last_body_bytes(h).is_none());
        assert_eq!(code(0), want);
        assert!(dpopkit_http_last_status_text(h).is_null());
    }
    assert_eq!(dpopkit_destroy(key), 1);
    assert_eq!(dpopkit_destroy(http), 1);
}

/// Headers go on API requests only: not on the token request (nor on discovery), not to
/// another origin a redirect leads to, and not back to the first origin once the chain left
/// it; a same-origin hop keeps them. A call's content type replaces a set Content-Type.
#[test]
fn headers_stay_on_api_requests_to_the_original_origin() {
    let a_port = Arc::new(AtomicU16::new(0));
    let seen_a = a_port.clone();
    let b = FaultServer::start(move |_| {
        let a = seen_a.load(Ordering::SeqCst);
        Action::Respond(307, vec![("Location".into(), format!("http://127.0.0.1:{a}/back"))], vec![])
    });
    let b_away = b.url("/away");
    let a = FaultServer::start(move |r| match r.path.as_str() {
        "/token" => json(200, TOKEN),
        "/start" => Action::Respond(302, vec![("Location".into(), "/same".into())], vec![]),
        "/same" => Action::Respond(302, vec![("Location".into(), b_away.clone())], vec![]),
        _ => json(200, r#"{"ok":true}"#),
    });
    a_port.store(a.port, Ordering::SeqCst);
    let http = dpopkit::core::HttpClient::new();
    http.set_dpop_key(Arc::new(dpopkit::core::EcKey::generate().unwrap()));
    let auth = serde_json::json!({"client_id":"c","client_secret":"s3cr3t-value","token_endpoint":a.url("/token")});
    http.set_auth_token(&auth.to_string()).unwrap();
    http.set_request_header("X-Tenant", "tenant-1").unwrap();
    http.set_request_header("Content-Type", "text/x-set-one").unwrap();
    http.quick_get_str(&a.url("/start")).unwrap();
    let at_a = a.requests();
    let find = |p: &str| at_a.iter().find(|r| r.path == p).unwrap_or_else(|| panic!("{p} not requested: {at_a:?}"));
    assert_eq!(find("/token").header("x-tenant"), None, "never on the token request");
    assert_eq!(find("/start").header("x-tenant"), Some("tenant-1"));
    assert_eq!(find("/start").header("content-type"), Some("text/x-set-one"));
    assert_eq!(find("/same").header("x-tenant"), Some("tenant-1"), "a same-origin hop keeps them");
    assert_eq!(find("/back").header("x-tenant"), None, "the chain left the origin: not on the way back");
    assert!(b.requests().iter().all(|r| r.header("x-tenant").is_none()), "never to another origin");
    // The call's content type wins over the set one (no duplicate Content-Type).
    http.send("POST", &a.url("/post"), Some("application/json"), Some(b"{}")).unwrap();
    let post = a.requests().into_iter().find(|r| r.path == "/post").unwrap();
    assert_eq!(post.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case("content-type")).count(), 1);
    assert_eq!(post.header("content-type"), Some("application/json"));
    // Discovery (issuer) requests do not carry them either.
    let meta_hits = Arc::new(std::sync::Mutex::new(Vec::new()));
    let hits = meta_hits.clone();
    let port = Arc::new(AtomicU16::new(0));
    let p2 = port.clone();
    let disc = FaultServer::start(move |r| {
        hits.lock().unwrap().push(r.clone());
        let base = format!("http://127.0.0.1:{}", p2.load(Ordering::SeqCst));
        match r.path.as_str() {
            "/.well-known/oauth-authorization-server" | "/.well-known/openid-configuration" => json(
                200,
                &serde_json::json!({"issuer": base, "token_endpoint": format!("{base}/token"), "dpop_signing_alg_values_supported": ["ES256"]}).to_string(),
            ),
            "/token" => json(200, TOKEN),
            _ => json(200, "{}"),
        }
    });
    port.store(disc.port, Ordering::SeqCst);
    let auth = serde_json::json!({"client_id":"c","client_secret":"s3cr3t-value","issuer":disc.url("")});
    http.set_auth_token(&auth.to_string()).unwrap();
    http.quick_get_str(&disc.url("/api")).unwrap();
    let hits = meta_hits.lock().unwrap();
    assert!(hits.iter().any(|r| r.path.starts_with("/.well-known/")), "discovery happened: {hits:?}");
    for r in hits.iter() {
        let want = (r.path == "/api").then_some("tenant-1");
        assert_eq!(r.header("x-tenant"), want, "{}", r.path);
    }
}

/// A credential-like header a server echoes back is masked in the body returned as text
/// and as bytes, in the error text and in the last response; other headers are not.
#[test]
fn echoed_credential_headers_are_masked_in_bytes_too() {
    let srv = FaultServer::start(|r| {
        let echo = format!(
            "cookie={} key={} tok={} plain={}",
            r.header("cookie").unwrap_or(""),
            r.header("x-api-key").unwrap_or(""),
            r.header("x-auth-token").unwrap_or(""),
            r.header("x-plain").unwrap_or("")
        );
        let status = if r.path == "/fail" { 400 } else { 200 };
        Action::Respond(
            status,
            vec![("Content-Type".into(), "application/octet-stream".into())],
            [&[0u8, 0xff][..], echo.as_bytes()].concat(),
        )
    });
    let http = dpopkit_http_new();
    assert_eq!(set_header(http, "Cookie", "session=cookie-value-123; theme=dark"), 1);
    assert_eq!(set_header(http, "X-Api-Key", "api-key-abcdef"), 1);
    assert_eq!(set_header(http, "X-Auth-Token", "auth-token-zyx987"), 1);
    assert_eq!(set_header(http, "X-Plain", "plain-value-shown"), 1);
    let body = get_bytes(http, &srv.url("/ok")).unwrap();
    assert_eq!(&body[..2], &[0, 0xff], "binary prefix kept");
    let text_part = String::from_utf8_lossy(&body[2..]).to_string();
    for secret in ["cookie-value-123", "api-key-abcdef", "auth-token-zyx987"] {
        assert!(!text_part.contains(secret), "{secret} echoed back: {text_part}");
    }
    assert!(text_part.contains("plain-value-shown"), "{text_part}");
    assert!(get_bytes(http, &srv.url("/fail")).is_none());
    let last = last_body_bytes(http).unwrap();
    assert!(!String::from_utf8_lossy(&last).contains("api-key-abcdef"));
    assert_eq!(dpopkit_destroy(http), 1);
}

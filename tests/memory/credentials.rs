//! Client credentials are built in buffers that are wiped: the Basic credentials, raw and
//! base64, the form body with the secret, a request's Authorization value.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

use dpopkit::core::form;
use dpopkit::core::http::wipe_headers;
use dpopkit::core::token::AuthConfig;

use crate::freed_copies;

/// A secret long enough that no unrelated block holds it by chance, with characters that
/// form encoding changes.
const SECRET: &str = "Zq8/wX+ c0nf1dential:S3cret%value-for-the-scanner";

fn auth(method: &str) -> AuthConfig {
    let json = serde_json::json!({
        "client_id": "m2m.dpop", "client_secret": SECRET, "client_auth_method": method,
        "token_endpoint": "https://as.example/token",
    });
    AuthConfig::from_json(&json.to_string()).unwrap()
}

fn form_creds() -> String {
    let mut creds = String::from("m2m.dpop:");
    form::encode_component(SECRET, &mut creds);
    creds
}

#[test]
fn the_scanner_finds_an_unwiped_copy() {
    let b64 = STANDARD.encode(form_creds());
    let found = freed_copies(&[b64.as_bytes()], || {
        let copy = format!("Basic {b64}");
        drop(std::hint::black_box(copy));
    });
    assert_eq!(found, 1);
}

#[test]
fn basic_credentials_leave_no_copy() {
    let cfg = auth("client_secret_basic");
    let creds = form_creds();
    let b64 = STANDARD.encode(&creds);
    let expected = format!("Basic {b64}");
    let mut same = false;
    let found = freed_copies(&[creds.as_bytes(), b64.as_bytes(), &creds.as_bytes()[..24]], || {
        let header = cfg.basic_authorization();
        same = header.as_str() == expected.as_str();
        drop(std::hint::black_box(header));
    });
    assert!(same, "the header is not Basic base64(form(id):form(secret))");
    assert_eq!(found, 0, "freed blocks still held the Basic credentials");
}

#[test]
fn the_token_request_form_leaves_no_copy() {
    let mut encoded = String::new();
    form::encode_component(SECRET, &mut encoded);
    // The first 16 encoded bytes: a partial copy left by a growing buffer counts too.
    let mut contains = false;
    let found = freed_copies(&[&encoded.as_bytes()[..16]], || {
        let pairs = [("client_secret", SECRET), ("client_id", "m2m.dpop"), ("scope", "api"), ("grant_type", "client_credentials")];
        let body = Zeroizing::new(form::encode(&pairs));
        contains = body.contains(encoded.as_str());
        drop(std::hint::black_box(body));
    });
    assert!(contains);
    assert_eq!(found, 0, "freed blocks still held the form-encoded client secret");
}

#[test]
fn wiped_headers_leave_no_copy() {
    let value = format!("DPoP {}", "eyJ0eXAiOiJhdCtqd3QifQ.access-token-under-test".repeat(2));
    let found = freed_copies(&[value.as_bytes()], || {
        let mut headers = vec![("Authorization".to_string(), value.clone())];
        wipe_headers(&mut headers);
        drop(std::hint::black_box(headers));
    });
    assert_eq!(found, 0);
    // The control: the same list dropped without wiping is found.
    let found = freed_copies(&[value.as_bytes()], || drop(std::hint::black_box(vec![("Authorization".to_string(), value.clone())])));
    assert_eq!(found, 1);
}

//! Small pieces for checks against hostile scripted servers: a scratch path, a long token,
//! a token endpoint's answer, a finder of pieces of a secret, a client with a secret.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use dpopkit::core::{EcKey, HttpClient};

use super::fault::Action;

/// A path for one test under the system temp dir (not created).
pub fn scratch(name: &str) -> PathBuf {
    use std::hash::{BuildHasher, RandomState};
    let r = RandomState::new().hash_one(std::time::Instant::now());
    std::env::temp_dir().join(format!("dpopkit-hostile-{name}-{}-{r}", std::process::id()))
}

/// A long, mixed-case access token (what real servers issue: JWTs of several hundred bytes).
pub fn long_token() -> String {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    (0..600).map(|i| alphabet[(i * 37 + i / 7) % alphabet.len()] as char).collect()
}

pub fn token_ok(token: &str) -> Action {
    let body = serde_json::json!({"access_token": token, "token_type": "DPoP", "expires_in": 300});
    Action::Respond(200, vec![("Content-Type".into(), "application/json".into())], body.to_string().into_bytes())
}

/// Any run of `window` bytes of `secret` that `text` holds.
pub fn piece_of(secret: &str, text: &str, window: usize) -> Option<String> {
    (0..=secret.len().saturating_sub(window)).map(|i| &secret[i..i + window]).find(|w| text.contains(*w)).map(str::to_string)
}

pub fn client(token_endpoint: &str, secret: &str) -> HttpClient {
    let http = HttpClient::new();
    http.set_dpop_key(Arc::new(EcKey::generate().unwrap()));
    let auth = serde_json::json!({"client_id": "m2m.dpop", "client_secret": secret, "token_endpoint": token_endpoint});
    http.set_auth_token(&auth.to_string()).unwrap();
    http
}

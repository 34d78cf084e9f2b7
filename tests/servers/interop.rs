//! The authorization servers people use, imitated by oidc-provider (tests/peers/server.mjs
//! --profile ...), each reached through the C ABI and checked by the validating resource
//! server: Okta-like (private_key_jwt, nonce at the token endpoint), Auth0-like (audience
//! required), Keycloak-like (no nonces, tight iat window, a skewed clock), Duende-like (the
//! sample), discovery with its algorithm check, and ES384 / EdDSA keys. Each misconfigured
//! variant fails with a text that names the fix.

use crate::common::capi::{c, code, take, text};
use crate::common::{Peers, fixture};
use dpopkit::capi::common::*;
use dpopkit::capi::http::*;
use dpopkit::capi::key::*;
use dpopkit::dpopkit_result as R;

struct Setup {
    key: i64,
    http: i64,
    extra: Vec<i64>,
}

impl Setup {
    /// An Http with a new DPoP key of `alg` and the AuthToken `auth`.
    fn new(alg: &str, auth: serde_json::Value) -> Setup {
        let key = dpopkit_key_new();
        assert_eq!(unsafe { dpopkit_key_generate_alg(key, c(alg).as_ptr()) }, 1, "{}", text(key));
        let http = dpopkit_http_new();
        assert_eq!(dpopkit_http_set_dpop_key(http, key), 1);
        assert_eq!(unsafe { dpopkit_http_set_auth_token(http, c(&auth.to_string()).as_ptr()) }, 1, "{}", text(http));
        Setup { key, http, extra: Vec::new() }
    }

    fn assertion_key_from(&mut self, file: &str) {
        let k = dpopkit_key_new();
        let path = c(fixture(file).to_str().unwrap());
        assert_eq!(unsafe { dpopkit_key_load_any_format_file(k, path.as_ptr(), std::ptr::null()) }, 1);
        assert_eq!(dpopkit_http_set_client_assertion_key(self.http, k), 1);
        self.extra.push(k);
    }

    fn log_to(&self, path: &std::path::Path) {
        assert_eq!(unsafe { dpopkit_http_set_session_log_filename(self.http, c(path.to_str().unwrap()).as_ptr()) }, 1);
    }

    /// GET through the C ABI: Ok(body) or Err((code, text)).
    fn get(&self, url: &str) -> Result<String, (u32, String)> {
        take(unsafe { dpopkit_http_quick_get_str(self.http, c(url).as_ptr()) }).ok_or_else(|| (code(self.http), text(self.http)))
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        for h in [self.http, self.key].into_iter().chain(self.extra.iter().copied()) {
            dpopkit_destroy(h);
        }
    }
}

fn ok(s: &Setup, peers: &Peers) -> String {
    let body = s.get(&peers.api).unwrap_or_else(|(code, t)| panic!("code {code}: {t}"));
    assert_eq!(dpopkit_http_last_status(s.http), 200);
    body
}

#[test]
fn okta_like_private_key_jwt_with_nonce_at_the_token_endpoint() {
    let peers = Peers::start(&["--profile", "okta"]);
    let auth = serde_json::json!({"client_id": "m2m.pkjwt", "client_auth_method": "private_key_jwt",
        "token_endpoint": peers.token_endpoint, "scope": "api"});
    let mut s = Setup::new("ES256", auth.clone());
    s.assertion_key_from("client_assertion_p256.pem");
    assert!(ok(&s, &peers).contains("m2m.pkjwt"));
    // The nonce retry sent a second assertion: the server would refuse a replayed jti.
    assert_eq!(peers.token_requests(), 2);
    assert_eq!(peers.tokens_issued(), 1);

    // aud = issuer works too.
    let mut auth_iss = auth.clone();
    auth_iss["issuer"] = peers.issuer.clone().into();
    auth_iss["client_assertion_audience"] = "issuer".into();
    let mut s2 = Setup::new("ES256", auth_iss);
    s2.assertion_key_from("client_assertion_p256.pem");
    ok(&s2, &peers);

    // Misconfigured: no assertion key, so the (unregistered) DPoP key signs it.
    let bad = Setup::new("ES256", auth);
    let (code, t) = bad.get(&peers.api).unwrap_err();
    assert_eq!(code, R::TokenEndpoint as u32, "{t}");
    assert!(t.contains("invalid_client") && t.contains("the key that signs the assertion"), "{t}");
}

#[test]
fn private_key_jwt_signed_by_the_dpop_key() {
    let key = dpopkit_key_new();
    assert_eq!(dpopkit_key_generate(key), 1);
    let jwk_file = std::env::temp_dir().join(format!("dpopkit-pkjwt-{}.jwk", std::process::id()));
    std::fs::write(&jwk_file, take(dpopkit_key_get_public_jwk(key)).unwrap()).unwrap();
    let peers = Peers::start(&["--pkjwt-jwk", jwk_file.to_str().unwrap()]);
    let http = dpopkit_http_new();
    dpopkit_http_set_dpop_key(http, key);
    let auth = serde_json::json!({"client_id": "m2m.pkjwt.dpopkey", "client_auth_method": "private_key_jwt",
        "token_endpoint": peers.token_endpoint, "scope": "api"});
    assert_eq!(unsafe { dpopkit_http_set_auth_token(http, c(&auth.to_string()).as_ptr()) }, 1);
    let body = take(unsafe { dpopkit_http_quick_get_str(http, c(&peers.api).as_ptr()) });
    assert!(body.is_some_and(|b| b.contains("m2m.pkjwt.dpopkey")), "{}", text(http));
    dpopkit_destroy(http);
    dpopkit_destroy(key);
    let _ = std::fs::remove_file(jwk_file);
}

#[test]
fn auth0_like_audience_is_required() {
    let peers = Peers::start(&["--profile", "auth0"]);
    let mut auth = serde_json::json!({"client_id": "m2m.dpop", "client_secret": "secret",
        "token_endpoint": peers.token_endpoint, "scope": "api"});
    let s = Setup::new("ES256", auth.clone());
    let (code, t) = s.get(&peers.api).unwrap_err();
    assert_eq!(code, R::TokenEndpoint as u32, "{t}");
    assert!(t.contains("audience"), "the text names the missing audience: {t}");
    auth["audience"] = "https://api.example/".into();
    let s = Setup::new("ES256", auth);
    ok(&s, &peers);
}

#[test]
fn keycloak_like_no_nonces_tight_window() {
    let peers = Peers::start(&["--profile", "keycloak"]);
    let s = Setup::new("ES256", serde_json::from_str(&peers.auth_token()).unwrap());
    ok(&s, &peers);
    ok(&s, &peers);
    assert_eq!(peers.token_requests(), 1, "no nonce round trip");
}

#[test]
fn skewed_server_clock_is_corrected_once_and_logged() {
    let peers = Peers::start(&["--profile", "keycloak", "--clock-skew", "60"]);
    let log = std::env::temp_dir().join(format!("dpopkit-skew-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let s = Setup::new("ES256", serde_json::from_str(&peers.auth_token()).unwrap());
    s.log_to(&log);
    ok(&s, &peers);
    let rejected_after_first = peers.rs_stats()["rejected"].as_u64().unwrap() + peers.token_requests();
    ok(&s, &peers);
    ok(&s, &peers);
    let rejected_later = peers.rs_stats()["rejected"].as_u64().unwrap() + peers.token_requests();
    assert_eq!(rejected_after_first, rejected_later, "later proofs are dated on the server's clock: no more refusals");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("---- Note ") && logged.contains("60 s ahead"), "{logged}");
    let _ = std::fs::remove_file(&log);

    // Misconfigured: correction switched off, on a server whose clock is 60 s ahead.
    let peers = Peers::start(&["--profile", "keycloak", "--clock-skew", "60"]);
    let mut auth: serde_json::Value = serde_json::from_str(&peers.auth_token()).unwrap();
    auth["clock_skew_correction"] = "false".into();
    let s = Setup::new("ES256", auth);
    let (code, t) = s.get(&peers.api).unwrap_err();
    assert_eq!(code, R::DpopProof as u32, "{t}");
    assert!(t.contains("60 s ahead") && t.contains("clock_skew_correction") && t.contains("NTP"), "{t}");
}

#[test]
fn duende_like_sample() {
    let peers = Peers::start(&["--profile", "duende"]);
    let s = Setup::new("ES256", serde_json::from_str(&peers.auth_token()).unwrap());
    assert!(ok(&s, &peers).contains("m2m.dpop"));
}

#[test]
fn discovery_and_the_servers_algorithms() {
    let peers = Peers::start(&["--as-nonce", "--rs-nonce"]);
    let auth = serde_json::json!({"client_id": "m2m.dpop", "client_secret": "secret", "issuer": peers.issuer, "scope": "api"});
    for alg in ["ES256", "ES384", "EdDSA"] {
        let s = Setup::new(alg, auth.clone());
        ok(&s, &peers);
    }
    // A server that accepts ES384 only: an ES256 key is refused before any token request.
    let peers = Peers::start(&["--dpop-algs", "ES384"]);
    let auth = serde_json::json!({"client_id": "m2m.dpop", "client_secret": "secret", "issuer": peers.issuer, "scope": "api"});
    let s = Setup::new("ES256", auth.clone());
    let (code, t) = s.get(&peers.api).unwrap_err();
    assert_eq!(code, R::DpopProof as u32, "{t}");
    assert!(t.contains("ES384") && t.contains("ES256") && t.contains("key for one of those"), "{t}");
    assert_eq!(peers.token_requests(), 0);
    let s = Setup::new("ES384", auth);
    ok(&s, &peers);
    // A wrong issuer is a discovery error that names it.
    let bad = Setup::new(
        "ES256",
        serde_json::json!({"client_id": "m2m.dpop", "client_secret": "secret",
        "issuer": format!("{}/nope", peers.issuer)}),
    );
    let (code, t) = bad.get(&peers.api).unwrap_err();
    assert_eq!(code, R::Discovery as u32, "{t}");
}

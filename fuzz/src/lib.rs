//! The checks behind every fuzz target, shared with `tests/no_peers/fuzz_regressions.rs` (which
//! includes this file with `#[path]`), so a kept crash input is replayed through exactly
//! the code the fuzzer ran. Each check takes raw fuzzer bytes, calls one pure-Rust core
//! parser and panics when the result is not sensible; a panic inside dpopkit itself is a
//! crash as well. Depends only on `dpopkit` and `serde_json`.

use std::time::{Duration, Instant};

use dpopkit::core::challenge;
use dpopkit::core::redact::{MASK, Secrets, WHOLE_WORD_BELOW, redact_body};
use dpopkit::core::token::{AuthConfig, parse_token_response};
use dpopkit::core::{EcKey, ErrorKind, ResponseInfo};

/// The fuzz targets, by name (also the folder names under fuzz/corpus and fuzz/regressions).
/// A check: raw fuzzer bytes in, a panic when something is wrong.
pub type Check = fn(&[u8]);

pub const TARGETS: &[(&str, Check)] = &[
    ("key_any_format", key_any_format),
    ("token_response", token_response),
    ("www_authenticate", www_authenticate),
    ("auth_token_json", auth_token_json),
    ("redact_body", redact_body_check),
    ("scrub_secrets", scrub_secrets),
];

/// Fixed, valid AuthToken JSON for the token-response target.
pub const AUTH_TOKEN: &str = r#"{"client_id":"a","client_secret":"b","token_endpoint":"http://127.0.0.1:1/token"}"#;
const AUTH_TOKEN_BEARER: &str = r#"{"client_id":"a","client_secret":"b","token_endpoint":"http://127.0.0.1:1/token","allow_bearer":true}"#;

const TEN_YEARS: Duration = Duration::from_secs(10 * 365 * 86400);

// ---------------------------------------------------------------------------------------
// key_any_format

/// Input: byte 0 odd = a password follows, as byte 1 (length) + that many bytes (lossy
/// UTF-8); the rest is the key data. Byte 0 even = no password, the rest is the key data.
pub fn split_key_input(data: &[u8]) -> Option<(Option<String>, &[u8])> {
    let (&first, rest) = data.split_first()?;
    if first & 1 == 0 {
        return Some((None, rest));
    }
    let (&n, rest) = rest.split_first().unwrap_or((&0, &[]));
    let n = (n as usize).min(rest.len());
    let pw = String::from_utf8_lossy(&rest[..n]).into_owned();
    Some((Some(pw), &rest[n..]))
}

pub fn key_any_format(data: &[u8]) {
    let Some((password, key_data)) = split_key_input(data) else { return };
    let text = std::str::from_utf8(key_data).ok().map(|t| t.trim_start_matches('\u{feff}').trim());
    if let Some(uri) = text.filter(|t| dpopkit::core::pkcs11::is_uri(t)) {
        // A PKCS#11 URI: parse only. Loading would open the module the input names.
        match dpopkit::core::pkcs11::Pkcs11Uri::parse(uri) {
            Ok(u) => assert!(dpopkit::core::pkcs11::is_uri(&u.shown()), "{}", u.shown()),
            Err(e) => assert_eq!(e.kind, ErrorKind::InvalidArgument, "{}", e.message),
        }
        return;
    }
    match EcKey::from_any_format(key_data, password.as_deref()) {
        Ok(key) => {
            let (crv, point_len) = match key.alg() {
                "ES256" => (Some("P-256"), 65),
                "ES384" => (Some("P-384"), 97),
                "EdDSA" => (Some("Ed25519"), 32),
                // RSA: the public "point" is the RSAPublicKey DER, as long as the modulus.
                "RS256" => (None, key.public_point().len()),
                other => panic!("unexpected alg {other}"),
            };
            assert_eq!(key.jkt().len(), 43, "jkt is base64url of 32 bytes");
            let jwk: serde_json::Value = serde_json::from_str(key.public_jwk()).expect("public JWK is JSON");
            match crv {
                Some(crv) => assert_eq!(jwk["crv"], crv),
                None => {
                    assert_eq!(jwk["kty"], "RSA");
                    let bits = key.rsa_bits().expect("an RSA key has a size");
                    assert!((2048..=4096).contains(&bits), "{bits} bits loaded");
                }
            }
            assert!(jwk.get("d").is_none(), "public JWK must not hold d");
            assert_eq!(key.public_point().len(), point_len);
            // What was loaded exports and reloads to the same key.
            let pem = key.to_pkcs8_pem().expect("PKCS#8 export");
            let again = EcKey::from_any_format(pem.as_bytes(), None).expect("exported PEM reloads");
            assert_eq!(again.jkt(), key.jkt());
            let jwk = key.to_private_jwk().expect("JWK export");
            let again = EcKey::from_any_format(jwk.as_bytes(), None).expect("exported JWK reloads");
            assert_eq!(again.jkt(), key.jkt());
        }
        Err(e) => {
            assert!(
                matches!(e.kind, ErrorKind::KeyFormat | ErrorKind::KeyUnsupported),
                "unexpected error kind {:?}: {}",
                e.kind,
                e.message
            );
            assert!(!e.message.is_empty());
            assert!(e.response.is_none());
            // The password never shows up in an error text, unless the fixed wording of
            // the same error already contains it (a password like "the ").
            if let Some(pw) = password.as_deref().filter(|p| p.len() >= 4)
                && e.message.contains(pw)
            {
                let other = EcKey::from_any_format(key_data, Some("\u{1}\u{2}\u{3}sentinel")).err();
                let template_has_it = other.is_some_and(|o| o.message.contains(pw));
                assert!(template_has_it, "the password {pw:?} leaks into the error: {}", e.message);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// token_response

pub fn token_response(data: &[u8]) {
    let strict = AuthConfig::from_json(AUTH_TOKEN).expect("fixed AuthToken is valid");
    let bearer_ok = AuthConfig::from_json(AUTH_TOKEN_BEARER).expect("fixed AuthToken is valid");
    let resp = ResponseInfo { status: 200, headers: vec![], body: data.to_vec() };
    // The access token the body holds, if any, to check that errors never show it.
    let parsed: Option<serde_json::Value> = serde_json::from_slice(data).ok();
    let token_in_body = parsed.as_ref().and_then(|v| v.get("access_token")).and_then(|v| v.as_str());
    let type_in_body = parsed.as_ref().and_then(|v| v.get("token_type")).and_then(|v| v.as_str()).unwrap_or("");
    for (cfg, allow_bearer) in [(&strict, false), (&bearer_ok, true)] {
        let requested = Instant::now();
        match parse_token_response(cfg, &resp, requested) {
            Ok(t) => {
                assert!(!t.value().is_empty());
                assert_eq!(Some(t.value()), token_in_body, "the token is the body's access_token");
                assert!(t.is_dpop() || (allow_bearer && t.token_type.eq_ignore_ascii_case("bearer")));
                assert!(t.expires_at >= requested);
                assert!(t.expires_at - requested <= TEN_YEARS, "lifetime is capped at ten years");
                assert!(t.refresh_at <= t.expires_at);
                assert!(t.refresh_at >= requested);
                let lifetime = t.expires_at - requested;
                if lifetime >= Duration::from_secs(2) {
                    assert!(t.expires_at - t.refresh_at >= Duration::from_secs(1), "renewed >= 1 s before expiry");
                }
                let dbg = format!("{t:?}");
                let fixed = format!("AccessToken token_type value **** {}", t.token_type);
                assert!(t.value().len() < 4 || fixed.contains(t.value()) || !dbg.contains(t.value()), "Debug shows the token: {dbg}");
            }
            Err(e) => {
                assert!(
                    matches!(e.kind, ErrorKind::TokenResponse | ErrorKind::TokenNotBound),
                    "unexpected error kind {:?}: {}",
                    e.kind,
                    e.message
                );
                assert!(!e.message.is_empty());
                assert!(e.message.len() < 2000, "error text is bounded: {} bytes", e.message.len());
                if let Some(tok) = token_in_body.filter(|t| t.len() >= 8) {
                    let echoed = type_in_body.contains(tok) || AUTH_TOKEN.contains(tok);
                    assert!(echoed || !e.message.contains(tok), "the access token leaks into the error: {}", e.message);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// www_authenticate

fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// Input: lossy UTF-8; `\n` separates several header values (for `dpop_error`).
pub fn www_authenticate(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let values: Vec<&str> = text.split('\n').collect();
    let mut expected_error: Option<Option<String>> = None;
    for v in &values {
        let challenges = challenge::parse(v);
        let chars = v.chars().count();
        assert!(challenges.len() <= chars, "more challenges than characters");
        let params: usize = challenges.iter().map(|c| c.params.len()).sum();
        assert!(params <= chars);
        for c in &challenges {
            assert!(!c.scheme.is_empty() && c.scheme.chars().all(is_tchar), "bad scheme {:?}", c.scheme);
            for (name, value) in &c.params {
                assert!(!name.is_empty() && name.chars().all(is_tchar), "bad param name {name:?}");
                assert_eq!(*name, name.to_ascii_lowercase(), "param names are lower-cased");
                assert!(value.chars().count() <= chars);
            }
        }
        if expected_error.is_none()
            && let Some(c) = challenges.iter().find(|c| c.scheme.eq_ignore_ascii_case("dpop"))
        {
            expected_error = Some(c.param("error").map(str::to_string));
        }
        // One value alone agrees with parse().
        let alone = challenge::dpop_error(&[v]);
        let from_parse =
            challenges.iter().find(|c| c.scheme.eq_ignore_ascii_case("dpop")).and_then(|c| c.param("error").map(str::to_string));
        assert_eq!(alone, from_parse);
    }
    assert_eq!(challenge::dpop_error(&values), expected_error.flatten(), "first DPoP challenge's error");
}

// ---------------------------------------------------------------------------------------
// auth_token_json

pub fn auth_token_json(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let parsed: Option<serde_json::Value> = serde_json::from_str(&text).ok();
    let secret = parsed.as_ref().and_then(|v| v.get("client_secret")).and_then(|v| v.as_str()).map(str::to_string);
    match AuthConfig::from_json(&text) {
        Ok(cfg) => {
            assert!(parsed.as_ref().is_some_and(|v| v.is_object()), "accepted something that is not a JSON object");
            assert!(!cfg.client_id.is_empty());
            assert!(
                cfg.token_endpoint.is_some() || cfg.metadata_url.is_some() || cfg.issuer.is_some(),
                "no way to find the token endpoint"
            );
            for t in [&cfg.token_endpoint, &cfg.metadata_url].into_iter().flatten() {
                let lower = t.origin.to_ascii_lowercase();
                assert_eq!(t.origin, lower, "origin is lower-case");
                assert!(lower.starts_with("http://") || lower.starts_with("https://"), "origin {:?}", t.origin);
                assert!(t.htu.starts_with(&t.origin), "htu {:?} origin {:?}", t.htu, t.origin);
                assert!(!t.htu.contains('?') && !t.htu.contains('#'));
                assert!(!t.url.contains('#'));
            }
            assert!(cfg.default_expires_in > 0);
            for (k, _) in &cfg.extra {
                assert!(!["grant_type", "client_assertion", "client_assertion_type"].contains(&k.as_str()));
            }
            // Debug never shows the secret (unless it also is some other shown value).
            let s = cfg.secret();
            let dbg = format!("{cfg:?}");
            if s.len() >= 4 && dbg.contains(s) {
                // Same AuthToken with another secret: if its Debug shows `s` too, `s` is
                // just text that Debug prints anyway (a field name, another value).
                let mut other = parsed.clone().expect("accepted JSON parses");
                other["client_secret"] = "\u{1}sentinel\u{2}".into();
                let other = AuthConfig::from_json(&other.to_string()).expect("same AuthToken, other secret");
                assert!(format!("{other:?}").contains(s), "Debug shows the client secret: {dbg}");
            }
        }
        Err(e) => {
            assert_eq!(e.kind, ErrorKind::AuthToken, "{}", e.message);
            assert!(!e.message.is_empty());
            // The secret is never echoed, unless the input holds it somewhere else too
            // (as another member's value or name, which errors may quote).
            if let Some(s) = secret.filter(|s| s.len() >= 8) {
                let elsewhere = text.matches(s.as_str()).count() > 1;
                assert!(elsewhere || !e.message.contains(&s), "client_secret leaks into the error: {}", e.message);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// redact_body

const CONTENT_TYPES: &[&str] = &[
    "application/json",
    "",
    "text/html",
    "application/x-www-form-urlencoded",
    "text/plain",
    "application/problem+json; charset=utf-8",
    "APPLICATION/JSON",
    "application/octet-stream",
];
const SPACES: &[&str] = &["", " ", "\n", "\t", "\r\n", "  \n\t ", "\r", "\n\n"];
const VALUE_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// How the body holding the access token is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Damage {
    /// Valid JSON.
    None,
    /// Valid JSON followed by junk.
    Trailing,
    /// Cut right after the access token's closing quote.
    Cut,
    /// A UTF-8 byte-order mark first.
    Bom,
    /// Inside an HTML page.
    Html,
}

struct Writer {
    ws_before_colon: &'static str,
    ws_after_colon: &'static str,
    ws_after_comma: &'static str,
    escape_key: bool,
}

fn write_str(out: &mut String, s: &str, escape_all: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if escape_all && c.is_ascii() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

impl Writer {
    fn write(&self, out: &mut String, v: &serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                out.push('{');
                for (i, (k, val)) in m.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                        out.push_str(self.ws_after_comma);
                    }
                    write_str(out, k, self.escape_key && k == "access_token");
                    out.push_str(self.ws_before_colon);
                    out.push(':');
                    out.push_str(self.ws_after_colon);
                    self.write(out, val);
                }
                out.push('}');
            }
            serde_json::Value::Array(a) => {
                out.push('[');
                for (i, val) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                        out.push_str(self.ws_after_comma);
                    }
                    self.write(out, val);
                }
                out.push(']');
            }
            serde_json::Value::String(s) => write_str(out, s, false),
            other => out.push_str(&other.to_string()),
        }
    }
}

/// Puts `"access_token": value` into the `nth` object of `doc` (depth-first), or into a
/// new top-level object when `doc` has none.
fn insert_member(doc: &mut serde_json::Value, nth: &mut usize, value: &str) -> bool {
    match doc {
        serde_json::Value::Object(m) => {
            if *nth == 0 {
                m.insert("access_token".into(), value.into());
                return true;
            }
            *nth -= 1;
            m.values_mut().any(|v| insert_member(v, nth, value))
        }
        serde_json::Value::Array(a) => a.iter_mut().any(|v| insert_member(v, nth, value)),
        _ => false,
    }
}

/// Builds (content type, body, max, secret value, damage) from fuzzer bytes:
/// byte 0 content type, byte 1 spaces before/after the colon, byte 2 spaces after commas
/// and key escaping, byte 3 damage, byte 4 `max`, byte 5 which object gets the member,
/// byte 6 the value's length (8..=39), then the value's characters, then a JSON document
/// (lossy UTF-8; anything that is not JSON becomes a string member).
pub struct RedactCase {
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// The same body with the secret replaced by a same-length placeholder.
    pub decoy: Vec<u8>,
    pub max: usize,
    pub secret: String,
    pub damage: Damage,
}

pub fn redact_case(data: &[u8]) -> Option<RedactCase> {
    if data.len() < 7 {
        return None;
    }
    let content_type = CONTENT_TYPES[data[0] as usize % CONTENT_TYPES.len()];
    let ws_before_colon = SPACES[(data[1] & 7) as usize];
    let ws_after_colon = SPACES[(data[1] >> 3 & 7) as usize];
    let ws_after_comma = SPACES[(data[2] & 7) as usize];
    let damage = match data[3] % 5 {
        0 => Damage::None,
        1 => Damage::Trailing,
        2 => Damage::Cut,
        3 => Damage::Bom,
        _ => Damage::Html,
    };
    // Escaped key names are only fair game in valid JSON: the fallback for malformed
    // bodies looks for the name as written.
    let escape_key = damage == Damage::None && data[2] & 0x80 != 0;
    let max = if data[4] < 200 { data[4] as usize * 4 } else { 1 << 20 };
    let mut nth = data[5] as usize % 8;
    let len = 8 + data[6] as usize % 32;
    let rest = &data[7..];
    if rest.len() < len {
        return None;
    }
    let secret: String = rest[..len].iter().map(|b| VALUE_CHARS[*b as usize % VALUE_CHARS.len()] as char).collect();
    let decoy_value: String = "~".repeat(len);
    let text = String::from_utf8_lossy(&rest[len..]);
    let mut doc = match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(v) => v,
        Err(_) => serde_json::json!({"token_type": "DPoP", "expires_in": 300, "note": text}),
    };
    let mut decoy_doc = doc.clone();
    let mut nth2 = nth;
    if !insert_member(&mut doc, &mut nth, &secret) {
        doc = serde_json::json!([doc, {"access_token": secret}]);
        decoy_doc = serde_json::json!([decoy_doc, {"access_token": decoy_value}]);
    } else {
        assert!(insert_member(&mut decoy_doc, &mut nth2, &decoy_value));
    }
    let w = Writer { ws_before_colon, ws_after_colon, ws_after_comma, escape_key };
    let render = |doc: &serde_json::Value, value: &str| {
        let mut s = String::new();
        w.write(&mut s, doc);
        match damage {
            Damage::None => {}
            Damage::Trailing => s.push_str([",", "}", " x", "]]", "\n<EOF>"][data[3] as usize / 5 % 5]),
            Damage::Cut => {
                let mut quoted = String::new();
                write_str(&mut quoted, value, false);
                // Cut after the member's value (the first occurrence after the key).
                if let Some(k) = s.find("\"access_token\"")
                    && let Some(p) = s[k..].find(&quoted)
                {
                    s.truncate(k + p + quoted.len());
                }
            }
            Damage::Bom => s.insert(0, '\u{feff}'),
            Damage::Html => s = format!("<html><body><pre>{s}</pre></body></html>"),
        }
        s.into_bytes()
    };
    let body = render(&doc, &secret);
    let decoy = render(&decoy_doc, &decoy_value);
    Some(RedactCase { content_type, body, decoy, max, secret, damage })
}

pub fn redact_body_check(data: &[u8]) {
    // Plain robustness on the raw bytes first: any content type, any body.
    if let Some((&ct, body)) = data.split_first() {
        let max = body.len() / 2;
        let out = redact_body(CONTENT_TYPES[ct as usize % CONTENT_TYPES.len()], body, max);
        assert!(out.len() <= max + 64, "output of {} bytes is not cut at max {max}", out.len());
    }
    let Some(case) = redact_case(data) else { return };
    // The secret must not be in the body but for the access_token member: compare with
    // the decoy rendering (same body, placeholder value), redacted the same way.
    let decoy_out = redact_body(case.content_type, &case.decoy, case.max);
    if String::from_utf8_lossy(&case.decoy).contains(&case.secret) || decoy_out.contains(&case.secret) {
        return;
    }
    if case.damage != Damage::None && ignore_known("mask-overlap") && quoted_value_after_name_eq(&case.body) {
        return;
    }
    let out = redact_body(case.content_type, &case.body, case.max);
    assert!(
        !out.contains(&case.secret),
        "access_token value {:?} survives redaction ({:?}, {:?}, max {}):\nbody: {:?}\nout:  {:?}",
        case.secret,
        case.content_type,
        case.damage,
        case.max,
        String::from_utf8_lossy(&case.body),
        out
    );
}

/// True when `secret_name="` occurs (spaces allowed before the quote): masking that "value" swallows the next quote, which
/// can be the opening quote of `"access_token"` (see fuzz/regressions/redact_body/leak-*).
fn quoted_value_after_name_eq(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body);
    ["client_secret", "access_token", "refresh_token", "id_token", "client_assertion", "assertion", "password"].iter().any(|f| {
        text.match_indices(&format!("{f}="))
            .any(|(i, m)| text[i + m.len()..].trim_start_matches(|c: char| c == ':' || c.is_whitespace()).starts_with('"'))
    })
}

/// `DPOPKIT_FUZZ_IGNORE=name[,name]` skips a known, already reported finding so that
/// fuzzing can go on looking for others. Known names: `mask-overlap`. Never set in CI.
fn ignore_known(name: &str) -> bool {
    static IGNORED: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    IGNORED
        .get_or_init(|| {
            std::env::var("DPOPKIT_FUZZ_IGNORE").map(|v| v.split(',').map(|s| s.trim().to_string()).collect()).unwrap_or_default()
        })
        .iter()
        .any(|n| n == name)
}

// ---------------------------------------------------------------------------------------
// scrub_secrets

/// Input: byte 0 = the secret's length (1..=64), then the secret (lossy UTF-8), then the
/// text. The secret is added as a client secret and as a token (every echoable form);
/// the text is scrubbed as text and as bytes. Checks: the secret, as written, is gone
/// (where it stands alone when it is short); masking only replaces, never adds text
/// beyond the masks; text and bytes agree. Run with a large -max_len and a short -timeout
/// (scripts/fuzz.sh), this is also the time bound: masking must be linear.
pub fn scrub_secrets(data: &[u8]) {
    let Some((&n, rest)) = data.split_first() else { return };
    let n = (n as usize % 64 + 1).min(rest.len());
    let secret = String::from_utf8_lossy(&rest[..n]).into_owned();
    let text = String::from_utf8_lossy(&rest[n..]).into_owned();
    let mut set = Secrets::new();
    set.add_client_secret("client", &secret);
    set.add_token(&secret);
    let out = set.scrub(&text);
    let out_bytes = set.scrub_bytes(text.as_bytes()).unwrap_or_else(|| text.as_bytes().to_vec());
    assert_eq!(out.as_bytes(), &out_bytes[..], "text and bytes are masked alike");
    assert!(out.len() <= text.len() * MASK.len() + MASK.len(), "masking only replaces");
    if out == text {
        assert!(!text.contains(&secret) || secret.len() < WHOLE_WORD_BELOW, "a long secret was left alone");
    }
    // A long secret that holds no `*` cannot survive (a mask cannot make it up either).
    if secret.len() >= WHOLE_WORD_BELOW && !secret.contains('*') {
        assert!(!out.contains(&secret), "the secret {secret:?} survives: {out:?}");
    }
}

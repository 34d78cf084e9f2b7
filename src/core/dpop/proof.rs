//! DPoP proofs (RFC 9449 §4) and the `htu` form of a request URL.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::core::error::{ErrorKind, Result};
use crate::core::http::Deadline;
use crate::core::key::EcKey;
pub use crate::core::url::Target; // path kept for tests/benches; see ARCHITECTURE.md

/// base64url(SHA-256(access token)): the `ath` claim.
pub fn ath(access_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(access_token.as_bytes()))
}

/// 128 random bits, base64url: the `jti` claim.
pub fn new_jti() -> Result<String> {
    let jti = jti_chars()?;
    Ok(String::from_utf8_lossy(&jti).into_owned())
}

/// [`new_jti`] without an allocation: its 22 base64url characters.
fn jti_chars() -> Result<[u8; 22]> {
    let b = super::jti::random_jti_bytes()?;
    let mut out = [0u8; 22];
    let n = URL_SAFE_NO_PAD.encode_slice(b, &mut out).expect("16 bytes are 22 base64 characters");
    debug_assert_eq!(n, 22);
    Ok(out)
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Builds a signed DPoP proof JWT with the key's preferred algorithm.
/// `access_token` adds `ath`; `nonce` adds `nonce`; `iat` is the current time unless given.
pub fn make_proof(key: &EcKey, htm: &str, htu: &str, access_token: Option<&str>, nonce: Option<&str>, iat: Option<i64>) -> Result<String> {
    make_proof_alg_within(key, key.alg(), htm, htu, access_token, nonce, iat, None)
}

/// [`make_proof`] signed with `alg`, one of the key's [`EcKey::algs`] (the one the server
/// takes: see `dpop::exchange`), for a call that ends at `deadline`: a key in a PKCS#11
/// token that does not sign by then makes this fail with `Timeout`.
#[allow(clippy::too_many_arguments)]
pub fn make_proof_alg_within(
    key: &EcKey,
    alg: &str,
    htm: &str,
    htu: &str,
    access_token: Option<&str>,
    nonce: Option<&str>,
    iat: Option<i64>,
    deadline: Option<Deadline>,
) -> Result<String> {
    let ath = access_token.map(ath);
    make_proof_alg_with_ath(key, alg, htm, htu, ath.as_deref(), nonce, iat, deadline)
}

/// [`make_proof_alg_within`] with the `ath` claim given (base64url(SHA-256(token)): it
/// depends on the token only, so the caller keeps it with the token instead of hashing the
/// token for every proof).
#[allow(clippy::too_many_arguments)]
pub fn make_proof_alg_with_ath(
    key: &EcKey,
    alg: &str,
    htm: &str,
    htu: &str,
    ath: Option<&str>,
    nonce: Option<&str>,
    iat: Option<i64>,
    deadline: Option<Deadline>,
) -> Result<String> {
    let Some(header_b64) = key.proof_header_b64_for(alg) else {
        return Err(crate::core::error::Error::new(ErrorKind::Internal, format!("a {} key cannot sign {alg} proofs", key.alg())));
    };
    sign_payload(key, alg, header_b64, &proof_claims(&jti_chars()?, htm, htu, iat.unwrap_or_else(unix_now), ath, nonce), deadline)
}

/// The claims of a proof as JSON, written straight into one buffer: the bytes serde_json
/// makes of a map of these members in this order (`jti`, `htm`, `htu`, `iat`, then `ath`
/// and `nonce` when given), without a map, its keys and values to allocate.
fn proof_claims(jti: &[u8], htm: &str, htu: &str, iat: i64, ath: Option<&str>, nonce: Option<&str>) -> Vec<u8> {
    use std::io::Write;
    let mut out = Vec::with_capacity(96 + htm.len() + htu.len() + ath.map_or(0, str::len) + nonce.map_or(0, str::len));
    let string = |out: &mut Vec<u8>, name: &[u8], value: &str| {
        out.extend_from_slice(name);
        serde_json::to_writer(&mut *out, value).expect("a string serialises into a Vec");
    };
    out.extend_from_slice(b"{\"jti\":\"");
    out.extend_from_slice(jti);
    out.push(b'"');
    string(&mut out, b",\"htm\":", htm);
    string(&mut out, b",\"htu\":", htu);
    write!(out, ",\"iat\":{iat}").expect("writing into a Vec");
    if let Some(a) = ath {
        string(&mut out, b",\"ath\":", a);
    }
    if let Some(n) = nonce {
        string(&mut out, b",\"nonce\":", n);
    }
    out.push(b'}');
    out
}

/// A compact JWS: `header_b64` (already base64url) . base64url(claims) . signature, signed
/// by `deadline` when there is one (a key in a PKCS#11 token may take long).
pub fn sign_jws(
    key: &EcKey,
    header_b64: &str,
    claims: &serde_json::Map<String, serde_json::Value>,
    deadline: Option<Deadline>,
) -> Result<String> {
    sign_jws_alg(key, key.alg(), header_b64, claims, deadline)
}

/// [`sign_jws`] with `alg` (what `header_b64` names), one of the key's [`EcKey::algs`].
pub fn sign_jws_alg(
    key: &EcKey,
    alg: &str,
    header_b64: &str,
    claims: &serde_json::Map<String, serde_json::Value>,
    deadline: Option<Deadline>,
) -> Result<String> {
    sign_payload(key, alg, header_b64, &serde_json::to_vec(claims).expect("a map of strings and numbers serialises"), deadline)
}

/// [`sign_jws_alg`] of claims already serialised (`payload`, JSON).
fn sign_payload(key: &EcKey, alg: &str, header_b64: &str, payload: &[u8], deadline: Option<Deadline>) -> Result<String> {
    let mut signing_input = String::with_capacity(header_b64.len() + 1 + payload.len() * 4 / 3 + 4 + 130);
    signing_input.push_str(header_b64);
    signing_input.push('.');
    URL_SAFE_NO_PAD.encode_string(payload, &mut signing_input);
    let sig = key.sign_alg_within(alg, signing_input.as_bytes(), deadline)?;
    signing_input.push('.');
    URL_SAFE_NO_PAD.encode_string(&sig, &mut signing_input);
    Ok(signing_input)
}

/// A private_key_jwt client assertion (RFC 7523 §3, OpenID Connect Core §9): iss = sub =
/// client_id, the given audience, a new jti, valid for 60 s from `iat`.
/// Signed with `alg` (one of the key's [`EcKey::algs`]) by the call's `deadline`.
pub fn client_assertion(
    key: &EcKey,
    alg: &str,
    client_id: &str,
    audience: &str,
    kid: Option<&str>,
    iat: i64,
    deadline: Option<Deadline>,
) -> Result<String> {
    let mut header = serde_json::Map::new();
    header.insert("alg".into(), alg.into());
    header.insert("typ".into(), "JWT".into());
    if let Some(kid) = kid {
        header.insert("kid".into(), kid.into());
    }
    let header_b64 = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).expect("strings serialise"));
    let mut claims = serde_json::Map::new();
    claims.insert("iss".into(), client_id.into());
    claims.insert("sub".into(), client_id.into());
    claims.insert("aud".into(), audience.into());
    claims.insert("jti".into(), new_jti()?.into());
    claims.insert("iat".into(), iat.into());
    claims.insert("exp".into(), (iat + 60).into());
    sign_jws_alg(key, alg, &header_b64, &claims, deadline)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn htu_keeps_non_default_port_and_drops_query_fragment() {
        let t = Target::parse("HTTP://LocalHost:8080/api/x?a=1#frag").unwrap();
        assert_eq!(t.htu, "http://localhost:8080/api/x");
        assert_eq!(t.origin, "http://localhost:8080");
        assert_eq!(t.url, "HTTP://LocalHost:8080/api/x?a=1");
        assert_eq!(Target::parse("https://a.example:443").unwrap().htu, "https://a.example/");
        assert_eq!(Target::parse("http://a.example:80/p").unwrap().htu, "http://a.example/p");
        assert_eq!(Target::parse("https://a.example:8443/p").unwrap().htu, "https://a.example:8443/p");
        assert_eq!(Target::parse("http://[::1]:9/p").unwrap().origin, "http://[::1]:9");
    }

    #[test]
    fn non_http_urls_are_refused() {
        for u in ["ftp://x/y", "/relative", "", "http://", "file:///etc/passwd", "http://u:p@h/"] {
            let e = Target::parse(u).unwrap_err();
            assert_eq!(e.kind, ErrorKind::InvalidArgument, "{u}");
        }
    }

    #[test]
    fn ports_outside_1_to_65535_are_refused_not_defaulted() {
        for (u, port) in [
            ("http://127.0.0.1:65616/token", "65616"),
            ("http://127.0.0.1:65536/token", "65536"),
            ("http://127.0.0.1:0/token", "0"),
            ("http://127.0.0.1:00000/token", "00000"),
            ("https://as.example:99999999999/token?x=1", "99999999999"),
            ("http://[::1]:70000/", "70000"),
        ] {
            let e = Target::parse(u).unwrap_err();
            assert_eq!(e.kind, ErrorKind::InvalidArgument, "{u}");
            let shown = u.split('?').next().unwrap();
            assert!(e.message.contains(&format!("the port '{port}'")) && e.message.contains("1 to 65535"), "{u}: {e}");
            assert!(e.message.contains(shown) && !e.message.contains("x=1"), "{u}: names the URL, not its query: {e}");
        }
        for bad in ["http://h:/x", "http://h:+80/", "http://h:8a/", "http://[::1]:/"] {
            let e = Target::parse(bad).expect_err(bad);
            assert_eq!(e.kind, ErrorKind::InvalidArgument, "{bad}: {e}");
        }
        for (ok, origin) in [
            ("http://127.0.0.1:1/t", "http://127.0.0.1:1"),
            ("http://127.0.0.1:65535/t", "http://127.0.0.1:65535"),
            ("http://h:080/t", "http://h"),
            ("http://[::1]:8443/t", "http://[::1]:8443"),
            ("https://h/t", "https://h"),
        ] {
            assert_eq!(Target::parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}")).origin, origin);
        }
    }

    #[test]
    fn proof_has_rfc9449_shape_and_verifies() {
        let key = EcKey::generate().unwrap();
        let p = make_proof(&key, "GET", "http://127.0.0.1:1234/api", Some("tok"), Some("n1"), None).unwrap();
        let parts: Vec<_> = p.split('.').collect();
        assert_eq!(parts.len(), 3);
        let h: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(h["typ"], "dpop+jwt");
        assert_eq!(h["alg"], "ES256");
        assert!(h["jwk"].get("d").is_none());
        let c: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert!(c["iat"].is_i64(), "iat must be a JSON number");
        assert_eq!(c["htm"], "GET");
        assert_eq!(c["htu"], "http://127.0.0.1:1234/api");
        assert_eq!(c["nonce"], "n1");
        assert_eq!(c["ath"], ath("tok"));
        assert_eq!(URL_SAFE_NO_PAD.decode(c["jti"].as_str().unwrap()).unwrap().len(), 16);
        let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        let pk = ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, key.public_point());
        pk.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig).unwrap();
        let p2 = make_proof(&key, "GET", "http://127.0.0.1:1234/api", None, None, None).unwrap();
        let c2: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p2.split('.').nth(1).unwrap()).unwrap()).unwrap();
        assert_ne!(c2["jti"], c["jti"]);
        assert!(c2.get("ath").is_none() && c2.get("nonce").is_none());
    }

    #[test]
    fn proof_claims_are_what_serde_json_writes_for_the_map() {
        for (htu, ath, nonce) in [
            ("http://127.0.0.1:1234/api", Some("fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"), Some("n1")),
            ("https://a.example/p\"q\\r", None, Some("nonce \"with\" quotes\u{1}\u{e9}\u{2028}")),
            ("https://a.example/", Some("x"), None),
            ("https://a.example/", None, None),
        ] {
            for iat in [0i64, -5, 1_764_000_000, i64::MAX] {
                let mut claims = serde_json::Map::new();
                claims.insert("jti".into(), "AAAAAAAAAAAAAAAAAAAAAA".into());
                claims.insert("htm".into(), "GET".into());
                claims.insert("htu".into(), htu.into());
                claims.insert("iat".into(), iat.into());
                if let Some(a) = ath {
                    claims.insert("ath".into(), a.into());
                }
                if let Some(n) = nonce {
                    claims.insert("nonce".into(), n.into());
                }
                let written = proof_claims(b"AAAAAAAAAAAAAAAAAAAAAA", "GET", htu, iat, ath, nonce);
                assert_eq!(String::from_utf8(written).unwrap(), serde_json::to_string(&claims).unwrap(), "{htu} {iat}");
            }
        }
        assert_eq!(new_jti().unwrap().len(), 22);
        assert_ne!(new_jti().unwrap(), new_jti().unwrap());
    }

    #[test]
    fn ath_matches_rfc9449_example() {
        // RFC 9449 §7.1 example: access token and its ath.
        assert_eq!(ath("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"), "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo");
    }
}

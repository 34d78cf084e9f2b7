//! Proof algorithms against the real peers (issue 23): RSA keys (RS256, PS256) in every
//! format, Ed25519 under its RFC 9864 name, the choice among what the server offers (its
//! metadata, or the `algs` of the RS's challenge, with one retry), and the refusals that
//! name what the server takes. The AS is oidc-provider (`enabledJWA.dPoPSigningAlgValues`),
//! the RS verifies every proof with jose (`algorithms`), so a 200 means an independent
//! library checked the signature with the algorithm the test expects.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::common::{Peers, fixture};
use dpopkit::core::{EcKey, ErrorKind, HttpClient};

fn discovery_auth(peers: &Peers) -> String {
    serde_json::json!({"client_id": "m2m.dpop", "client_secret": "secret", "issuer": peers.issuer, "scope": "api"}).to_string()
}

fn client(key: &Arc<EcKey>, auth: &str) -> HttpClient {
    let http = HttpClient::new();
    http.set_dpop_key(key.clone());
    http.set_auth_token(auth).unwrap();
    http
}

/// GETs the API (200: the RS's jose verified the proof with the algorithms it was given)
/// and audits the proof jose verified, as the RS recorded its JOSE header (a proof never
/// comes back in a body dpopkit returns: it is masked): typ, alg, a public jwk with only the
/// RFC 7638 members, the key's own. Returns the proof's alg.
fn audited_get(http: &HttpClient, peers: &Peers, key: &EcKey) -> String {
    let (body, resp) = http.quick_get_str(&peers.api).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status, 200, "{body}");
    let header = peers.rs_stats()["last_proof_header"].clone();
    audit(&header, key)
}

/// Checks a proof's JOSE header (as a peer recorded it) and returns its alg.
fn audit(header: &serde_json::Value, key: &EcKey) -> String {
    assert_eq!(header["typ"], "dpop+jwt", "{header}");
    let jwk = header["jwk"].as_object().unwrap_or_else(|| panic!("no jwk: {header}"));
    let members: Vec<&str> = jwk.keys().map(String::as_str).collect();
    let expected: &[&str] = match jwk["kty"].as_str() {
        Some("RSA") => &["e", "kty", "n"],
        Some("OKP") => &["crv", "kty", "x"],
        _ => &["crv", "kty", "x", "y"],
    };
    assert_eq!(members, expected, "only public members: {header}");
    assert_eq!(serde_json::to_string(&header["jwk"]).unwrap(), key.public_jwk());
    // The thumbprint computed here from the peer's copy of the jwk is the key's jkt.
    use sha2::Digest;
    let jkt = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(serde_json::to_string(&header["jwk"]).unwrap().as_bytes()));
    assert_eq!(jkt, key.jkt());
    header["alg"].as_str().unwrap().to_string()
}

fn rsa_keys() -> Vec<(&'static str, Arc<EcKey>)> {
    let mut keys: Vec<(&'static str, Arc<EcKey>)> = [
        ("rsa.pem", None),
        ("rsa_pkcs1.pem", None),
        ("rsa_pkcs1.der", None),
        ("rsa_pkcs8.der", None),
        ("rsa_pkcs8_enc.pem", Some("test-password")),
        ("rsa.jwk", None),
        ("rsa4096.pem", None),
    ]
    .into_iter()
    .map(|(f, pw)| (f, Arc::new(EcKey::load_file(&fixture(f), pw).unwrap_or_else(|e| panic!("{f}: {e}")))))
    .collect();
    keys.push(("generated PS256", Arc::new(EcKey::generate_alg("PS256").unwrap())));
    keys.push(("generated RS256", Arc::new(EcKey::generate_alg("RS256").unwrap())));
    keys
}

#[test]
fn rsa_keys_in_every_format_get_200_from_servers_that_take_only_rs256_or_only_ps256() {
    let keys = rsa_keys();
    for only in ["RS256", "PS256"] {
        let peers = Peers::start(&["--as-nonce", "--rs-nonce", "--dpop-algs", only]);
        for (what, key) in &keys {
            let http = client(key, &discovery_auth(&peers));
            assert_eq!(audited_get(&http, &peers, key), only, "{what} against an {only}-only AS and RS");
            let at_as = peers.as_stats()["last_proof_header"].clone();
            assert_eq!(audit(&at_as, key), only, "{what}: the token request's proof");
        }
        // One token per key: the six files of rsa.pem are one key (one jkt), one token.
        let jkts: std::collections::HashSet<&str> = keys.iter().map(|(_, k)| k.jkt()).collect();
        assert_eq!(peers.tokens_issued(), jkts.len() as u64, "{only}");
        assert!(peers.as_stats()["issued_algs"].as_array().unwrap().iter().all(|a| a == only), "{only}");
    }
    // A server that takes both: the key's preferred one.
    let peers = Peers::start(&["--dpop-algs", "ES256,RS256,PS256"]);
    for (what, key) in &keys {
        let http = client(key, &discovery_auth(&peers));
        assert_eq!(audited_get(&http, &peers, key), key.alg(), "{what}");
    }
}

#[test]
fn the_rs_challenge_picks_the_other_rsa_algorithm_once_then_it_is_remembered() {
    // The AS takes RS256 (no metadata used: token_endpoint), the RS only PS256: the first
    // proof (RS256, the loaded key's preference) is refused with algs="PS256", the retry is
    // signed PS256, and later calls start with PS256.
    let peers = Peers::start(&["--dpop-algs", "RS256,PS256", "--rs-dpop-algs", "PS256"]);
    // A key of its own: what other tests' metadata chose for the fixture key is remembered
    // process-wide (and would make the RS get PS256 at once).
    let key = Arc::new(EcKey::generate_alg("RS256").unwrap());
    assert_eq!(key.alg(), "RS256");
    let http = client(&key, &peers.auth_token());
    assert_eq!(audited_get(&http, &peers, &key), "PS256");
    assert_eq!((peers.rs_stats()["rejected"].as_u64(), peers.rs_stats()["ok"].as_u64()), (Some(1), Some(1)));
    let again = client(&key, &peers.auth_token()); // a new object: the choice is process-wide
    for _ in 0..3 {
        assert_eq!(audited_get(&again, &peers, &key), "PS256");
    }
    assert_eq!(peers.rs_stats()["rejected"].as_u64(), Some(1), "no second refusal");
}

#[test]
fn ed25519_proofs_are_named_ed25519_where_the_server_lists_it_and_eddsa_elsewhere() {
    for (algs, expected) in [("Ed25519", "Ed25519"), ("EdDSA,Ed25519", "Ed25519"), ("ES256,EdDSA", "EdDSA")] {
        // A key of its own per server: what one server's metadata chose stays with its key.
        let key = Arc::new(EcKey::generate_alg(if algs == "Ed25519" { "Ed25519" } else { "EdDSA" }).unwrap());
        let peers = Peers::start(&["--as-nonce", "--dpop-algs", algs]);
        let http = client(&key, &discovery_auth(&peers));
        // The RS starts with what the AS's metadata made the key sign.
        assert_eq!(audited_get(&http, &peers, &key), expected, "server lists {algs}");
        assert_eq!(audit(&peers.as_stats()["last_proof_header"], &key), expected, "AS, lists {algs}");
        assert_eq!(peers.rs_stats()["rejected"].as_u64(), Some(0), "{algs}");
    }
    // Without metadata (token_endpoint), an RS that lists only Ed25519: one retry.
    let peers = Peers::start(&["--dpop-algs", "EdDSA,Ed25519", "--rs-dpop-algs", "Ed25519"]);
    let generated = Arc::new(EcKey::generate_alg("Ed25519").unwrap());
    let http = client(&generated, &peers.auth_token());
    assert_eq!(audited_get(&http, &peers, &generated), "Ed25519");
    assert_eq!(peers.rs_stats()["rejected"].as_u64(), Some(1));
}

#[test]
fn keys_the_server_cannot_take_are_refused_with_what_it_takes_and_which_key_to_make() {
    let rsa = Arc::new(EcKey::load_file(&fixture("rsa.pem"), None).unwrap());
    // An ES256-only AS, by its metadata: refused before any token request.
    let peers = Peers::start(&["--dpop-algs", "ES256"]);
    let e = client(&rsa, &discovery_auth(&peers)).quick_get_str(&peers.api).unwrap_err();
    assert_eq!(e.kind, ErrorKind::DpopProof, "{e}");
    for part in ["ES256 only", "dpop_signing_alg_values_supported", "an RSA key", "--alg ES256"] {
        assert!(e.message.contains(part), "{part}: {e}");
    }
    assert_eq!(peers.token_requests(), 0);
    // The same AS named by its token endpoint only: it refuses the RS256 proof, and the
    // text says what to do.
    let e = client(&rsa, &peers.auth_token()).quick_get_str(&peers.api).unwrap_err();
    assert_eq!(e.kind, ErrorKind::DpopProof, "{e}");
    assert!(e.message.contains("invalid_dpop_proof") && e.message.contains("ES256") && e.message.contains("issuer"), "{e}");
    // An RS that takes only PS256, and an EC key: refused with the RS's list and the fix.
    let peers = Peers::start(&["--rs-dpop-algs", "PS256"]);
    let ec = Arc::new(EcKey::generate().unwrap());
    let e = client(&ec, &peers.auth_token()).quick_get_str(&peers.api).unwrap_err();
    assert_eq!(e.kind, ErrorKind::DpopProof, "{e}");
    for part in ["PS256 only", "WWW-Authenticate", "EC P-256", "--alg PS256"] {
        assert!(e.message.contains(part), "{part}: {e}");
    }
    // 1024 bits: never loaded.
    let e = EcKey::load_file(&fixture("rsa1024.pem"), None).unwrap_err();
    assert_eq!(e.kind, ErrorKind::KeyUnsupported);
    assert!(e.message.contains("1024 bits") && e.message.contains("keygen --alg PS256"), "{e}");
}

#[test]
fn a_jwk_that_says_ps256_signs_ps256_assertions_for_a_client_registered_for_ps256() {
    // oidc-provider pins the client to the alg of its registered JWK; its metadata lists
    // both RS256 and PS256, so only the key's own preference can pick PS256.
    let mut jwk: serde_json::Value = serde_json::from_slice(&std::fs::read(fixture("rsa.jwk")).unwrap()).unwrap();
    jwk["alg"] = "PS256".into();
    let key = Arc::new(EcKey::from_any_format(jwk.to_string().as_bytes(), None).unwrap());
    assert_eq!(key.alg(), "PS256");
    let dir = std::env::temp_dir().join(format!("dpopkit-rsa-pinned-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let jwk_file = dir.join("pub.jwk");
    let mut public: serde_json::Value = serde_json::from_str(key.public_jwk()).unwrap();
    public["alg"] = "PS256".into();
    std::fs::write(&jwk_file, public.to_string()).unwrap();
    let start = || Peers::start(&["--dpop-algs", "RS256,PS256", "--pkjwt-jwk", jwk_file.to_str().unwrap()]);
    let auth = |peers: &Peers| {
        serde_json::json!({"client_id": "m2m.pkjwt.dpopkey", "client_auth_method": "private_key_jwt",
            "issuer": peers.issuer, "scope": "api"})
        .to_string()
    };
    let peers = start();
    assert_eq!(audited_get(&client(&key, &auth(&peers)), &peers, &key), "PS256");
    // The same key as rsa.pem (no alg: RS256): that client refuses it, the pin is real.
    let peers = start();
    let plain = Arc::new(EcKey::load_file(&fixture("rsa.pem"), None).unwrap());
    assert_eq!(plain.jkt(), key.jkt());
    let e = client(&plain, &auth(&peers)).quick_get_str(&peers.api).unwrap_err();
    assert!(e.message.contains("invalid_client"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn private_key_jwt_assertions_signed_with_rsa_keys() {
    for key in [EcKey::load_file(&fixture("rsa.jwk"), None).unwrap(), EcKey::generate_alg("PS256").unwrap()] {
        let key = Arc::new(key);
        let dir = std::env::temp_dir().join(format!("dpopkit-rsa-pkjwt-{}-{}", std::process::id(), key.alg()));
        std::fs::create_dir_all(&dir).unwrap();
        let jwk_file = dir.join("pub.jwk");
        std::fs::write(&jwk_file, key.public_jwk()).unwrap();
        let peers = Peers::start(&["--as-nonce", "--dpop-algs", "PS256,RS256", "--pkjwt-jwk", jwk_file.to_str().unwrap()]);
        let auth = serde_json::json!({"client_id": "m2m.pkjwt.dpopkey", "client_auth_method": "private_key_jwt",
            "issuer": peers.issuer, "scope": "api"});
        let http = client(&key, &auth.to_string());
        let (body, resp) = http.quick_get_str(&peers.api).unwrap_or_else(|e| panic!("{}: {e}", key.alg()));
        assert_eq!(resp.status, 200);
        assert!(body.contains("m2m.pkjwt.dpopkey"), "{body}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

use super::*;

#[test]
fn generate_export_reload_roundtrip() {
    let k = EcKey::generate().unwrap();
    let pem = k.to_pkcs8_pem().unwrap();
    let k2 = EcKey::from_any_format(pem.as_bytes(), None).unwrap();
    assert_eq!(k.jkt(), k2.jkt());
    let jwk = k.to_private_jwk().unwrap();
    let k3 = EcKey::from_any_format(jwk.as_bytes(), None).unwrap();
    assert_eq!(k.jkt(), k3.jkt());
    assert_eq!(k.jkt().len(), 43);
}

/// A SEC1 `ECPrivateKey` DER with the scalar of one key and, optionally, a public point.
fn sec1_der(scalar: &[u8], oid: &str, point: Option<&[u8]>) -> Vec<u8> {
    use sec1::der::Encode;
    let oid = sec1::der::asn1::ObjectIdentifier::new_unwrap(oid);
    let parsed = sec1::EcPrivateKey { private_key: scalar, parameters: Some(sec1::EcParameters::NamedCurve(oid)), public_key: point };
    parsed.to_der().unwrap()
}

#[test]
fn stored_public_points_are_used_and_checked() {
    for (alg, oid) in [("ES256", OID_P256), ("ES384", OID_P384)] {
        let a = EcKey::generate_alg(alg).unwrap();
        let b = EcKey::generate_alg(alg).unwrap();
        let scalar = match &a.secret {
            Secret::P256(k) => k.to_bytes().to_vec(),
            Secret::P384(k) => k.to_bytes().to_vec(),
            Secret::Ed25519(_) | Secret::Rsa(_) | Secret::InToken => unreachable!(),
        };
        // With its own point: the same key; without a point: derived, the same key.
        let with = EcKey::from_any_format(&sec1_der(&scalar, oid, Some(a.public_point())), None).unwrap();
        assert_eq!(with.jkt(), a.jkt());
        let without = EcKey::from_any_format(&sec1_der(&scalar, oid, None), None).unwrap();
        assert_eq!(without.jkt(), a.jkt());
        // Another key's point next to this scalar: refused, never a key with a wrong jkt.
        let e = EcKey::from_any_format(&sec1_der(&scalar, oid, Some(b.public_point())), None).unwrap_err();
        assert_eq!(e.kind, ErrorKind::KeyFormat, "{alg}: {}", e.message);
        // The same for a JWK whose x/y belong to another key.
        let jwk: serde_json::Value = serde_json::from_str(&a.to_private_jwk().unwrap()).unwrap();
        let other: serde_json::Value = serde_json::from_str(b.public_jwk()).unwrap();
        let mut mixed = jwk.clone();
        mixed["x"] = other["x"].clone();
        mixed["y"] = other["y"].clone();
        let e = EcKey::from_any_format(mixed.to_string().as_bytes(), None).unwrap_err();
        assert_eq!(e.kind, ErrorKind::KeyFormat, "{alg}: {}", e.message);
        let mut no_y = jwk.clone();
        no_y.as_object_mut().unwrap().remove("y");
        assert_eq!(EcKey::from_any_format(no_y.to_string().as_bytes(), None).unwrap_err().kind, ErrorKind::KeyFormat);
    }
}

#[test]
fn the_file_cache_follows_the_file_and_the_password() {
    let dir = std::env::temp_dir().join(format!("dpopkit-keycache-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("key.pem");
    let first = EcKey::generate().unwrap();
    std::fs::write(&path, first.to_pkcs8_pem().unwrap().as_bytes()).unwrap();
    let a = EcKey::load_file_shared(&path, None).unwrap();
    let b = EcKey::load_file_shared(&path, Some("")).unwrap();
    assert!(std::sync::Arc::ptr_eq(&a, &b), "the same unchanged file is parsed once");
    assert_eq!(a.jkt(), first.jkt());
    // A rewritten file (a rotated key, same size, maybe the same mtime) is parsed again.
    let second = EcKey::generate().unwrap();
    std::fs::write(&path, second.to_pkcs8_pem().unwrap().as_bytes()).unwrap();
    let c = EcKey::load_file_shared(&path, None).unwrap();
    assert_eq!(c.jkt(), second.jkt(), "a changed file is never served from the cache");
    // A password is part of the identity (an unencrypted key ignores it, but the entry differs).
    let d = EcKey::load_file_shared(&path, Some("pw")).unwrap();
    assert!(!std::sync::Arc::ptr_eq(&c, &d));
    assert!(file_cache_len() <= MAX_CACHED_FILE_KEYS);
    // Errors are not cached.
    std::fs::write(&path, b"garbage").unwrap();
    assert!(EcKey::load_file_shared(&path, None).is_err());
    std::fs::write(&path, second.to_pkcs8_pem().unwrap().as_bytes()).unwrap();
    assert_eq!(EcKey::load_file_shared(&path, None).unwrap().jkt(), second.jkt());
    let _ = std::fs::remove_dir_all(&dir);

    // A file whose times are settled is not read again while its stat is unchanged.
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ec_sec1.pem");
    while !crate::core::fsread::FileStat::of(&std::fs::metadata(&fixture).unwrap()).settled() {
        std::thread::sleep(std::time::Duration::from_millis(100)); // a fresh checkout
    }
    let a = EcKey::load_file_shared(&fixture, None).unwrap();
    let reads = file_cache_reads();
    let b = EcKey::load_file_shared(&fixture, None).unwrap();
    assert!(std::sync::Arc::ptr_eq(&a, &b));
    assert_eq!(file_cache_reads(), reads, "an unchanged, settled file is served on its stat");
    // A fresh file is read every time (its stat could hide a same-tick rewrite).
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(&path, first.to_pkcs8_pem().unwrap().as_bytes()).unwrap();
    EcKey::load_file_shared(&path, None).unwrap();
    let reads = file_cache_reads();
    EcKey::load_file_shared(&path, None).unwrap();
    assert_eq!(file_cache_reads(), reads + 1, "a file changed within the last {:?} is read again", crate::core::fsread::SETTLED);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn signature_is_jws_form_and_verifies() {
    let k = EcKey::generate().unwrap();
    let sig = k.sign(b"hello").unwrap();
    assert_eq!(sig.len(), 64);
    let pk = ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, k.public_point());
    pk.verify(b"hello", &sig).unwrap();
    assert!(pk.verify(b"hellO", &sig).is_err());
}

#[test]
fn rfc7638_thumbprint_example_shape() {
    // Thumbprint input has exactly the required members in lexicographic order.
    let k = EcKey::generate().unwrap();
    let v: serde_json::Value = serde_json::from_str(k.public_jwk()).unwrap();
    let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, ["crv", "kty", "x", "y"]);
    assert!(!k.public_jwk().contains("\"d\""));
}

#[test]
fn public_only_jwk_and_garbage_are_clear_errors() {
    let k = EcKey::generate().unwrap();
    let e = EcKey::from_any_format(k.public_jwk().as_bytes(), None).unwrap_err();
    assert_eq!(e.kind, ErrorKind::KeyFormat);
    assert!(e.message.contains("public key"), "{}", e.message);
    let e = EcKey::from_any_format(b"\x00\x01garbage", None).unwrap_err();
    assert_eq!(e.kind, ErrorKind::KeyFormat);
    // An RSA JWK without its CRT members is malformed (and says which members it needs).
    let e = EcKey::from_any_format(br#"{"kty":"RSA","n":"AQAB","e":"AQAB","d":"AQAB"}"#, None).unwrap_err();
    assert_eq!(e.kind, ErrorKind::KeyFormat);
    assert!(e.message.contains("\"p\"") && e.message.contains("dp, dq and qi"), "{}", e.message);
}

#[test]
fn every_algorithm_generates_exports_reloads_and_signs() {
    for (alg, sig_len, crv) in [("ES256", 64, "P-256"), ("ES384", 96, "P-384"), ("EdDSA", 64, "Ed25519")] {
        let k = EcKey::generate_alg(alg).unwrap();
        assert_eq!(k.alg(), alg);
        assert!(k.public_jwk().contains(crv));
        assert_eq!(k.sign(b"m").unwrap().len(), sig_len, "{alg}");
        let pem = k.to_pkcs8_pem().unwrap();
        assert_eq!(EcKey::from_any_format(pem.as_bytes(), None).unwrap().jkt(), k.jkt(), "{alg} PEM");
        let jwk = k.to_private_jwk().unwrap();
        assert_eq!(EcKey::from_any_format(jwk.as_bytes(), None).unwrap().jkt(), k.jkt(), "{alg} JWK");
    }
    let ed = EcKey::generate_alg("EdDSA").unwrap();
    let pk = ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, ed.public_point());
    pk.verify(b"m", &ed.sign(b"m").unwrap()).unwrap();
    assert!(EcKey::generate_alg("HS256").is_err());
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)).unwrap()
}

/// Verifies an RS256 or PS256 signature with ring's verifier and the key's RSAPublicKey.
fn rsa_verifies(k: &EcKey, alg: &str, msg: &[u8], sig: &[u8]) -> bool {
    let v: &dyn ring::signature::VerificationAlgorithm =
        if alg == "PS256" { &ring::signature::RSA_PSS_2048_8192_SHA256 } else { &ring::signature::RSA_PKCS1_2048_8192_SHA256 };
    ring::signature::UnparsedPublicKey::new(v, k.public_point()).verify(msg, sig).is_ok()
}

#[test]
fn rsa_keys_in_every_format_are_one_key_with_the_rfc7638_thumbprint() {
    // rsa.jkt was computed by node's crypto from the same key (RFC 7638: e, kty, n).
    let jkt = String::from_utf8(fixture("rsa.jkt")).unwrap().trim().to_string();
    for (file, password) in [
        ("rsa.pem", None),
        ("rsa_pkcs1.pem", None),
        ("rsa_pkcs1.der", None),
        ("rsa_pkcs8.der", None),
        ("rsa_pkcs8_enc.pem", Some("test-password")),
        ("rsa.jwk", None),
    ] {
        let k = EcKey::from_any_format(&fixture(file), password).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(k.jkt(), jkt, "{file}");
        assert_eq!(k.alg(), "RS256", "{file}");
        assert_eq!(k.algs(), ["RS256", "PS256"], "{file}");
        assert_eq!(k.rsa_bits(), Some(2048), "{file}");
        let v: serde_json::Value = serde_json::from_str(k.public_jwk()).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["e", "kty", "n"], "{file}");
        for alg in ["RS256", "PS256"] {
            let sig = k.sign_alg(alg, b"m").unwrap();
            assert_eq!(sig.len(), 256, "{file} {alg}");
            assert!(rsa_verifies(&k, alg, b"m", &sig), "{file} {alg}");
        }
        // PKCS#1 v1.5 is deterministic, PSS is salted: the two never verify as each other.
        let rs = k.sign_alg("RS256", b"m").unwrap();
        assert!(!rsa_verifies(&k, "PS256", b"m", &rs));
        assert!(k.sign_alg("ES256", b"m").is_err());
    }
    let e = EcKey::from_any_format(&fixture("rsa_pkcs8_enc.pem"), None).unwrap_err();
    assert!(e.message.contains("no password"), "{e}");
}

#[test]
fn rsa_keys_export_reload_and_refuse_small_moduli() {
    let k = EcKey::from_any_format(&fixture("rsa.pem"), None).unwrap();
    let pem = k.to_pkcs8_pem().unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    assert_eq!(EcKey::from_any_format(pem.as_bytes(), None).unwrap().jkt(), k.jkt());
    let jwk = k.to_private_jwk().unwrap();
    let v: serde_json::Value = serde_json::from_str(&jwk).unwrap();
    let theirs: serde_json::Value = serde_json::from_slice(&fixture("rsa.jwk")).unwrap();
    for m in ["n", "e", "d", "p", "q", "dp", "dq", "qi"] {
        assert_eq!(v[m], theirs[m], "{m}");
    }
    assert_eq!(EcKey::from_any_format(jwk.as_bytes(), None).unwrap().jkt(), k.jkt());
    // A JWK whose n belongs to another key: refused, never a key with a wrong jkt.
    let other = EcKey::from_any_format(&fixture("rsa4096.pem"), None).unwrap();
    assert_eq!(other.rsa_bits(), Some(4096));
    assert_eq!(other.sign_alg("PS256", b"m").unwrap().len(), 512);
    let mut mixed = theirs.clone();
    mixed["q"] = serde_json::from_str::<serde_json::Value>(&other.to_private_jwk().unwrap()).unwrap()["q"].clone();
    assert!(EcKey::from_any_format(mixed.to_string().as_bytes(), None).is_err());
    // 1024 bits: refused with the fix, in every format.
    let small = EcKey::from_any_format(&fixture("rsa1024.pem"), None).unwrap_err();
    assert_eq!(small.kind, ErrorKind::KeyUnsupported);
    assert!(
        small.message.contains("1024 bits") && small.message.contains("2048") && small.message.contains("keygen --alg PS256"),
        "{small}"
    );
    // The public half alone is not a DPoP key.
    let e = EcKey::from_any_format(k.public_jwk().as_bytes(), None).unwrap_err();
    assert!(e.message.contains("public key"), "{e}");
}

#[test]
fn generated_rsa_keys_prefer_their_algorithm() {
    let ps = EcKey::generate_alg("PS256").unwrap();
    assert_eq!((ps.alg(), ps.rsa_bits()), ("PS256", Some(rsa::DEFAULT_BITS)));
    assert_eq!(ps.algs(), ["PS256", "RS256"]);
    let sig = ps.sign(b"m").unwrap();
    assert!(rsa_verifies(&ps, "PS256", b"m", &sig));
    let offered = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(ps.choose_alg(Some(&offered(&["RS256", "PS256"]))), Some("PS256"));
    assert_eq!(ps.choose_alg(Some(&offered(&["RS256", "ES256"]))), Some("RS256"));
    assert_eq!(ps.choose_alg(Some(&offered(&["ES256"]))), None);
    // Reloaded from PKCS#8, the key prefers RS256 (PKCS#8 does not say); from its JWK, which
    // carries "alg": "PS256" (RFC 7517 §4.4), PS256 again.
    let reloaded = EcKey::from_any_format(ps.to_pkcs8_pem().unwrap().as_bytes(), None).unwrap();
    assert_eq!((reloaded.alg(), reloaded.jkt()), ("RS256", ps.jkt()));
    let jwk = ps.to_private_jwk().unwrap();
    assert!(jwk.contains(r#""alg":"PS256""#));
    let reloaded = EcKey::from_any_format(jwk.as_bytes(), None).unwrap();
    assert_eq!((reloaded.alg(), reloaded.jkt()), ("PS256", ps.jkt()));
    // The member, not the three letters (a base64 component holds "alg" once in ~170 keys).
    assert!(!EcKey::generate_alg("RS256").unwrap().to_private_jwk().unwrap().contains(r#""alg""#));
    assert!(EcKey::generate_rsa(1024, "RS256").unwrap_err().message.contains("1024 bits"));
}

#[test]
fn debug_does_not_print_the_private_key() {
    let k = EcKey::generate().unwrap();
    let jwk = k.to_private_jwk().unwrap();
    let v: serde_json::Value = serde_json::from_str(&jwk).unwrap();
    let d = v["d"].as_str().unwrap().to_string();
    let dbg = format!("{k:?}");
    assert!(!dbg.contains(&d));
    assert!(dbg.contains(k.jkt()));
}

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
            Secret::Ed25519(_) | Secret::InToken => unreachable!(),
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
    let e = EcKey::from_any_format(br#"{"kty":"RSA","n":"x","e":"AQAB","d":"x"}"#, None).unwrap_err();
    assert_eq!(e.kind, ErrorKind::KeyUnsupported);
    assert!(e.message.contains("P-256") && e.message.contains("RFC 9449 allows RSA"), "{}", e.message);
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
    assert!(EcKey::generate_alg("RS256").is_err());
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

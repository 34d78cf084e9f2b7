use super::*;

#[test]
fn uri_parses_rfc7512_attributes_and_percent_escapes() {
    let u = Pkcs11Uri::parse(
        "pkcs11:token=My%20Token;object=api-key;id=%01%a0;slot-id=7;serial=12ab;manufacturer=SoftHSM%20project;\
         model=SoftHSM%20v2;type=private?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=12%3B34",
    )
    .unwrap();
    assert_eq!(u.token.as_deref(), Some("My Token"));
    assert_eq!(u.object.as_deref(), Some("api-key"));
    assert_eq!(u.id.as_deref(), Some(&[0x01, 0xa0][..]));
    assert_eq!(u.slot_id, Some(7));
    assert_eq!(u.serial.as_deref(), Some("12ab"));
    assert_eq!(u.manufacturer.as_deref(), Some("SoftHSM project"));
    assert_eq!(u.model.as_deref(), Some("SoftHSM v2"));
    assert_eq!(u.module_path.as_deref(), Some("/usr/lib/softhsm/libsofthsm2.so"));
    assert_eq!(u.pin(None).unwrap().unwrap().as_str(), "12;34");
    assert_eq!(u.pin(Some("9999")).unwrap().unwrap().as_str(), "9999", "the password argument wins");
    assert_eq!(u.pin(Some("")).unwrap().unwrap().as_str(), "12;34", "an empty password is none");
    let shown = u.shown();
    assert!(!shown.contains("12;34") && !shown.contains("12%3B34"), "{shown}");
    assert!(shown.contains("pin-value=****") && shown.contains("token=My%20Token") && shown.contains("id=%01%A0"), "{shown}");
    assert!(!format!("{u:?}").contains("34"));
    assert!(is_uri("  PKCS11:token=x") && !is_uri("pkcs1") && !is_uri("-----BEGIN"));
}

#[test]
fn bad_uris_are_refused_without_echoing_the_pin() {
    for (uri, needle) in [
        ("pkcs11:token=a;token=b", "twice"),
        ("pkcs11:object=%zz", "percent-escape"),
        ("pkcs11:obj=x", "unknown attribute 'obj'"),
        ("pkcs11:type=public", "type=public"),
        ("pkcs11:type=cert", "private"),
        ("pkcs11:slot-id=x1", "decimal"),
        ("pkcs11:token", "no '='"),
        ("pkcs11:module-path=/x", "query"),
        ("pkcs11:?token=x", "path"),
        ("pkcs11:?module-name=softhsm2", "module-path"),
        ("pkcs11:slot-description=x", "not supported"),
        ("pkcs11:object=%FF%FE", "UTF-8"),
        ("file:key.pem", "pkcs11:"),
    ] {
        let e = Pkcs11Uri::parse(uri).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidArgument, "{uri}");
        assert!(e.message.contains(needle), "{uri}: {}", e.message);
    }
    let e = Pkcs11Uri::parse("pkcs11:token=a;bogus=1?pin-value=S3cretPin").unwrap_err();
    assert!(!e.message.contains("S3cretPin"), "{}", e.message);
    let e = Pkcs11Uri::parse("pkcs11:token=a?pin-value=S3cretPin&pin-value=other").unwrap_err();
    assert!(!e.message.contains("S3cretPin") && !e.message.contains("other"), "{}", e.message);
}

#[test]
fn every_spelling_of_pin_value_is_recognised_and_never_echoed() {
    for t in ["pin-value", "PIN-VALUE:1", "pin value 1", "pin_value=1", "pin%2Dvalue", "pin%252dvalue", "p%69n-value", "x&pin-value=1"] {
        assert!(holds_pin_value(t), "{t}");
    }
    for t in ["pin-source=/x", "token=pin", "object=value", "pinned-value"] {
        assert!(!holds_pin_value(t), "{t}");
    }
    for uri in [
        "pkcs11:token=a?pin-value:7391",
        "pkcs11:token=a?pin-value%3D7391",
        "pkcs11:token=a?pin-value 7391",
        "pkcs11:token=a;object=k&pin-value=7391",
        "pkcs11:token=a?pin-value=73&91",
        "pkcs11:token=a?pin-value=73&91=x",
        "pkcs11:token=a?pin-value=7391&pin-source=/x/7391",
    ] {
        let e = Pkcs11Uri::parse(uri).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidArgument, "{uri}");
        assert!(!e.message.contains("73") && !e.message.contains("91"), "{uri}: {}", e.message);
    }
    // Without a pin-value in the query, the attribute at fault is still named.
    let e = Pkcs11Uri::parse("pkcs11:token=a;bogus=1?pin-value=7391").unwrap_err();
    assert!(e.message.contains("'bogus'") && !e.message.contains("7391"), "{}", e.message);
    assert!(refuse_misspelt_uri("pkcs11;token=a?pin-value=7391").unwrap_err().message.find("7391").is_none());
    assert!(refuse_misspelt_uri("/keys/dpop.pem").is_ok());
}

#[test]
fn module_path_must_be_absolute_and_may_come_from_the_uri() {
    let u = Pkcs11Uri::parse("pkcs11:token=a?module-path=libsofthsm2.so").unwrap();
    let e = u.module().unwrap_err();
    assert!(e.message.contains("not absolute"), "{}", e.message);
    if std::env::var_os(MODULE_ENV).is_none() {
        let e = Pkcs11Uri::parse("pkcs11:token=a").unwrap().module().unwrap_err();
        assert!(e.message.contains(MODULE_ENV) && e.message.contains("module-path"), "{}", e.message);
    }
}

#[test]
fn pin_source_reads_the_first_line_of_a_file() {
    let path = std::env::temp_dir().join(format!("dpopkit-pin-{}", std::process::id()));
    std::fs::write(&path, "4321\nignored\n").unwrap();
    let u = Pkcs11Uri::parse(&format!("pkcs11:token=a?pin-source=file:{}", path.display())).unwrap();
    assert_eq!(u.pin(None).unwrap().unwrap().as_str(), "4321");
    std::fs::remove_file(&path).unwrap();
    let e = u.pin(None).unwrap_err();
    assert_eq!(e.kind, ErrorKind::FileIo);
    assert!(e.message.contains("pin-source"), "{}", e.message);
}

#[test]
fn ec_point_accepts_der_octet_string_raw_and_compressed() {
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    let sk = p256::SecretKey::random(&mut rand_core::OsRng);
    let raw = sk.public_key().to_encoded_point(false).as_bytes().to_vec();
    let mut der = vec![0x04, raw.len() as u8];
    der.extend_from_slice(&raw);
    let compressed = sk.public_key().to_encoded_point(true).as_bytes().to_vec();
    for input in [&raw, &der, &compressed] {
        assert_eq!(parse_ec_point(Curve::P256, input).unwrap(), raw);
    }
    assert!(parse_ec_point(Curve::P256, &raw[..64]).is_err());
    let sk = p384::SecretKey::random(&mut rand_core::OsRng);
    let raw = sk.public_key().to_encoded_point(false).as_bytes().to_vec();
    let mut der = vec![0x04, raw.len() as u8];
    der.extend_from_slice(&raw);
    assert_eq!(parse_ec_point(Curve::P384, &der).unwrap(), raw);
    assert!(parse_ec_point(Curve::P256, &der).is_err(), "a P-384 point is not a P-256 point");
}

/// A raw uncompressed P-256 point is 0x04, then 64 bytes; when X starts with 0x3f (63, the
/// length of the rest) it also looks like a DER OCTET STRING of 63 bytes: one key in 256
/// of a token that gives raw points failed to load.
#[test]
fn a_raw_point_that_looks_like_an_octet_string_is_read_as_a_point() {
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    let raw = (0..100_000)
        .map(|_| p256::SecretKey::random(&mut rand_core::OsRng).public_key().to_encoded_point(false).as_bytes().to_vec())
        .find(|raw| raw[1] == 0x3f)
        .expect("one key in 256 has an X that starts with 0x3f");
    assert_eq!(parse_ec_point(Curve::P256, &raw).unwrap(), raw);
    let mut der = vec![0x04, raw.len() as u8];
    der.extend_from_slice(&raw);
    assert_eq!(parse_ec_point(Curve::P256, &der).unwrap(), raw);
}

#[test]
fn der_signatures_are_converted_to_r_s() {
    let mut raw = vec![0u8; 64];
    raw[0] = 0x80; // r needs a leading zero in DER
    raw[31] = 1;
    raw[63] = 2; // s = 2: short
    let mut der = vec![0x30, 0, 0x02, 33, 0];
    der.extend_from_slice(&raw[..32]);
    der.extend_from_slice(&[0x02, 1, 2]);
    der[1] = (der.len() - 2) as u8;
    assert_eq!(raw_signature(der, 32).unwrap(), raw);
    assert_eq!(raw_signature(raw.clone(), 32).unwrap(), raw);
    assert!(raw_signature(vec![1, 2, 3], 32).is_none());
}

#[test]
fn ec_params_name_the_curve() {
    assert_eq!(ec_params_curve(DER_OID_P256).unwrap(), Curve::P256);
    assert_eq!(ec_params_curve(DER_OID_P384).unwrap(), Curve::P384);
    let e = ec_params_curve(&[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23]).unwrap_err();
    assert_eq!(e.kind, ErrorKind::KeyUnsupported);
}

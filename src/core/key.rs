//! EC P-256 private keys: loading from every common format, generation, export, and the
//! public JWK with its RFC 7638 thumbprint.
//!
//! Parsing and export use RustCrypto (`p256`, `pkcs8`, `sec1`); signing uses `ring`, which
//! rustls already links and which signs about ten times faster than `p256` 0.13 here
//! (see BENCHMARKS.md). Both hold the same scalar; `ring` validates the pair on load.

use std::fmt;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::error::{Error, ErrorKind, Result, err, shorten};

const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";
const OID_P521: &str = "1.3.132.0.35";
const OID_SECP256K1: &str = "1.3.132.0.10";
const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_RSA_PSS: &str = "1.2.840.113549.1.1.10";
const OID_ED25519: &str = "1.3.101.112";
const OID_ED448: &str = "1.3.101.113";

/// Largest key file we read: a key is a few hundred bytes; this only stops a wrong path
/// (a log file, a database) from being read into memory.
const MAX_KEY_FILE: u64 = 1 << 20;

fn unsupported_curve(what: &str) -> Error {
    Error::new(
        ErrorKind::KeyUnsupported,
        format!(
            "the key is {what}; DPoP here signs with ES256, which needs an EC key on curve P-256 \
             (prime256v1 / secp256r1). Generate one with: openssl ecparam -name prime256v1 -genkey"
        ),
    )
}

fn describe_oid(oid: &str) -> &'static str {
    match oid {
        OID_P384 => "an EC key on curve P-384",
        OID_P521 => "an EC key on curve P-521",
        OID_SECP256K1 => "an EC key on curve secp256k1",
        OID_RSA | OID_RSA_PSS => "an RSA key",
        OID_ED25519 => "an Ed25519 key",
        OID_ED448 => "an Ed448 key",
        _ => "of an unsupported algorithm",
    }
}

/// ring's key pair, kept in its own heap block that is wiped when dropped: ring does not
/// zeroize its private scalar itself.
struct WipedKeyPair(std::mem::ManuallyDrop<Box<EcdsaKeyPair>>);

impl WipedKeyPair {
    fn new(pair: EcdsaKeyPair) -> Self {
        WipedKeyPair(std::mem::ManuallyDrop::new(Box::new(pair)))
    }
}

impl std::ops::Deref for WipedKeyPair {
    type Target = EcdsaKeyPair;
    fn deref(&self) -> &EcdsaKeyPair {
        &self.0
    }
}

#[allow(unsafe_code)]
impl Drop for WipedKeyPair {
    fn drop(&mut self) {
        use std::mem::MaybeUninit;
        use zeroize::Zeroize;
        // SAFETY: the box is taken exactly once, here, and never used again. After
        // drop_in_place the block holds no live value, so overwriting its bytes is fine;
        // it is then freed as a Box<MaybeUninit<EcdsaKeyPair>>, which has the same layout.
        unsafe {
            let raw = Box::into_raw(std::mem::ManuallyDrop::take(&mut self.0));
            std::ptr::drop_in_place(raw);
            let bytes = std::slice::from_raw_parts_mut(raw.cast::<MaybeUninit<u8>>(), size_of::<EcdsaKeyPair>());
            bytes.zeroize();
            drop(Box::from_raw(raw.cast::<MaybeUninit<EcdsaKeyPair>>()));
        }
    }
}

/// An ES256 signing key. The private scalar lives in `p256::SecretKey` and in ring's key
/// pair, both wiped when the key is dropped; `Debug` shows only the public thumbprint.
pub struct EcKey {
    secret: p256::SecretKey,
    signer: WipedKeyPair,
    public_jwk: String,
    jkt: String,
    /// base64url of the DPoP proof's JOSE header, which depends only on the public key.
    proof_header_b64: String,
}

impl fmt::Debug for EcKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EcKey").field("alg", &"ES256").field("jkt", &self.jkt).finish_non_exhaustive()
    }
}

impl EcKey {
    /// A fresh random P-256 key from the operating system's CSPRNG.
    pub fn generate() -> Result<Self> {
        Self::from_secret(p256::SecretKey::random(&mut rand_core::OsRng))
    }

    fn from_secret(secret: p256::SecretKey) -> Result<Self> {
        let point = secret.public_key().to_encoded_point(false);
        let scalar = Zeroizing::new(secret.to_bytes());
        let signer = EcdsaKeyPair::from_private_key_and_public_key(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            scalar.as_slice(),
            point.as_bytes(),
            &SystemRandom::new(),
        )
        .map_err(|_| Error::new(ErrorKind::KeyFormat, "the EC private key is not a valid P-256 key"))?;
        let (x, y) = (point.x().expect("uncompressed point"), point.y().expect("uncompressed point"));
        let (x, y) = (URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y));
        // RFC 7638: the required members in lexicographic order, no whitespace.
        let public_jwk = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let jkt = URL_SAFE_NO_PAD.encode(Sha256::digest(public_jwk.as_bytes()));
        let header = format!(r#"{{"typ":"dpop+jwt","alg":"ES256","jwk":{public_jwk}}}"#);
        let proof_header_b64 = URL_SAFE_NO_PAD.encode(header.as_bytes());
        Ok(EcKey { secret, signer: WipedKeyPair::new(signer), public_jwk, jkt, proof_header_b64 })
    }

    /// Reads a key file in any supported format (see [`EcKey::from_any_format`]).
    pub fn load_file(path: &Path, password: Option<&str>) -> Result<Self> {
        let shown = shorten(&path.display().to_string());
        let meta = std::fs::metadata(path)
            .map_err(|e| Error::new(ErrorKind::FileIo, format!("cannot read key file '{shown}': {e}")))?;
        if meta.is_dir() {
            return err(ErrorKind::FileIo, format!("cannot read key file '{shown}': it is a directory"));
        }
        if meta.len() > MAX_KEY_FILE {
            return err(
                ErrorKind::KeyFormat,
                format!("'{shown}' is {} bytes, too large to be a key file", meta.len()),
            );
        }
        let data = Zeroizing::new(
            std::fs::read(path)
                .map_err(|e| Error::new(ErrorKind::FileIo, format!("cannot read key file '{shown}': {e}")))?,
        );
        Self::from_any_format(&data, password)
            .map_err(|e| Error::new(e.kind, format!("key file '{shown}': {}", e.message)))
    }

    /// Parses PEM (SEC1 `EC PRIVATE KEY`, PKCS#8 `PRIVATE KEY`, `ENCRYPTED PRIVATE KEY`),
    /// DER (SEC1, PKCS#8 or encrypted PKCS#8) or a JWK JSON object with `d`.
    /// `password` is used only for encrypted PKCS#8; an empty password counts as none.
    pub fn from_any_format(data: &[u8], password: Option<&str>) -> Result<Self> {
        let password = password.filter(|p| !p.is_empty());
        let text = std::str::from_utf8(data).ok().map(|t| t.trim_start_matches('\u{feff}').trim());
        match text {
            Some(t) if t.starts_with('{') => Self::from_jwk(t),
            Some(t) if t.contains("-----BEGIN ") => Self::from_pem(t, password),
            _ => Self::from_der(data, password),
        }
    }

    fn from_jwk(text: &str) -> Result<Self> {
        let mut v: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| Error::new(ErrorKind::KeyFormat, format!("the JWK is not valid JSON: {e}")))?;
        let result = Self::from_parsed_jwk(text, &v);
        super::redact::wipe_json(&mut v);
        result
    }

    fn from_parsed_jwk(text: &str, v: &serde_json::Value) -> Result<Self> {
        let field = |name: &str| v.get(name).and_then(|x| x.as_str());
        match (field("kty"), field("crv")) {
            (Some("EC"), Some("P-256")) => {}
            (Some("EC"), Some(crv)) => return Err(unsupported_curve(&format!("an EC key on curve {crv}"))),
            (Some("RSA"), _) => return Err(unsupported_curve("an RSA key")),
            (Some("OKP"), Some(crv)) => return Err(unsupported_curve(&format!("an {crv} key"))),
            (Some(kty), _) => return Err(unsupported_curve(&format!("a JWK of type {kty}"))),
            (None, _) => return err(ErrorKind::KeyFormat, "the JWK has no \"kty\" member"),
        }
        if field("d").is_none() {
            return err(
                ErrorKind::KeyFormat,
                "the JWK holds only a public key (no \"d\" member); DPoP needs the private key",
            );
        }
        let secret = p256::SecretKey::from_jwk_str(text)
            .map_err(|_| Error::new(ErrorKind::KeyFormat, "the JWK's x, y or d are not a valid P-256 key pair"))?;
        Self::from_secret(secret)
    }

    fn from_pem(text: &str, password: Option<&str>) -> Result<Self> {
        let mut labels = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("-----BEGIN ") {
            let after = &rest[start + 11..];
            let Some(end_label) = after.find("-----") else { break };
            let label = &after[..end_label];
            let body_start = &after[end_label + 5..];
            let end_marker = format!("-----END {label}-----");
            let Some(body_end) = body_start.find(&end_marker) else {
                return err(ErrorKind::KeyFormat, format!("the PEM block '{label}' has no END line"));
            };
            let body = &body_start[..body_end];
            rest = &body_start[body_end + end_marker.len()..];
            match label {
                "EC PRIVATE KEY" | "PRIVATE KEY" | "ENCRYPTED PRIVATE KEY" => {
                    if body.contains("Proc-Type:") || body.contains("DEK-Info:") {
                        return err(
                            ErrorKind::KeyFormat,
                            "the key uses OpenSSL's legacy PEM encryption (Proc-Type/DEK-Info), which is \
                             not supported; convert it with: openssl pkcs8 -topk8 -v2 aes-256-cbc",
                        );
                    }
                    let der = pem_body(body)?;
                    return match label {
                        "EC PRIVATE KEY" => Self::from_sec1_der(&der),
                        "PRIVATE KEY" => Self::from_pkcs8_der(&der),
                        _ => Self::from_encrypted_pkcs8_der(&der, password),
                    };
                }
                "RSA PRIVATE KEY" => return Err(unsupported_curve("an RSA key")),
                "OPENSSH PRIVATE KEY" => {
                    return err(
                        ErrorKind::KeyFormat,
                        "OpenSSH key files are not supported; convert with: ssh-keygen -p -m PKCS8 -f FILE",
                    );
                }
                other => labels.push(other.to_string()),
            }
        }
        if labels.is_empty() {
            err(ErrorKind::KeyFormat, "no complete PEM block found")
        } else {
            err(
                ErrorKind::KeyFormat,
                format!("the PEM data holds no private key (found: {})", labels.join(", ")),
            )
        }
    }

    fn from_der(der: &[u8], password: Option<&str>) -> Result<Self> {
        if der.is_empty() {
            return err(ErrorKind::KeyFormat, "the key data is empty");
        }
        if pkcs8::PrivateKeyInfo::try_from(der).is_ok() {
            return Self::from_pkcs8_der(der);
        }
        if sec1::EcPrivateKey::try_from(der).is_ok() {
            return Self::from_sec1_der(der);
        }
        if pkcs8::EncryptedPrivateKeyInfo::try_from(der).is_ok() {
            return Self::from_encrypted_pkcs8_der(der, password);
        }
        err(
            ErrorKind::KeyFormat,
            "unrecognised key format: expected PEM (SEC1, PKCS#8, encrypted PKCS#8), DER or a JWK",
        )
    }

    fn from_sec1_der(der: &[u8]) -> Result<Self> {
        let parsed = sec1::EcPrivateKey::try_from(der)
            .map_err(|e| Error::new(ErrorKind::KeyFormat, format!("invalid SEC1 EC private key: {e}")))?;
        if let Some(oid) = parsed.parameters.and_then(|p| p.named_curve()) {
            let oid = oid.to_string();
            if oid != OID_P256 {
                return Err(unsupported_curve(describe_oid(&oid)));
            }
        }
        let secret = p256::SecretKey::from_sec1_der(der)
            .map_err(|_| Error::new(ErrorKind::KeyFormat, "invalid SEC1 EC private key"))?;
        Self::from_secret(secret)
    }

    fn from_pkcs8_der(der: &[u8]) -> Result<Self> {
        let info = pkcs8::PrivateKeyInfo::try_from(der)
            .map_err(|e| Error::new(ErrorKind::KeyFormat, format!("invalid PKCS#8 private key: {e}")))?;
        let alg = info.algorithm.oid.to_string();
        if alg != OID_EC_PUBLIC_KEY {
            return Err(unsupported_curve(describe_oid(&alg)));
        }
        let curve = info.algorithm.parameters_oid().map(|o| o.to_string()).unwrap_or_default();
        if curve != OID_P256 {
            return Err(unsupported_curve(describe_oid(&curve)));
        }
        let secret = p256::SecretKey::from_pkcs8_der(der)
            .map_err(|_| Error::new(ErrorKind::KeyFormat, "invalid PKCS#8 P-256 private key"))?;
        Self::from_secret(secret)
    }

    fn from_encrypted_pkcs8_der(der: &[u8], password: Option<&str>) -> Result<Self> {
        let Some(password) = password else {
            return err(ErrorKind::KeyFormat, "the key is encrypted (PKCS#8) and no password was given");
        };
        let info = pkcs8::EncryptedPrivateKeyInfo::try_from(der)
            .map_err(|e| Error::new(ErrorKind::KeyFormat, format!("invalid encrypted PKCS#8 key: {e}")))?;
        let doc = info.decrypt(password).map_err(|_| {
            Error::new(
                ErrorKind::KeyFormat,
                "cannot decrypt the PKCS#8 key: wrong password or unsupported encryption \
                 (PBES2 with PBKDF2 or scrypt and AES-CBC is supported)",
            )
        })?;
        Self::from_pkcs8_der(doc.as_bytes())
    }

    /// The private key as unencrypted PKCS#8 PEM.
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>> {
        self.secret
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| Error::new(ErrorKind::Internal, format!("PKCS#8 encoding failed: {e}")))
    }

    /// The private key as a JWK (`kty`, `crv`, `x`, `y`, `d`).
    pub fn to_private_jwk(&self) -> Zeroizing<String> {
        self.secret.to_jwk_string()
    }

    /// The public key as a JWK with only the RFC 7638 members.
    pub fn public_jwk(&self) -> &str {
        &self.public_jwk
    }

    /// RFC 7638 SHA-256 thumbprint of the public JWK, base64url (the `jkt`).
    pub fn jkt(&self) -> &str {
        &self.jkt
    }

    pub fn alg(&self) -> &'static str {
        "ES256"
    }

    pub(crate) fn proof_header_b64(&self) -> &str {
        &self.proof_header_b64
    }

    /// ES256 signature in JWS form (r || s, 64 bytes), never DER.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        let rng = SystemRandom::new();
        let sig = self
            .signer
            .sign(&rng, message)
            .map_err(|_| Error::new(ErrorKind::Internal, "ES256 signing failed"))?;
        Ok(sig.as_ref().to_vec())
    }

    /// Uncompressed SEC1 public point (65 bytes), for verification in tests.
    pub fn public_point(&self) -> &[u8] {
        self.signer.public_key().as_ref()
    }
}

fn pem_body(body: &str) -> Result<Zeroizing<Vec<u8>>> {
    let compact: Zeroizing<String> = Zeroizing::new(body.chars().filter(|c| !c.is_whitespace()).collect());
    STANDARD
        .decode(compact.as_bytes())
        .map(Zeroizing::new)
        .map_err(|_| Error::new(ErrorKind::KeyFormat, "the PEM block is not valid base64"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_export_reload_roundtrip() {
        let k = EcKey::generate().unwrap();
        let pem = k.to_pkcs8_pem().unwrap();
        let k2 = EcKey::from_any_format(pem.as_bytes(), None).unwrap();
        assert_eq!(k.jkt(), k2.jkt());
        let jwk = k.to_private_jwk();
        let k3 = EcKey::from_any_format(jwk.as_bytes(), None).unwrap();
        assert_eq!(k.jkt(), k3.jkt());
        assert_eq!(k.jkt().len(), 43);
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
        assert!(e.message.contains("P-256"));
    }

    #[test]
    fn debug_does_not_print_the_private_key() {
        let k = EcKey::generate().unwrap();
        let jwk = k.to_private_jwk();
        let v: serde_json::Value = serde_json::from_str(&jwk).unwrap();
        let d = v["d"].as_str().unwrap().to_string();
        let dbg = format!("{k:?}");
        assert!(!dbg.contains(&d));
        assert!(dbg.contains(k.jkt()));
    }
}

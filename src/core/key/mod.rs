//! DPoP private keys: EC P-256 (ES256), EC P-384 (ES384), Ed25519 (EdDSA / Ed25519) and RSA
//! of 2048 to 4096 bits (RS256, PS256; see [`rsa`]). Loading from every common format,
//! generation, export, and the public JWK with its RFC 7638 thumbprint. Which algorithm a
//! key signs with for a server is chosen in [`algs`].
//!
//! Parsing and export use RustCrypto (`p256`, `p384`, `pkcs8`, `sec1`, `pkcs1`); signing uses `ring`,
//! which rustls already links and which signs about ten times faster than `p256` 0.13 here
//! (see BENCHMARKS.md). Both hold the secret; both copies are wiped on drop.
//!
//! A key may also live in a PKCS#11 token (`pkcs11:` URI, see [`super::pkcs11`]): then it
//! signs inside the token, is not exportable, and only its public half is here.

use std::fmt;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::{EncodePrivateKey, LineEnding};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, EcdsaSigningAlgorithm, Ed25519KeyPair, KeyPair,
    RsaKeyPair,
};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::error::{Error, ErrorKind, Result, err, shorten};
use super::fsread::FileMemo;
use super::fsread::{self, RegularFile};
use super::pkcs11::{self, TokenKey};

mod memo;
pub use memo::*;
mod kdf;
pub use kdf::*;
pub mod algs;
pub use algs::{KeyKind, canonical_alg};
pub mod rsa;

const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";
const OID_P521: &str = "1.3.132.0.35";
const OID_SECP256K1: &str = "1.3.132.0.10";
const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_RSA_PSS: &str = "1.2.840.113549.1.1.10";
const OID_ED25519: &str = "1.3.101.112";
const OID_ED448: &str = "1.3.101.113";

/// The signature algorithms a DPoP key can have, named as in JWS (`alg`).
pub const SUPPORTED_ALGS: &[&str] = &["ES256", "ES384", "EdDSA", "Ed25519", "RS256", "PS256"];

fn unsupported(what: &str) -> Error {
    Error::new(
        ErrorKind::KeyUnsupported,
        format!(
            "the key is {what}; DPoP proofs here are signed with ES256 (EC P-256, the usual choice), \
             ES384 (EC P-384), EdDSA / Ed25519 (Ed25519) or RS256 / PS256 (RSA, 2048 to 4096 bits). Generate a P-256 \
             key with: openssl ecparam -name prime256v1 -genkey"
        ),
    )
}

fn describe_oid(oid: &str) -> Error {
    match oid {
        OID_P521 => unsupported("an EC key on curve P-521"),
        OID_SECP256K1 => unsupported("an EC key on curve secp256k1"),
        OID_RSA_PSS => {
            unsupported("an RSASSA-PSS-restricted RSA key (OID 1.2.840.113549.1.1.10); a plain rsaEncryption key signs PS256 too")
        }
        OID_ED448 => unsupported("an Ed448 key"),
        other => unsupported(&format!("of an unsupported algorithm (OID {other})")),
    }
}

/// A ring key pair kept in its own heap block that is wiped when dropped: ring does not
/// zeroize its private keys itself.
struct Wiped<T>(std::mem::ManuallyDrop<Box<T>>);

impl<T> Wiped<T> {
    fn new(pair: T) -> Self {
        Wiped(std::mem::ManuallyDrop::new(Box::new(pair)))
    }
}

impl<T> std::ops::Deref for Wiped<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

#[allow(unsafe_code)]
impl<T> Drop for Wiped<T> {
    fn drop(&mut self) {
        use std::mem::MaybeUninit;
        use zeroize::Zeroize;
        // SAFETY: the box is taken exactly once, here, and never used again. After
        // drop_in_place the block holds no live value, so overwriting its bytes is fine;
        // it is then freed as a Box<MaybeUninit<T>>, which has the same layout.
        unsafe {
            let raw = Box::into_raw(std::mem::ManuallyDrop::take(&mut self.0));
            std::ptr::drop_in_place(raw);
            let bytes = std::slice::from_raw_parts_mut(raw.cast::<MaybeUninit<u8>>(), size_of::<T>());
            bytes.zeroize();
            drop(Box::from_raw(raw.cast::<MaybeUninit<T>>()));
        }
    }
}

/// The secret as RustCrypto (or, for Ed25519, a wiped seed) holds it, for export.
enum Secret {
    P256(p256::SecretKey),
    P384(p384::SecretKey),
    Ed25519(Zeroizing<[u8; 32]>),
    /// The PKCS#1 `RSAPrivateKey` DER.
    Rsa(Zeroizing<Vec<u8>>),
    /// In a PKCS#11 token: not here, not exportable.
    InToken,
}

enum Signer {
    Ecdsa(Wiped<EcdsaKeyPair>),
    Ed25519(Wiped<Ed25519KeyPair>),
    Rsa(Wiped<RsaKeyPair>),
    Token(Box<TokenKey>),
}

/// A DPoP signing key (the name is historical: it may also be an Ed25519 or an RSA key, in
/// a file or in a PKCS#11 token). `Debug` shows only the algorithm and the public thumbprint.
pub struct EcKey {
    secret: Secret,
    signer: Signer,
    /// The preferred algorithm ([`EcKey::alg`]); see [`algs`] for the others it signs.
    alg: &'static str,
    public_jwk: String,
    jkt: String,
    /// base64url of the DPoP proof's JOSE header for each algorithm the key signs, which
    /// depends only on the public key and the algorithm.
    proof_headers_b64: Vec<(&'static str, String)>,
}

impl fmt::Debug for EcKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EcKey").field("alg", &self.alg).field("jkt", &self.jkt).finish_non_exhaustive()
    }
}

fn ecdsa_pair(alg: &'static EcdsaSigningAlgorithm, scalar: &[u8], point: &[u8]) -> Result<Signer> {
    EcdsaKeyPair::from_private_key_and_public_key(alg, scalar, point, &SystemRandom::new())
        .map(|p| Signer::Ecdsa(Wiped::new(p)))
        .map_err(|_| Error::new(ErrorKind::KeyFormat, "the EC private key is not a valid key pair"))
}

impl EcKey {
    /// A fresh random P-256 key (ES256) from the operating system's CSPRNG.
    pub fn generate() -> Result<Self> {
        Self::generate_alg("ES256")
    }

    /// A fresh random key for `alg`: `ES256` (P-256), `ES384` (P-384), `EdDSA` or `Ed25519`
    /// (Ed25519), `RS256` or `PS256` (RSA of [`rsa::DEFAULT_BITS`] bits, preferring that
    /// algorithm).
    pub fn generate_alg(alg: &str) -> Result<Self> {
        match alg {
            "RS256" | "PS256" => Self::generate_rsa(rsa::DEFAULT_BITS, alg),
            "ES256" => Self::from_p256(p256::SecretKey::random(&mut rand_core::OsRng)),
            "ES384" => Self::from_p384(p384::SecretKey::random(&mut rand_core::OsRng)),
            "EdDSA" | "Ed25519" => {
                let mut seed = Zeroizing::new([0u8; 32]);
                SystemRandom::new()
                    .fill(seed.as_mut())
                    .map_err(|_| Error::new(ErrorKind::Internal, "the system random generator failed"))?;
                Self::from_ed25519_seed(seed)
            }
            other => err(
                ErrorKind::InvalidArgument,
                format!("unknown key algorithm '{}': use ES256, ES384, EdDSA (or Ed25519), RS256 or PS256", shorten(other)),
            ),
        }
    }

    /// A fresh RSA key of `bits` (2048 to 4096) that prefers `alg` (`RS256` or `PS256`).
    pub fn generate_rsa(bits: usize, alg: &str) -> Result<Self> {
        let alg = if alg == "PS256" { "PS256" } else { "RS256" };
        let mut key = Self::from_rsa(rsa::generate(bits)?)?;
        key.alg = alg;
        Ok(key)
    }

    fn from_rsa(parsed: rsa::Parsed) -> Result<Self> {
        let rsa::Parsed { der, pair, jwk } = parsed;
        Ok(Self::assemble(Secret::Rsa(der), Signer::Rsa(Wiped::new(pair)), "RS256", jwk))
    }

    fn from_pkcs1_der(der: &[u8]) -> Result<Self> {
        Self::from_rsa(rsa::from_pkcs1_der(Zeroizing::new(der.to_vec()))?)
    }

    fn from_p256(secret: p256::SecretKey) -> Result<Self> {
        Self::from_p256_and_point(secret, None)
    }

    fn from_p384(secret: p384::SecretKey) -> Result<Self> {
        Self::from_p384_and_point(secret, None)
    }

    /// A P-256 key from its scalar and, when the file carried it, its uncompressed public
    /// point. With the point, nothing here uses RustCrypto's (slow, generic) curve
    /// arithmetic: ring derives the public key with its fast code and refuses a point that
    /// does not belong to the scalar. Without it, the point is derived first.
    fn from_p256_and_point(secret: p256::SecretKey, point: Option<&[u8]>) -> Result<Self> {
        let derived = point.is_none().then(|| secret.public_key().to_encoded_point(false).as_bytes().to_vec());
        let scalar = Zeroizing::new(secret.to_bytes());
        let point = point.or(derived.as_deref()).unwrap_or_default();
        Self::from_ec(Secret::P256(secret), "ES256", "P-256", &ECDSA_P256_SHA256_FIXED_SIGNING, &scalar, point)
    }

    /// [`EcKey::from_p256_and_point`] for P-384.
    fn from_p384_and_point(secret: p384::SecretKey, point: Option<&[u8]>) -> Result<Self> {
        use p384::elliptic_curve::sec1::ToEncodedPoint as _;
        let derived = point.is_none().then(|| secret.public_key().to_encoded_point(false).as_bytes().to_vec());
        let scalar = Zeroizing::new(secret.to_bytes());
        let point = point.or(derived.as_deref()).unwrap_or_default();
        Self::from_ec(Secret::P384(secret), "ES384", "P-384", &ECDSA_P384_SHA384_FIXED_SIGNING, &scalar, point)
    }

    /// An EC key from a SEC1 `ECPrivateKey` (what PKCS#8 wraps too) on the curve `oid`:
    /// the scalar is taken as is (a range check, no curve arithmetic) and the public point
    /// the structure carries is used when it is uncompressed (see
    /// [`EcKey::from_p256_and_point`]).
    fn from_ec_private_key(oid: &str, parsed: &sec1::EcPrivateKey<'_>, bad: impl Fn() -> Error) -> Result<Self> {
        let point = parsed.public_key.filter(|p| p.first() == Some(&0x04));
        match oid {
            OID_P256 => {
                let secret = p256::SecretKey::from_slice(parsed.private_key).map_err(|_| bad())?;
                Self::from_p256_and_point(secret, point.filter(|p| p.len() == 65))
            }
            OID_P384 => {
                let secret = p384::SecretKey::from_slice(parsed.private_key).map_err(|_| bad())?;
                Self::from_p384_and_point(secret, point.filter(|p| p.len() == 97))
            }
            other => Err(describe_oid(other)),
        }
    }

    /// An EC key from its scalar and uncompressed public point (0x04 || x || y).
    fn from_ec(
        secret: Secret,
        alg: &'static str,
        crv: &str,
        signing: &'static EcdsaSigningAlgorithm,
        scalar: &[u8],
        point: &[u8],
    ) -> Result<Self> {
        let signer = ecdsa_pair(signing, scalar, point)?;
        let (x, y) = point[1..].split_at((point.len() - 1) / 2);
        // RFC 7638: the required members in lexicographic order, no whitespace.
        let jwk = format!(r#"{{"crv":"{crv}","kty":"EC","x":"{}","y":"{}"}}"#, URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y));
        Ok(Self::assemble(secret, signer, alg, jwk))
    }

    fn from_ed25519_seed(seed: Zeroizing<[u8; 32]>) -> Result<Self> {
        let pair = Ed25519KeyPair::from_seed_unchecked(seed.as_slice())
            .map_err(|_| Error::new(ErrorKind::KeyFormat, "the Ed25519 private key is not valid"))?;
        let x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
        let jwk = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
        Ok(Self::assemble(Secret::Ed25519(seed), Signer::Ed25519(Wiped::new(pair)), "EdDSA", jwk))
    }

    fn assemble(secret: Secret, signer: Signer, alg: &'static str, public_jwk: String) -> Self {
        let jkt = URL_SAFE_NO_PAD.encode(Sha256::digest(public_jwk.as_bytes()));
        let algs: &[&'static str] = match alg {
            "EdDSA" => &["EdDSA", "Ed25519"],
            "RS256" | "PS256" => &["RS256", "PS256"],
            _ => &[alg],
        };
        let proof_headers_b64 = algs
            .iter()
            .map(|a| (*a, URL_SAFE_NO_PAD.encode(format!(r#"{{"typ":"dpop+jwt","alg":"{a}","jwk":{public_jwk}}}"#).as_bytes())))
            .collect();
        EcKey { secret, signer, alg, public_jwk, jkt, proof_headers_b64 }
    }

    /// Reads a key file in any supported format (see [`EcKey::from_any_format`]).
    /// A path that is a `pkcs11:` URI opens that token key instead, `password` being its
    /// PIN (write `./pkcs11:...` for a file of that name).
    pub fn load_file(path: &Path, password: Option<&str>) -> Result<Self> {
        if let Some(uri) = path.to_str().filter(|p| pkcs11::is_uri(p)) {
            return Self::from_pkcs11_uri(uri, password);
        }
        pkcs11::refuse_misspelt_uri(&path.to_string_lossy())?;
        let data = fsread::read_regular_file(path, &fsread::KEY_FILE)?;
        Self::parse_file(path, &data, password)
    }

    /// [`EcKey::load_file`] through a process-wide cache of parsed keys, so that loading
    /// the same file again (as a program that makes a new key object per call does) costs
    /// an `open` and an `fstat` instead of a read and a parse.
    ///
    /// Entries are keyed by a salted hash of the file's content and of the password, and a
    /// rewritten file (a rotated key) is never served from the cache (see [`FileMemo`]). At
    /// most [`MAX_CACHED_FILE_KEYS`] keys are kept, least recently used out; each is wiped
    /// when its last user lets go ([`clear_file_cache`] empties the cache). Errors are not
    /// cached.
    /// A PKCS#11 URI is opened in its token, not cached here (the token registry shares it).
    pub fn load_file_shared(path: &Path, password: Option<&str>) -> Result<std::sync::Arc<Self>> {
        if let Some(uri) = path.to_str().filter(|p| pkcs11::is_uri(p)) {
            return Self::from_pkcs11_uri(uri, password).map(std::sync::Arc::new);
        }
        pkcs11::refuse_misspelt_uri(&path.to_string_lossy())?;
        let file = RegularFile::open(path, &fsread::KEY_FILE)?;
        let password = password.filter(|p| !p.is_empty());
        FILE_KEYS.load(file, password.unwrap_or("").as_bytes(), |data| Self::parse_file(path, data, password))
    }

    fn parse_file(path: &Path, data: &[u8], password: Option<&str>) -> Result<Self> {
        Self::from_any_format(data, password)
            .map_err(|e| Error::new(e.kind, format!("key file '{}': {}", shorten(&path.display().to_string()), e.message)))
    }

    /// Parses PEM (SEC1 `EC PRIVATE KEY`, PKCS#8 `PRIVATE KEY`, `ENCRYPTED PRIVATE KEY`),
    /// DER (SEC1, PKCS#8 or encrypted PKCS#8) or a JWK JSON object with `d`.
    /// `password` is used only for encrypted PKCS#8; an empty password counts as none.
    /// A `pkcs11:` URI (RFC 7512) opens a key in a PKCS#11 token, `password` being the PIN.
    pub fn from_any_format(data: &[u8], password: Option<&str>) -> Result<Self> {
        let password = password.filter(|p| !p.is_empty());
        let text = std::str::from_utf8(data).ok().map(|t| t.trim_start_matches('\u{feff}').trim());
        match text {
            Some(t) if pkcs11::is_uri(t) => Self::from_pkcs11_uri(t, password),
            Some(t) if t.starts_with('{') => Self::from_jwk(t),
            Some(t) if t.contains("-----BEGIN ") => Self::from_pem(t, password),
            _ => Self::from_der(data, password),
        }
    }

    /// Opens the key in a PKCS#11 token that `uri` (RFC 7512) names; `pin` is the user PIN
    /// (else `pin-value` / `pin-source` in the URI). See [`super::pkcs11`].
    pub fn from_pkcs11_uri(uri: &str, pin: Option<&str>) -> Result<Self> {
        Ok(Self::from_token_key(TokenKey::open(uri, pin)?))
    }

    /// Creates a non-extractable, sensitive key pair (`ES256` or `ES384`) in the PKCS#11
    /// token that `uri` names, labelled by its `object=` (and `id=`, else a random one).
    pub fn generate_in_token(uri: &str, pin: Option<&str>, alg: &str) -> Result<Self> {
        Ok(Self::from_token_key(TokenKey::generate(uri, pin, alg)?))
    }

    fn from_token_key(key: TokenKey) -> Self {
        let (jwk, alg) = match key.rsa_public() {
            Some((n, e)) => {
                (format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, URL_SAFE_NO_PAD.encode(e), URL_SAFE_NO_PAD.encode(n)), "RS256")
            }
            None => {
                let (x, y) = key.point()[1..].split_at((key.point().len() - 1) / 2);
                let crv = key.curve().crv();
                let jwk =
                    format!(r#"{{"crv":"{crv}","kty":"EC","x":"{}","y":"{}"}}"#, URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y));
                (jwk, key.curve().alg())
            }
        };
        Self::assemble(Secret::InToken, Signer::Token(Box::new(key)), alg, jwk)
    }

    /// Whether the key lives in a PKCS#11 token (signs there, cannot be exported).
    pub fn is_in_token(&self) -> bool {
        matches!(self.secret, Secret::InToken)
    }

    /// The token key behind this key, when it is one.
    pub fn token_key(&self) -> Option<&TokenKey> {
        match &self.signer {
            Signer::Token(t) => Some(t),
            _ => None,
        }
    }

    fn not_exportable(&self) -> Error {
        let uri = match &self.signer {
            Signer::Token(t) => t.shown().to_string(),
            _ => String::new(),
        };
        Error::new(
            ErrorKind::KeyUnsupported,
            format!(
                "the key '{uri}' lives in a PKCS#11 token and is not exportable: it signs inside the token. The public \
                 JWK and the thumbprint (jkt) are available"
            ),
        )
    }

    fn from_jwk(text: &str) -> Result<Self> {
        let mut v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| Error::new(ErrorKind::KeyFormat, format!("the JWK is not valid JSON: {e}")))?;
        let result = Self::from_parsed_jwk(&v);
        super::redact::wipe_json(&mut v);
        result
    }

    fn from_parsed_jwk(v: &serde_json::Value) -> Result<Self> {
        let field = |name: &str| v.get(name).and_then(|x| x.as_str());
        let kty = field("kty");
        if kty.is_some() && field("d").is_none() {
            return err(ErrorKind::KeyFormat, "the JWK holds only a public key (no \"d\" member); DPoP needs the private key");
        }
        let bad = |what: &str| Error::new(ErrorKind::KeyFormat, format!("the JWK's {what} are not a valid key"));
        match (kty, field("crv")) {
            (Some("EC"), Some(crv @ ("P-256" | "P-384"))) => {
                // x and y are the public point: ring checks them against d (no slow
                // derivation here); a JWK without them is refused as malformed.
                let n = if crv == "P-256" { 32 } else { 48 };
                let coord = |name: &str| {
                    URL_SAFE_NO_PAD.decode(field(name).unwrap_or_default()).ok().filter(|c| c.len() == n).ok_or_else(|| bad("x, y or d"))
                };
                let d = Zeroizing::new(coord("d")?);
                let mut point = vec![0x04];
                point.extend(coord("x")?);
                point.extend(coord("y")?);
                let oid = if crv == "P-256" { OID_P256 } else { OID_P384 };
                let parsed = sec1::EcPrivateKey { private_key: &d, parameters: None, public_key: Some(&point) };
                Self::from_ec_private_key(oid, &parsed, || bad("x, y or d"))
                    .map_err(|e| if e.kind == ErrorKind::KeyFormat { bad("x, y or d") } else { e })
            }
            (Some("OKP"), Some("Ed25519")) => {
                let d = Zeroizing::new(URL_SAFE_NO_PAD.decode(field("d").unwrap_or_default()).map_err(|_| bad("d"))?);
                let seed: [u8; 32] = d.as_slice().try_into().map_err(|_| bad("d"))?;
                let key = Self::from_ed25519_seed(Zeroizing::new(seed))?;
                if let Some(x) = field("x") {
                    if !key.public_jwk.contains(&format!("\"x\":\"{x}\"")) {
                        return Err(bad("x and d (x is not the public key of d)"));
                    }
                }
                Ok(key)
            }
            (Some("EC"), Some(crv)) => Err(unsupported(&format!("an EC key on curve {}", shorten(crv)))),
            (Some("RSA"), _) => {
                // RFC 7517 §4.4: a JWK's "alg" names the algorithm the key is meant for; an
                // RSA key with "alg": "PS256" prefers PS256 (else RS256).
                let mut key = Self::from_rsa(rsa::from_jwk(v)?)?;
                if field("alg") == Some("PS256") {
                    key.alg = "PS256";
                }
                Ok(key)
            }
            (Some("OKP"), Some(crv)) => Err(unsupported(&format!("an {} key", shorten(crv)))),
            (Some(kty), _) => Err(unsupported(&format!("a JWK of type {}", shorten(kty)))),
            (None, _) => err(ErrorKind::KeyFormat, "the JWK has no \"kty\" member"),
        }
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
                "EC PRIVATE KEY" | "RSA PRIVATE KEY" | "PRIVATE KEY" | "ENCRYPTED PRIVATE KEY" => {
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
                        "RSA PRIVATE KEY" => Self::from_pkcs1_der(&der),
                        "PRIVATE KEY" => Self::from_pkcs8_der(&der),
                        _ => Self::from_encrypted_pkcs8_der(&der, password),
                    };
                }
                "OPENSSH PRIVATE KEY" => {
                    return err(ErrorKind::KeyFormat, "OpenSSH key files are not supported; convert with: ssh-keygen -p -m PKCS8 -f FILE");
                }
                other => labels.push(other.to_string()),
            }
        }
        if labels.is_empty() {
            err(ErrorKind::KeyFormat, "no complete PEM block found")
        } else {
            err(ErrorKind::KeyFormat, format!("the PEM data holds no private key (found: {})", labels.join(", ")))
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
        if <::rsa::pkcs1::RsaPrivateKey as ::rsa::pkcs1::der::Decode>::from_der(der).is_ok() {
            return Self::from_pkcs1_der(der);
        }
        if pkcs8::EncryptedPrivateKeyInfo::try_from(der).is_ok() {
            return Self::from_encrypted_pkcs8_der(der, password);
        }
        err(ErrorKind::KeyFormat, "unrecognised key format: expected PEM (SEC1, PKCS#1, PKCS#8, encrypted PKCS#8), DER or a JWK")
    }

    fn from_sec1_der(der: &[u8]) -> Result<Self> {
        let parsed =
            sec1::EcPrivateKey::try_from(der).map_err(|e| Error::new(ErrorKind::KeyFormat, format!("invalid SEC1 EC private key: {e}")))?;
        let curve = match parsed.parameters.and_then(|p| p.named_curve()).map(|o| o.to_string()) {
            Some(oid) => oid,
            // No parameters: the scalar's length tells the curve.
            None if parsed.private_key.len() == 48 => OID_P384.to_string(),
            None => OID_P256.to_string(),
        };
        Self::from_ec_private_key(&curve, &parsed, || Error::new(ErrorKind::KeyFormat, "invalid SEC1 EC private key"))
    }

    fn from_pkcs8_der(der: &[u8]) -> Result<Self> {
        let info = pkcs8::PrivateKeyInfo::try_from(der)
            .map_err(|e| Error::new(ErrorKind::KeyFormat, format!("invalid PKCS#8 private key: {e}")))?;
        let bad = || Error::new(ErrorKind::KeyFormat, "invalid PKCS#8 private key");
        match info.algorithm.oid.to_string().as_str() {
            OID_EC_PUBLIC_KEY => {
                let curve = info.algorithm.parameters_oid().map(|o| o.to_string()).unwrap_or_default();
                if !matches!(curve.as_str(), OID_P256 | OID_P384) {
                    return Err(describe_oid(&curve));
                }
                let inner = sec1::EcPrivateKey::try_from(info.private_key).map_err(|_| bad())?;
                if inner.parameters.and_then(|p| p.named_curve()).is_some_and(|o| o.to_string() != curve) {
                    return Err(bad()); // the inner curve contradicts the outer one
                }
                Self::from_ec_private_key(&curve, &inner, bad)
            }
            OID_ED25519 => {
                // RFC 8410: privateKey is an OCTET STRING holding the 32-byte seed.
                let inner = info.private_key;
                if inner.len() != 34 || inner[0] != 0x04 || inner[1] != 0x20 {
                    return Err(bad());
                }
                let seed: [u8; 32] = inner[2..].try_into().map_err(|_| bad())?;
                Self::from_ed25519_seed(Zeroizing::new(seed))
            }
            OID_RSA => Self::from_pkcs1_der(info.private_key),
            other => Err(describe_oid(other)),
        }
    }

    fn from_encrypted_pkcs8_der(der: &[u8], password: Option<&str>) -> Result<Self> {
        let Some(password) = password else {
            return err(ErrorKind::KeyFormat, "the key is encrypted (PKCS#8) and no password was given");
        };
        let info = pkcs8::EncryptedPrivateKeyInfo::try_from(der)
            .map_err(|e| Error::new(ErrorKind::KeyFormat, format!("invalid encrypted PKCS#8 key: {e}")))?;
        check_kdf_cost(&info.encryption_algorithm)?;
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
        let failed = |e: &dyn fmt::Display| Error::new(ErrorKind::Internal, format!("PKCS#8 encoding failed: {e}"));
        match &self.secret {
            Secret::P256(k) => k.to_pkcs8_pem(LineEnding::LF).map_err(|e| failed(&e)),
            Secret::P384(k) => k.to_pkcs8_pem(LineEnding::LF).map_err(|e| failed(&e)),
            Secret::Rsa(der) => rsa::to_pkcs8_der(der)?.to_pem("PRIVATE KEY", LineEnding::LF).map_err(|e| failed(&e)),
            Secret::InToken => Err(self.not_exportable()),
            Secret::Ed25519(seed) => {
                // RFC 8410 §7: the fixed PKCS#8 v1 prefix for Ed25519, then the seed.
                const PREFIX: [u8; 16] = [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
                let mut der = Zeroizing::new(PREFIX.to_vec());
                der.extend_from_slice(seed.as_slice());
                let doc = pkcs8::SecretDocument::try_from(der.as_slice()).map_err(|e| failed(&e))?;
                doc.to_pem("PRIVATE KEY", LineEnding::LF).map_err(|e| failed(&e))
            }
        }
    }

    /// The private key as a JWK (`kty`, `crv`, `x`, `y` or `x`, `d`; for RSA `n`, `e`, `d`,
    /// `p`, `q`, `dp`, `dq`, `qi`). Fails for a key in a PKCS#11 token, which is not
    /// exportable.
    pub fn to_private_jwk(&self) -> Result<Zeroizing<String>> {
        Ok(match &self.secret {
            Secret::P256(k) => k.to_jwk_string(),
            Secret::P384(k) => k.to_jwk_string(),
            Secret::Rsa(der) => rsa::to_private_jwk(der, self.alg)?,
            Secret::InToken => return Err(self.not_exportable()),
            Secret::Ed25519(seed) => {
                let x = self.public_jwk.split("\"x\":\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or("");
                let d = Zeroizing::new(URL_SAFE_NO_PAD.encode(seed.as_slice()));
                Zeroizing::new(format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{x}","d":"{}"}}"#, d.as_str()))
            }
        })
    }

    /// The public key as a JWK with only the RFC 7638 members.
    pub fn public_jwk(&self) -> &str {
        &self.public_jwk
    }

    /// RFC 7638 SHA-256 thumbprint of the public JWK, base64url (the `jkt`).
    pub fn jkt(&self) -> &str {
        &self.jkt
    }

    /// The preferred JWS algorithm of the key: `ES256`, `ES384`, `EdDSA`, `RS256` or
    /// `PS256` (what it signs with when the server does not say; see [`EcKey::algs`]).
    pub fn alg(&self) -> &'static str {
        self.alg
    }

    /// The modulus size of an RSA key in bits (`None` for other keys and token keys).
    pub fn rsa_bits(&self) -> Option<usize> {
        match &self.secret {
            Secret::Rsa(der) => Some(rsa::modulus_bits(der)),
            _ => None,
        }
    }

    /// The DPoP proof's JOSE header for `alg`, base64url; `None` when the key does not
    /// sign `alg`.
    pub(crate) fn proof_header_b64_for(&self, alg: &str) -> Option<&str> {
        self.proof_headers_b64.iter().find(|(a, _)| *a == alg).map(|(_, h)| h.as_str())
    }

    /// A JWS signature with the preferred algorithm (see [`EcKey::sign_alg`]).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        self.sign_alg(self.alg, message)
    }

    /// A JWS signature with `alg`: r || s for ECDSA (64 or 96 bytes, never DER), 64 bytes
    /// for EdDSA, the modulus length for RS256 / PS256. `alg` must be one of
    /// [`EcKey::algs`].
    pub fn sign_alg(&self, alg: &str, message: &[u8]) -> Result<Vec<u8>> {
        if !self.can_sign(alg) {
            return err(ErrorKind::Internal, format!("a {} key cannot sign {}", self.alg, shorten(alg)));
        }
        match &self.signer {
            Signer::Rsa(pair) => rsa::sign(pair, alg, message),
            Signer::Ecdsa(pair) => pair
                .sign(&SystemRandom::new(), message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| Error::new(ErrorKind::Internal, "ECDSA signing failed")),
            Signer::Ed25519(pair) => Ok(pair.sign(message).as_ref().to_vec()),
            Signer::Token(key) => key.sign_alg(alg, message),
        }
    }

    /// [`EcKey::sign`] for a call that ends at `deadline`: a key in a PKCS#11 token is asked
    /// on a worker thread and the call gets TIMEOUT at the deadline, however long the token
    /// takes (see [`TokenKey::sign_within`]); other keys sign here, in microseconds.
    pub fn sign_within(&self, message: &[u8], deadline: Option<super::http::Deadline>) -> Result<Vec<u8>> {
        self.sign_alg_within(self.alg, message, deadline)
    }

    /// [`EcKey::sign_within`] with `alg` (one of [`EcKey::algs`]).
    pub fn sign_alg_within(&self, alg: &str, message: &[u8], deadline: Option<super::http::Deadline>) -> Result<Vec<u8>> {
        match &self.signer {
            Signer::Token(key) if self.can_sign(alg) => key.sign_alg_within(alg, message, deadline),
            _ => self.sign_alg(alg, message),
        }
    }

    /// The raw public key (SEC1 uncompressed point, the 32 Ed25519 bytes, or for RSA the
    /// PKCS#1 `RSAPublicKey` DER), for verification in tests.
    pub fn public_point(&self) -> &[u8] {
        match &self.signer {
            Signer::Ecdsa(pair) => pair.public_key().as_ref(),
            Signer::Rsa(pair) => pair.public().as_ref(),
            Signer::Ed25519(pair) => pair.public_key().as_ref(),
            Signer::Token(key) => key.point(),
        }
    }
}

#[cfg(test)]
mod tests;

//! RSA keys (RS256, PS256): 2048 to 4096 bits, two primes.
//!
//! Every format ends as a PKCS#1 `RSAPrivateKey` DER, which `ring` parses and signs with
//! (RSASSA-PKCS1-v1_5 or RSASSA-PSS with SHA-256). `ring` cannot generate RSA keys, read
//! their components back or write them out, so the `rsa` crate generates them and its
//! `pkcs1` crate reads and writes the DER structure (no arithmetic); nothing here signs
//! with `rsa`.

use ::rsa::pkcs1::der::{Decode, Encode};
use ::rsa::pkcs1::{self, UintRef};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RSA_PSS_SHA256, RsaKeyPair};
use zeroize::Zeroizing;

use crate::core::error::{Error, ErrorKind, Result, err};

/// The modulus sizes dpopkit signs with: RFC 7518 §3.3 asks for 2048 bits at least; ring
/// signs up to 4096.
pub const MIN_BITS: usize = 2048;
pub const MAX_BITS: usize = 4096;
/// The size `dpopkit_key_generate_alg(key, "RS256" / "PS256")` and `keygen` make.
pub const DEFAULT_BITS: usize = 2048;

/// The algorithms an RSA key signs, named as in JWS.
pub const RSA_ALGS: &[&str] = &["RS256", "PS256"];

const HOW_TO_MAKE: &str = "generate one with: dpopkit keygen --alg PS256 (or RS256), or \
     openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048";

fn bad(what: &str) -> Error {
    Error::new(ErrorKind::KeyFormat, format!("the RSA private key is not valid: {what}"))
}

/// The number of bits of a big-endian unsigned integer.
fn bit_len(bytes: &[u8]) -> usize {
    let trimmed: &[u8] = match bytes.iter().position(|b| *b != 0) {
        Some(i) => &bytes[i..],
        None => &[],
    };
    trimmed.first().map_or(0, |b| trimmed.len() * 8 - b.leading_zeros() as usize)
}

/// A parsed RSA key: its PKCS#1 DER (kept for export), ring's key pair and the public JWK
/// (RFC 7638 members `e`, `kty`, `n`, in that order).
pub(super) struct Parsed {
    pub der: Zeroizing<Vec<u8>>,
    pub pair: RsaKeyPair,
    pub jwk: String,
}

/// An RSA key from its PKCS#1 `RSAPrivateKey` DER (what PKCS#8 wraps too).
pub(super) fn from_pkcs1_der(der: Zeroizing<Vec<u8>>) -> Result<Parsed> {
    let key = pkcs1::RsaPrivateKey::from_der(&der).map_err(|e| bad(&format!("invalid PKCS#1 structure ({e})")))?;
    if key.other_prime_infos.is_some() {
        return err(
            ErrorKind::KeyUnsupported,
            format!("the RSA key has more than two primes, which dpopkit does not sign with; {HOW_TO_MAKE}"),
        );
    }
    check_bits(bit_len(key.modulus.as_bytes()))?;
    let jwk = format!(
        r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(key.public_exponent.as_bytes()),
        URL_SAFE_NO_PAD.encode(key.modulus.as_bytes())
    );
    let pair = RsaKeyPair::from_der(&der).map_err(|e| bad(&e.to_string()))?;
    Ok(Parsed { der, pair, jwk })
}

/// Refuses a modulus outside 2048 to 4096 bits, with a text that names the fix.
pub fn check_bits(bits: usize) -> Result<()> {
    if bits < MIN_BITS {
        return err(
            ErrorKind::KeyUnsupported,
            format!(
                "the RSA key has {bits} bits, too few: RS256 and PS256 DPoP proofs need an RSA key of {MIN_BITS} to \
                 {MAX_BITS} bits (RFC 7518 §3.3); {HOW_TO_MAKE}"
            ),
        );
    }
    if bits > MAX_BITS {
        return err(
            ErrorKind::KeyUnsupported,
            format!("the RSA key has {bits} bits: dpopkit signs with RSA keys of {MIN_BITS} to {MAX_BITS} bits; {HOW_TO_MAKE}"),
        );
    }
    Ok(())
}

/// An RSA key from the members of a private JWK (`n`, `e`, `d`, `p`, `q`, `dp`, `dq`,
/// `qi`, RFC 7518 §6.3), re-encoded as PKCS#1 DER.
pub(super) fn from_jwk(v: &serde_json::Value) -> Result<Parsed> {
    let names = ["n", "e", "d", "p", "q", "dp", "dq", "qi"];
    let mut parts: Vec<Zeroizing<Vec<u8>>> = Vec::with_capacity(names.len());
    for name in names {
        let text = v.get(name).and_then(|x| x.as_str()).ok_or_else(|| {
            let fix = if name == "d" { " (a public JWK: DPoP needs the private key)" } else { "" };
            Error::new(ErrorKind::KeyFormat, format!("the RSA JWK has no \"{name}\" member{fix}; it needs n, e, d, p, q, dp, dq and qi"))
        })?;
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| bad(&format!("\"{name}\" is not base64url")))?;
        parts.push(Zeroizing::new(bytes));
    }
    if v.get("oth").is_some() {
        return err(ErrorKind::KeyUnsupported, format!("the RSA JWK has more than two primes (\"oth\"); {HOW_TO_MAKE}"));
    }
    let uint = |i: usize| UintRef::new(&parts[i]).map_err(|_| bad(&format!("\"{}\" is not a number", names[i])));
    let key = pkcs1::RsaPrivateKey {
        modulus: uint(0)?,
        public_exponent: uint(1)?,
        private_exponent: uint(2)?,
        prime1: uint(3)?,
        prime2: uint(4)?,
        exponent1: uint(5)?,
        exponent2: uint(6)?,
        coefficient: uint(7)?,
        other_prime_infos: None,
    };
    let der = Zeroizing::new(key.to_der().map_err(|e| bad(&e.to_string()))?);
    let parsed = from_pkcs1_der(der)?;
    Ok(parsed)
}

/// A fresh key of `bits` bits (public exponent 65537) from the operating system's CSPRNG.
pub(super) fn generate(bits: usize) -> Result<Parsed> {
    use ::rsa::pkcs1::EncodeRsaPrivateKey;
    check_bits(bits)?;
    let key = ::rsa::RsaPrivateKey::new(&mut rand_core::OsRng, bits)
        .map_err(|e| Error::new(ErrorKind::Internal, format!("RSA key generation failed: {e}")))?;
    let doc = key.to_pkcs1_der().map_err(|e| Error::new(ErrorKind::Internal, format!("PKCS#1 encoding failed: {e}")))?;
    from_pkcs1_der(Zeroizing::new(doc.as_bytes().to_vec()))
}

/// The PKCS#8 `PrivateKeyInfo` (rsaEncryption, NULL parameters) around a PKCS#1 key.
pub(super) fn to_pkcs8_der(pkcs1_der: &[u8]) -> Result<pkcs8::SecretDocument> {
    let failed = |e: &dyn std::fmt::Display| Error::new(ErrorKind::Internal, format!("PKCS#8 encoding failed: {e}"));
    let info = pkcs8::PrivateKeyInfo {
        algorithm: pkcs8::AlgorithmIdentifierRef { oid: pkcs1::ALGORITHM_OID, parameters: Some(pkcs8::der::asn1::AnyRef::NULL) },
        private_key: pkcs1_der,
        public_key: None,
    };
    pkcs8::SecretDocument::encode_msg(&info).map_err(|e| failed(&e))
}

/// The private JWK (RFC 7518 §6.3) of a PKCS#1 key, with `"alg": "PS256"` for a key that
/// prefers PS256 (so that the preference survives an export and a reload).
pub(super) fn to_private_jwk(pkcs1_der: &[u8], preferred: &str) -> Result<Zeroizing<String>> {
    let key = pkcs1::RsaPrivateKey::from_der(pkcs1_der).map_err(|e| bad(&e.to_string()))?;
    let b64 = |u: UintRef<'_>| Zeroizing::new(URL_SAFE_NO_PAD.encode(u.as_bytes()));
    let members = [
        ("n", b64(key.modulus)),
        ("e", b64(key.public_exponent)),
        ("d", b64(key.private_exponent)),
        ("p", b64(key.prime1)),
        ("q", b64(key.prime2)),
        ("dp", b64(key.exponent1)),
        ("dq", b64(key.exponent2)),
        ("qi", b64(key.coefficient)),
    ];
    let mut out = Zeroizing::new(String::from(if preferred == "PS256" { r#"{"kty":"RSA","alg":"PS256""# } else { r#"{"kty":"RSA""# }));
    for (name, value) in &members {
        out.push_str(&format!(r#","{name}":"{}""#, value.as_str()));
    }
    out.push('}');
    Ok(out)
}

/// The modulus size of a parsed key, in bits.
pub(super) fn modulus_bits(pkcs1_der: &[u8]) -> usize {
    pkcs1::RsaPrivateKey::from_der(pkcs1_der).map_or(0, |k| bit_len(k.modulus.as_bytes()))
}

/// A JWS signature with `alg` (`RS256`: RSASSA-PKCS1-v1_5, `PS256`: RSASSA-PSS, both
/// SHA-256), as long as the modulus.
pub(super) fn sign(pair: &RsaKeyPair, alg: &str, message: &[u8]) -> Result<Vec<u8>> {
    let padding: &'static dyn ring::signature::RsaEncoding = if alg == "PS256" { &RSA_PSS_SHA256 } else { &RSA_PKCS1_SHA256 };
    let mut sig = vec![0u8; pair.public().modulus_len()];
    pair.sign(padding, &SystemRandom::new(), message, &mut sig).map_err(|_| Error::new(ErrorKind::Internal, "RSA signing failed"))?;
    Ok(sig)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_lengths() {
        assert_eq!(bit_len(&[0, 0x80, 0]), 16);
        assert_eq!(bit_len(&[0x01]), 1);
        assert_eq!(bit_len(&[]), 0);
        assert!(check_bits(1024).unwrap_err().message.contains("dpopkit keygen --alg PS256"));
        assert!(check_bits(8192).is_err());
        assert!(check_bits(2048).is_ok() && check_bits(4096).is_ok() && check_bits(3072).is_ok());
    }
}

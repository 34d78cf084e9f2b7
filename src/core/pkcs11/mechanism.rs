//! The signing mechanisms of token keys (CKM_ECDSA, CKM_SHA256_RSA_PKCS,
//! CKM_SHA256_RSA_PKCS_PSS) and the public half of an RSA token key.

use super::*;

/// RSA moduli a token key may have (RFC 7518 §3.3 asks for 2048 bits at least).
pub(super) const RSA_BITS: std::ops::RangeInclusive<usize> = 2048..=4096;

/// The signing mechanism for a JWS `alg` of a token key.
#[derive(Debug, Clone, Copy)]
pub(super) enum Mech {
    Ecdsa,
    Sha256RsaPkcs,
    Sha256RsaPss,
}

impl Mech {
    pub(super) fn for_alg(kind: TokenKind, alg: &str) -> Self {
        match (kind, alg) {
            (TokenKind::Ec(_), _) => Mech::Ecdsa,
            (TokenKind::Rsa, "PS256") => Mech::Sha256RsaPss,
            (TokenKind::Rsa, _) => Mech::Sha256RsaPkcs,
        }
    }
    pub(super) fn mechanism(self) -> Mechanism<'static> {
        match self {
            Mech::Ecdsa => Mechanism::Ecdsa,
            Mech::Sha256RsaPkcs => Mechanism::Sha256RsaPkcs,
            Mech::Sha256RsaPss => Mechanism::Sha256RsaPkcsPss(cryptoki::mechanism::rsa::PkcsPssParams {
                hash_alg: cryptoki::mechanism::MechanismType::SHA256,
                mgf: cryptoki::mechanism::rsa::PkcsMgfType::MGF1_SHA256,
                s_len: 32.into(),
            }),
        }
    }
    pub(super) fn name(self) -> &'static str {
        match self {
            Mech::Ecdsa => "CKM_ECDSA",
            Mech::Sha256RsaPkcs => "CKM_SHA256_RSA_PKCS",
            Mech::Sha256RsaPss => "CKM_SHA256_RSA_PKCS_PSS",
        }
    }
}

/// The modulus and public exponent of the RSA private key `handle`: from the key itself
/// (PKCS#11 gives them on private RSA keys), else from the public key with its CKA_ID or
/// label. A modulus outside 2048 to 4096 bits is refused.
pub(super) fn rsa_public(
    token: &Token,
    session: &Session,
    handle: ObjectHandle,
    (id, label): (&Option<Vec<u8>>, &Option<Vec<u8>>),
    shown: &str,
) -> Result<(Vec<u8>, Vec<u8>)> {
    let read = |obj: ObjectHandle| -> Option<(Vec<u8>, Vec<u8>)> {
        let attrs = session.get_attributes(obj, &[AttributeType::Modulus, AttributeType::PublicExponent]).ok()?;
        let (mut n, mut e) = (None, None);
        for a in attrs {
            match a {
                Attribute::Modulus(m) if !m.is_empty() => n = Some(m),
                Attribute::PublicExponent(x) if !x.is_empty() => e = Some(x),
                _ => {}
            }
        }
        Some((n?, e?))
    };
    let mut found = read(handle);
    if found.is_none() {
        let mut t = vec![Attribute::Class(ObjectClass::PUBLIC_KEY)];
        match (id, label) {
            (Some(i), _) if !i.is_empty() => t.push(Attribute::Id(i.clone())),
            (_, Some(l)) => t.push(Attribute::Label(l.clone())),
            _ => {}
        }
        let publics = session.find_objects(&t).map_err(|e| token.fail("cannot search for the public key", &e))?;
        found = publics.into_iter().find_map(read);
    }
    let Some((n, e)) = found else {
        return err(
            ErrorKind::KeyFormat,
            format!(
                "{}: neither the RSA key '{shown}' nor a public key with its CKA_ID gives CKA_MODULUS and CKA_PUBLIC_EXPONENT",
                token.name
            ),
        );
    };
    let strip = |v: Vec<u8>| v.iter().position(|b| *b != 0).map_or(Vec::new(), |i| v[i..].to_vec());
    let (n, e) = (strip(n), strip(e));
    let bits = n.first().map_or(0, |b| n.len() * 8 - b.leading_zeros() as usize);
    if !RSA_BITS.contains(&bits) {
        return err(
            ErrorKind::KeyUnsupported,
            format!(
                "the token key '{shown}' is an RSA key of {bits} bits: RS256 and PS256 DPoP proofs need 2048 to 4096 \
                 bits (RFC 7518 §3.3); create one with: dpopkit keygen --alg PS256 --pkcs11 'URI'"
            ),
        );
    }
    Ok((n, e))
}

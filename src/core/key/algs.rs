//! Which JWS algorithm a key signs with for a given server.
//!
//! An EC key signs one algorithm (ES256 or ES384). An Ed25519 key signs the same proof
//! under two names: `Ed25519` (RFC 9864) when the server lists it, `EdDSA` otherwise. An
//! RSA key signs RS256 or PS256: its preferred one (the one it was generated for, RS256
//! for a loaded key) unless the server lists only the other.

use super::EcKey;
use crate::core::error::{Error, ErrorKind};

/// What a key is, for texts and for the choice of algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    P256,
    P384,
    Ed25519,
    Rsa,
}

/// The algorithms dpopkit can generate a key for, in the order a fix suggests them.
const GENERATABLE: &[&str] = &["ES256", "PS256", "RS256", "Ed25519", "EdDSA", "ES384"];

/// The canonical algorithm name for what a caller passes: `Ed25519` and `EdDSA` name the
/// same key; `None` for a name dpopkit does not sign with.
pub fn canonical_alg(alg: &str) -> Option<&'static str> {
    Some(match alg {
        "ES256" => "ES256",
        "ES384" => "ES384",
        "EdDSA" | "Ed25519" => "EdDSA",
        "RS256" => "RS256",
        "PS256" => "PS256",
        _ => return None,
    })
}

impl EcKey {
    /// What the key is: EC P-256, EC P-384, Ed25519 or RSA (in a token or not).
    pub fn kind(&self) -> KeyKind {
        match self.alg {
            "ES256" => KeyKind::P256,
            "ES384" => KeyKind::P384,
            "EdDSA" => KeyKind::Ed25519,
            _ => KeyKind::Rsa,
        }
    }

    /// Every JWS `alg` this key can sign, its preferred one ([`EcKey::alg`]) first.
    pub fn algs(&self) -> &'static [&'static str] {
        match (self.kind(), self.alg) {
            (KeyKind::P256, _) => &["ES256"],
            (KeyKind::P384, _) => &["ES384"],
            (KeyKind::Ed25519, _) => &["EdDSA", "Ed25519"],
            (KeyKind::Rsa, "PS256") => &["PS256", "RS256"],
            (KeyKind::Rsa, _) => &["RS256", "PS256"],
        }
    }

    /// Whether the key signs `alg` (`Ed25519` and `EdDSA` both for an Ed25519 key).
    pub fn can_sign(&self, alg: &str) -> bool {
        self.algs().contains(&alg)
    }

    /// The algorithm to sign with for a server that offers `offered` (`None`: it did not
    /// say, the key's preferred one). `None` when the server takes none the key signs.
    pub fn choose_alg(&self, offered: Option<&[String]>) -> Option<&'static str> {
        let Some(offered) = offered else { return Some(self.alg) };
        let listed = |a: &str| offered.iter().any(|o| o == a);
        if self.kind() == KeyKind::Ed25519 {
            // RFC 9864: the fully specified name wins when the server knows it.
            return ["Ed25519", "EdDSA"].into_iter().find(|a| listed(a));
        }
        self.algs().iter().copied().find(|a| listed(a))
    }

    /// "an RSA key (RS256 or PS256)", for texts.
    pub fn describe(&self) -> String {
        let what = match self.kind() {
            KeyKind::P256 => "an EC P-256 key (ES256)",
            KeyKind::P384 => "an EC P-384 key (ES384)",
            KeyKind::Ed25519 => "an Ed25519 key (EdDSA / Ed25519)",
            KeyKind::Rsa => "an RSA key (RS256 or PS256)",
        };
        if self.is_in_token() { format!("{what} in a PKCS#11 token") } else { what.to_string() }
    }

    /// The error for a server (`who`) that accepts only `offered` (as its `source` says:
    /// metadata member or challenge) for `purpose` ("DPoP proofs", "client assertions"):
    /// names what it accepts and which key to make.
    pub fn alg_refusal(&self, who: &str, offered: &[String], source: &str, purpose: &str) -> Error {
        let fix = match GENERATABLE.iter().find(|a| offered.iter().any(|o| o == *a)) {
            Some(a) => format!(
                "load or generate a key for one of those algorithms, e.g. `dpopkit keygen --alg {a} --out dpop.pem` or \
                 dpopkit_key_generate_alg(key, \"{a}\")"
            ),
            None => "dpopkit signs with ES256, ES384, EdDSA / Ed25519, RS256 and PS256 only, none of which that server \
                     lists: ask its operator to enable one"
                .to_string(),
        };
        let listed = if offered.is_empty() { "no algorithm".to_string() } else { offered.join(", ") };
        let kind = if purpose == "DPoP proofs" { ErrorKind::DpopProof } else { ErrorKind::KeyUnsupported };
        Error::new(
            kind,
            format!(
                "{who} accepts {purpose} signed with {} only ({source}), but the key is {}: {fix}",
                crate::core::error::shorten(&listed),
                self.describe()
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_server_picks_among_what_the_key_signs() {
        let ed = EcKey::generate_alg("Ed25519").unwrap();
        assert_eq!(ed.alg(), "EdDSA");
        assert_eq!(ed.choose_alg(None), Some("EdDSA"));
        assert_eq!(ed.choose_alg(Some(&list(&["EdDSA"]))), Some("EdDSA"));
        assert_eq!(ed.choose_alg(Some(&list(&["Ed25519"]))), Some("Ed25519"));
        assert_eq!(ed.choose_alg(Some(&list(&["EdDSA", "Ed25519"]))), Some("Ed25519"));
        assert_eq!(ed.choose_alg(Some(&list(&["ES256"]))), None);
        let ec = EcKey::generate().unwrap();
        assert_eq!(ec.choose_alg(Some(&list(&["PS256", "ES256"]))), Some("ES256"));
        let e = ec.alg_refusal("the authorization server X", &list(&["PS256"]), "dpop_signing_alg_values_supported", "DPoP proofs");
        assert!(e.message.contains("PS256 only") && e.message.contains("--alg PS256") && e.message.contains("EC P-256"), "{e}");
        assert_eq!(canonical_alg("Ed25519"), Some("EdDSA"));
        assert_eq!(canonical_alg("HS256"), None);
    }
}

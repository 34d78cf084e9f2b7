//! DPoP nonces (RFC 9449 §8, §9), remembered per server origin, role and key, process-wide,
//! so that a new Http object (as a SQL Server procedure makes on every call) does not pay a
//! `use_dpop_nonce` round trip that an earlier object already paid.
//!
//! The role matters: an authorization server and a resource server on one origin (one
//! host and port, different paths) hand out nonces independently (RFC 9449 §8 and §9 are
//! separate mechanisms), and one must not overwrite the other's.

use std::sync::LazyLock;

use crate::core::state::{BoundedLru, never_in_use};

/// Which server gave the nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The token endpoint (RFC 9449 §8).
    AuthorizationServer,
    /// A protected resource (RFC 9449 §9).
    ResourceServer,
}

/// Bounds on remembered (origin, role, key) nonces: least recently used go first.
const MAX_ENTRIES: usize = crate::core::state::limits::NONCE_ENTRIES;
const MAX_BYTES: usize = crate::core::state::limits::NONCE_BYTES;
/// Longest nonce remembered.
const MAX_NONCE: usize = crate::core::state::limits::NONCE_LENGTH;

type Key = (String, Role, String);

static NONCES: LazyLock<BoundedLru<Key, String>> =
    LazyLock::new(|| BoundedLru::new(MAX_ENTRIES, MAX_BYTES, |k, v| k.0.len() + k.2.len() + v.len() + 64, never_in_use));

fn key(origin: &str, role: Role, jkt: &str) -> Key {
    (origin.to_string(), role, jkt.to_string())
}

/// The nonce last given by `origin` in `role` to the key `jkt`, if any.
pub fn get(origin: &str, role: Role, jkt: &str) -> Option<String> {
    if NONCES.is_empty() {
        return None; // servers that use no nonces: no key to build per proof
    }
    NONCES.get(&key(origin, role, jkt))
}

/// Remembers a nonce from a `DPoP-Nonce` header (any status, a 200's included).
pub fn set(origin: &str, role: Role, jkt: &str, nonce: &str) {
    if nonce.is_empty() || nonce.len() > MAX_NONCE || !is_nqchar(nonce) {
        return;
    }
    let key = key(origin, role, jkt);
    if NONCES.with(&key, |n| n == nonce) == Some(true) {
        return; // the usual case: no write lock on the hot path
    }
    NONCES.insert(key, nonce.to_string());
}

/// Forgets every nonce.
pub fn clear() {
    NONCES.clear();
}

/// RFC 9449 §8.1: `nonce = 1*NQCHAR`, NQCHAR = %x21 / %x23-5B / %x5D-7E.
fn is_nqchar(s: &str) -> bool {
    s.bytes().all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::Role::{AuthorizationServer as As, ResourceServer as Rs};

    #[test]
    fn per_origin_role_and_key() {
        super::set("http://a:1", Rs, "k1", "n-a");
        super::set("http://b:2", Rs, "k1", "n-b");
        assert_eq!(super::get("http://a:1", Rs, "k1").as_deref(), Some("n-a"));
        assert_eq!(super::get("http://b:2", Rs, "k1").as_deref(), Some("n-b"));
        assert_eq!(super::get("http://a:1", Rs, "k2"), None);
        super::set("http://a:1", Rs, "k1", "n-a2");
        assert_eq!(super::get("http://a:1", Rs, "k1").as_deref(), Some("n-a2"));
        super::set("http://a:1", Rs, "k1", "bad\"nonce");
        assert_eq!(super::get("http://a:1", Rs, "k1").as_deref(), Some("n-a2"));
        // The AS on the same origin has its own slot.
        assert_eq!(super::get("http://a:1", As, "k1"), None);
        super::set("http://a:1", As, "k1", "n-as");
        assert_eq!(super::get("http://a:1", As, "k1").as_deref(), Some("n-as"));
        assert_eq!(super::get("http://a:1", Rs, "k1").as_deref(), Some("n-a2"));
    }
}

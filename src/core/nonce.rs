//! DPoP nonces (RFC 9449 §8, §9), remembered per server origin and key, process-wide, so
//! that a new Http object (as a SQL Server procedure makes on every call) does not pay a
//! `use_dpop_nonce` round trip that an earlier object already paid.

use std::collections::HashMap;
use std::sync::{LazyLock, RwLock};

/// Bound on remembered (origin, key) pairs; past it the cache starts over.
const MAX_ENTRIES: usize = 4096;

static NONCES: LazyLock<RwLock<HashMap<(String, String), String>>> = LazyLock::new(Default::default);

/// The nonce last given by `origin` to the key `jkt`, if any.
pub fn get(origin: &str, jkt: &str) -> Option<String> {
    let map = NONCES.read().unwrap_or_else(|e| e.into_inner());
    map.get(&(origin.to_string(), jkt.to_string())).cloned()
}

/// Remembers a nonce from a `DPoP-Nonce` header (any status, a 200's included).
pub fn set(origin: &str, jkt: &str, nonce: &str) {
    if nonce.is_empty() || nonce.len() > 4096 || !is_nqchar(nonce) {
        return;
    }
    let key = (origin.to_string(), jkt.to_string());
    {
        let map = NONCES.read().unwrap_or_else(|e| e.into_inner());
        if map.get(&key).is_some_and(|n| n == nonce) {
            return;
        }
    }
    let mut map = NONCES.write().unwrap_or_else(|e| e.into_inner());
    if map.len() >= MAX_ENTRIES && !map.contains_key(&key) {
        map.clear();
    }
    map.insert(key, nonce.to_string());
}

/// Forgets every nonce.
pub fn clear() {
    NONCES.write().unwrap_or_else(|e| e.into_inner()).clear();
}

/// RFC 9449 §8.1: `nonce = 1*NQCHAR`, NQCHAR = %x21 / %x23-5B / %x5D-7E.
fn is_nqchar(s: &str) -> bool {
    s.bytes().all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

#[cfg(test)]
mod tests {
    #[test]
    fn per_origin_and_key() {
        super::set("http://a:1", "k1", "n-a");
        super::set("http://b:2", "k1", "n-b");
        assert_eq!(super::get("http://a:1", "k1").as_deref(), Some("n-a"));
        assert_eq!(super::get("http://b:2", "k1").as_deref(), Some("n-b"));
        assert_eq!(super::get("http://a:1", "k2"), None);
        super::set("http://a:1", "k1", "n-a2");
        assert_eq!(super::get("http://a:1", "k1").as_deref(), Some("n-a2"));
        super::set("http://a:1", "k1", "bad\"nonce");
        assert_eq!(super::get("http://a:1", "k1").as_deref(), Some("n-a2"));
    }
}

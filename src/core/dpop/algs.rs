//! The proof algorithm a server was found to take, remembered per server origin, role and
//! key, process-wide: a key that signs more than one algorithm (RSA: RS256 or PS256; Ed25519
//! under two names) learns from an `invalid_dpop_proof` challenge's `algs` which one the
//! server takes, and later calls (new Http objects included) start with it instead of
//! paying the refused round trip again.

use std::sync::LazyLock;

use super::nonce::Role;
use crate::core::state::{BoundedLru, never_in_use};

type Key = (String, Role, String);

static CHOSEN: LazyLock<BoundedLru<Key, &'static str>> = LazyLock::new(|| {
    BoundedLru::new(
        crate::core::state::limits::ALG_CHOICE_ENTRIES,
        crate::core::state::limits::ALG_CHOICE_BYTES,
        |k, _| k.0.len() + k.2.len() + 64,
        never_in_use,
    )
});

/// The algorithm `origin` in `role` took from the key `jkt`, if one was learnt.
pub fn get(origin: &str, role: Role, jkt: &str) -> Option<&'static str> {
    CHOSEN.get(&(origin.to_string(), role, jkt.to_string()))
}

/// Remembers the algorithm the server asked for.
pub fn set(origin: &str, role: Role, jkt: &str, alg: &'static str) {
    CHOSEN.insert((origin.to_string(), role, jkt.to_string()), alg);
}

/// The algorithm an authorization server's metadata made the key `jkt` sign with: where a
/// resource server has not said what it takes, a proof for it starts with that one (the
/// servers of one deployment usually take the same), not the key's preferred one.
pub fn key_default(jkt: &str) -> Option<&'static str> {
    CHOSEN.get(&(String::new(), Role::AuthorizationServer, jkt.to_string()))
}

/// Remembers what the authorization server's metadata chose for the key `jkt`.
pub fn set_key_default(jkt: &str, alg: &'static str) {
    if key_default(jkt) != Some(alg) {
        CHOSEN.insert((String::new(), Role::AuthorizationServer, jkt.to_string()), alg);
    }
}

/// Forgets every choice.
pub fn clear() {
    CHOSEN.clear();
}
